"""The input event queue: a block-RAM FIFO whose read data goes straight into a flip-flop.

Amaranth's ``SyncFIFOBuffered`` (the queue until round fifteen) reads its memory through a
synchronous port without ``no_rw_check``, so Yosys puts its transparency emulation, a
multiplexer, after the block RAM's 5.83 ns clock-to-out; the queue's consumer then added a
second one (the skid buffer's ``main`` input). That was the default build's latest path at
round fourteen (8.84 ns at seed 1, 16 endpoints). Here the memory is a `hw.core.ram.ram`
(no collision: the read pointer never reads the word being written, below) and the word the
block RAM outputs is loaded, with no logic between, into ``head``: the block RAM's clock-to-out
and one route, nothing else.

Pipeline: ``mem`` -> (DOB, valid in ``dv``) -> ``head`` (valid in ``head_v``) -> ``o``.
``o.ready`` enters only ``head``'s enable and the read enable; put a `SkidBuffer` after ``o``
so that it is a flip-flop.
"""

from amaranth.hdl import Module, Mux, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .ram import SyncRead, ram

__all__ = ["EventQueue"]


class EventQueue(wiring.Component):
    """A FIFO of ``depth`` words of ``shape`` in memory, plus two words in flight.

    ``w_en`` writes ``w_data`` when ``w_rdy`` (the memory has room); ``o`` is the oldest word;
    ``nonempty`` is 1 while any word is in the memory, on the block RAM's output or in
    ``head`` (a word taken by ``o``'s consumer is its own to track).
    """

    def __init__(self, shape, *, depth: int):
        if depth < 2:
            self._MustUse__silence = True          # refused, not "created but unused"
            raise ValueError(f"EventQueue depth must be at least 2, not {depth}")
        self.shape, self.depth = shape, depth
        self.width = Shape.cast(shape).width
        super().__init__({
            "w_data": In(self.width), "w_en": In(1), "w_rdy": Out(1),
            "o": Out(stream.Signature(shape)),
            "nonempty": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self.depth
        mem = m.submodules.mem = ram(shape=self.width, depth=depth, style="block")
        wp = mem.write_port()
        rd = SyncRead(m, mem, name="rd")
        produce, consume = Signal(range(depth)), Signal(range(depth))
        level = Signal(range(depth + 1))       # words in the memory
        stored = Signal()                      # level != 0, as a flip-flop
        full = Signal()                        # level == depth, as a flip-flop
        dv = Signal()                          # the block RAM's output holds an unread word
        head = Signal(self.shape, reset_less=True)
        head_v = Signal()

        def incr(p):
            return Mux(p == depth - 1, 0, p + 1)

        do_write = self.w_en & ~full
        head_free = ~head_v | self.o.ready
        # A read replaces the block RAM's output word: only when it is empty or moves to
        # ``head`` in this cycle. It reads ``consume``, which trails ``produce`` by ``level``
        # words (> 0): never the word being written, so the memory needs no collision logic.
        do_read = stored & (~dv | head_free)
        m.d.comb += [
            self.w_rdy.eq(~full),
            wp.addr.eq(produce), wp.data.eq(self.w_data), wp.en.eq(do_write),
            rd.addr.eq(consume), rd.en.eq(do_read),
            self.o.valid.eq(head_v), self.o.payload.eq(head),
            self.nonempty.eq(stored | dv | head_v),
        ]
        with m.If(do_write):
            m.d.sync += produce.eq(incr(produce))
        with m.If(do_read):
            m.d.sync += consume.eq(incr(consume))
        # The flags' next values are chosen by the write and the read from compares of the
        # level register: the write enable comes from the command decode across the die,
        # and ``level + write - read`` put it at the head of a carry chain and a compare
        # (10.97 ns into ``full``, the first build of round fifteen at seed 1).
        with m.If(do_write & ~do_read):
            m.d.sync += [level.eq(level + 1), stored.eq(1), full.eq(level == depth - 1)]
        with m.Elif(do_read & ~do_write):
            m.d.sync += [level.eq(level - 1), stored.eq(level != 1), full.eq(0)]
        with m.If(do_read):
            m.d.sync += dv.eq(1)
        with m.Elif(head_free):
            m.d.sync += dv.eq(0)
        with m.If(head_free):
            m.d.sync += head_v.eq(dv)
            with m.If(dv):
                m.d.sync += head.eq(rd.data)
        return m
