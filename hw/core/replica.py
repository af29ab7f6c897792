"""Lane-local registered copies of a control broadcast.

A layer's control (the pointwise pass's unit, slot, read enable, ...) goes to P lanes whose
block RAMs sit in BRAM rows spread over the whole die. Driven from one register, such a net
took 10-18 ns of routing in the default build (docs/build.md). A `Replica` per lane registers
the broadcast once more, next to the lane: the central register then drives only P flip-flops
(a pure route), and each lane's logic starts at a flip-flop of its own.

Yosys merges identical flip-flops (same D, clock and enable; ``opt_merge`` runs after the
design is flattened), which would undo the copies: it did so with the MAC lanes' gather
flags. On the ECP5 each bit is therefore a ``TRELLIS_FF`` instance, which ``opt_merge`` leaves
alone (it merges only Yosys's own cell types); elsewhere (simulation) a plain register.
"""

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .target import on_ecp5

__all__ = ["Replica"]


class Replica(wiring.Component):
    """``q`` = ``d`` as it was at the last enabled clock edge; no reset.

    Parameters
    ----------
    shape : shape (or layout) of the broadcast.
    enable : give the register an enable input ``en`` (otherwise it loads every cycle).
    primitive : force (True) or forbid (False) the ECP5 flip-flop instances; None: on an
        ECP5 platform.

    Members
    -------
    d : In(shape). en : In(1) (with ``enable``). q : Out(shape).
    """

    def __init__(self, shape, *, enable=False, primitive=None):
        self.enable, self.primitive = enable, primitive
        members = {"d": In(shape), "q": Out(shape)}
        if enable:
            members["en"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        en = self.en if self.enable else Const(1)
        d, q = Value.cast(self.d), Value.cast(self.q)
        prim = on_ecp5(platform) if self.primitive is None else self.primitive
        if prim:
            for i in range(len(d)):
                m.submodules[f"ff{i}"] = Instance(
                    "TRELLIS_FF", p_GSR="DISABLED", p_CEMUX="CE" if self.enable else "1",
                    p_CLKMUX="CLK", p_LSRMUX="LSR", p_REGSET="RESET",
                    p_SRMODE="LSR_OVER_CE",
                    i_CLK=ClockSignal("sync"), i_CE=en, i_LSR=Const(0), i_DI=d[i], o_Q=q[i])
        else:
            r = Signal(len(d), reset_less=True)
            with m.If(en):
                m.d.sync += r.eq(d)
            m.d.comb += q.eq(r)
        return m
