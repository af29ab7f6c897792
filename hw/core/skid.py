"""A two-entry stream register whose ``ready`` towards the producer is a flip-flop.

Put between two blocks, it cuts both the forward path (valid, payload) and the backward one
(ready): without it the consumer's ready travelled combinationally into the producer's
next-state logic (for the readout: the host engine's state, through ``o_stream.ready``, into
the logit scan's read address), one path across both blocks.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .replica import Replica

__all__ = ["HoldBuffer", "SkidBuffer"]


class SkidBuffer(wiring.Component):
    """``i`` -> ``o`` with one cycle of latency and full throughput.

    ``main`` holds the word on ``o``; ``skid`` catches the word accepted in the cycle in
    which ``o`` stalled (``i.ready`` is ``~skid_v``, a register, so it cannot know the stall
    in time). Order is kept: ``skid`` always drains into ``main`` first.

    ``ready_copy`` (with ``ready_copy=True``): ``i.ready`` again, from a flip-flop of its
    own (a `Replica` loaded with the same next value), for a producer whose own enables
    hang on the ready: that copy can sit by the producer, while ``skid_v`` sits by the
    consumer, whose ready it waits on.
    """

    def __init__(self, shape, *, ready_copy=False):
        self.shape, self.has_copy = shape, ready_copy
        members = {"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))}
        if ready_copy:
            members["ready_copy"] = Out(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        main_v, skid_v = Signal(), Signal()
        # the words need no reset: main_v / skid_v say which hold one
        main_d = Signal(self.shape, reset_less=True)
        skid_d = Signal(self.shape, reset_less=True)
        take = self.i.valid & self.i.ready
        m.d.comb += [self.i.ready.eq(~skid_v), self.o.valid.eq(main_v),
                     self.o.payload.eq(main_d)]
        # The words load whether or not a word is offered (an empty word is not looked
        # at): their enables are then ``free`` and ``~skid_v``, without the producer's
        # valid, which came from the far side of a route (the enables of a link's 2 x 23
        # bits, 10.2 ns, one seed's latest path at round fourteen).
        free = self.o.ready | ~main_v                # main takes the next word
        with m.If(free):
            m.d.sync += main_d.eq(Mux(skid_v, skid_d, self.i.payload))
            m.d.sync += main_v.eq(skid_v | take)
            m.d.sync += skid_v.eq(0)
        with m.Elif(take):                           # main stalled: park the new word
            m.d.sync += skid_v.eq(1)
        with m.If(~skid_v):
            m.d.sync += skid_d.eq(self.i.payload)
        if self.has_copy:
            # skid_v's next value, as the FSM above sets it: 0 when main takes a word,
            # else 1 once a word is parked. (Reset: skid_v powers up 0, the copy's
            # TRELLIS_FF at 0 too, so ~copy = ready = 1 from the start, as ~skid_v.)
            m.submodules.ready_ff = copy = Replica(1)
            m.d.comb += [copy.d.eq(~free & (skid_v | take)), self.ready_copy.eq(~copy.q)]
        return m


class HoldBuffer(wiring.Component):
    """``i`` -> ``o`` through one register, at half throughput.

    ``i.ready`` is ``~full`` and the word's enable is ``i.valid & ~full``: both flip-flops of
    this block or the producer's, so the consumer's ``o.ready`` reaches only ``full``, not
    the word's enables. A `SkidBuffer` loads its words under ``o.ready``, which a slow path
    (commands and weight writes, one per UART frame) does not need: there that ready, from
    the next buffer across the die, drove the enables of 64 payload bits (9.7-10.4 ns, round
    thirteen's builds).
    """

    def __init__(self, shape):
        self.shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        full = Signal()
        word = Signal(self.shape, reset_less=True)      # full says whether it holds one
        m.d.comb += [self.i.ready.eq(~full), self.o.valid.eq(full), self.o.payload.eq(word)]
        with m.If(~full & self.i.valid):
            m.d.sync += [word.eq(self.i.payload), full.eq(1)]
        with m.Elif(full & self.o.ready):
            m.d.sync += full.eq(0)
        return m
