"""hw.core.wport.WriteChain: hops, address decode, and write ports with byte lanes."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.core.wport import WriteChain, bus_layout
from sim.amaranth_sim import run_testbench

BUS = bus_layout(mems=3, banks=1, addr_bits=4, data_bits=16)


class _TwoHops(wiring.Component):
    """Hop 0: memory 1, 16 bits in four 4-bit lanes; hop 1: memory 2, 8 bits, one enable."""
    wr: In(BUS)
    wr_en: In(1)
    wr_o: Out(BUS)
    wr_o_en: Out(1)

    def __init__(self):
        self.lanes = Memory(shape=16, depth=16, init=[])
        self.plain = Memory(shape=8, depth=16, init=[])
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.lanes, m.submodules.plain = self.lanes, self.plain
        chain = WriteChain("t")
        chain.add(self.lanes.write_port(granularity=4), lambda w: w.mem == 1, key=0)
        chain.add(self.plain.write_port(), lambda w: w.mem == 2, key=1)
        chain.build(m, 2, self.wr, self.wr_en, self.wr_o, self.wr_o_en)
        return m


def test_lane_enables_write_the_whole_word_at_the_hop():
    """A port with byte lanes gets one enable flip-flop per lane (`hw.core.replica`); all
    of them fire together, in the same cycle as a one-enable port's hit would."""
    dut = _TwoHops()
    writes = [(1, 3, 0xBEEF), (2, 3, 0xA5), (1, 7, 0x1234), (0, 5, 0xFFFF), (2, 9, 0x5A),
              (1, 3, 0x0F0F)]
    landed = []

    async def tb(ctx):
        for mem, addr, data in writes:
            ctx.set(dut.wr_en, 1)
            ctx.set(dut.wr, {"mem": mem, "bank": 0, "addr": addr, "data": data})
            await ctx.tick()
            ctx.set(dut.wr_en, 0)
            # hop 0 registers the write (and its decoded enables) at this edge: the
            # memory takes it at the next one
            await ctx.tick()
            landed.append((ctx.get(dut.lanes.data[addr]), ctx.get(dut.plain.data[addr])))
            await ctx.tick()
        await ctx.tick()
        final = ([ctx.get(dut.lanes.data[a]) for a in range(16)],
                 [ctx.get(dut.plain.data[a]) for a in range(16)])
        landed.append(final)

    run_testbench(dut, tb)
    assert landed[0] == (0xBEEF, 0)
    assert landed[2] == (0x1234, 0)
    lanes, plain = landed[-1]
    want_lanes, want_plain = [0] * 16, [0] * 16
    for mem, addr, data in writes:
        if mem == 1:
            want_lanes[addr] = data
        elif mem == 2:
            want_plain[addr] = data & 0xFF
    assert lanes == want_lanes               # memory 0 (no such port) wrote nothing
    assert plain == want_plain
