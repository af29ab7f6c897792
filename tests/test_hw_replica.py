"""hw.core.replica.Replica: a registered copy per lane that synthesis does not merge."""

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.core.replica import Replica
from sim.amaranth_sim import run_testbench
from sim.yosys_stat import count_cells, yosys_stat


@pytest.mark.parametrize("enable", [False, True])
def test_copy_is_one_enabled_cycle_late(enable):
    dut = Replica(8, enable=enable)
    seen = []

    async def tb(ctx):
        for t in range(12):
            ctx.set(dut.d, (37 * t + 5) & 0xFF)
            if enable:
                ctx.set(dut.en, t % 3 != 1)
            await ctx.tick()
            seen.append(ctx.get(dut.q))

    run_testbench(dut, tb)
    want, q = [], 0
    for t in range(12):
        if not enable or t % 3 != 1:
            q = (37 * t + 5) & 0xFF
        want.append(q)
    assert seen == want


class _TwoCopies(wiring.Component):
    """Two lanes' copies of the same broadcast, as a layer makes them."""
    d: In(4)
    q0: Out(4)
    q1: Out(4)

    def __init__(self, primitive):
        self.primitive = primitive
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        src = Signal(4, reset_less=True)
        m.d.sync += src.eq(self.d)
        for k, q in enumerate((self.q0, self.q1)):
            m.submodules[f"c{k}"] = rep = Replica(4, primitive=self.primitive)
            m.d.comb += [rep.d.eq(src), q.eq(rep.q)]
        return m


def _flip_flops_after_opt(primitive, tmp_path):
    """Flip-flop bits left after Yosys flattens and merges (the steps of synth_ecp5 that
    merged the MAC lanes' identical gather flags)."""
    stub = tmp_path / "stub.v"
    stub.write_text("(* blackbox *) module TRELLIS_FF(input CLK, input CE, input LSR, "
                    "input DI, output Q); parameter GSR = \"\"; parameter CEMUX = \"\"; "
                    "parameter CLKMUX = \"\"; parameter LSRMUX = \"\"; parameter REGSET = \"\"; "
                    "parameter SRMODE = \"\"; endmodule\n")
    stat = yosys_stat(_TwoCopies(primitive),
                      "hierarchy -top top; proc; flatten; opt -full; techmap; opt", tmp_path,
                      prelude=f"read_verilog -lib {stub.name};")
    prim, plain = count_cells(stat, "TRELLIS_FF"), count_cells(stat, "$_DFF_P_")
    return prim, plain, stat


def test_primitive_copies_survive_yosys_merging(tmp_path):
    prim, plain, stat = _flip_flops_after_opt(True, tmp_path)
    assert (prim, plain) == (8, 4), stat          # 2 copies x 4 bits, and the source
    # the positive control: plain registers with the same input are merged into one copy
    prim, plain, stat = _flip_flops_after_opt(False, tmp_path)
    assert (prim, plain) == (0, 8), stat
