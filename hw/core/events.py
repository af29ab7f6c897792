"""Event records and the per-layer event store (beat list + serializing readers).

The pointwise unit produces one *beat* per cycle: the P lanes' results for local unit ``u``
(units ``u*P + b``). Beats with at least one event are appended to a beat memory. Each reader
walks the beats and serializes their events in increasing unit order, one event per cycle
with no bubbles (the next beat is read while the current one drains).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .ram import SyncRead, ram
from .skid import SkidBuffer

__all__ = ["BeatSerializer", "EventStore", "beat_layout", "event_layout"]


def event_layout(state_bits: int) -> data.StructLayout:
    """An event: unit/column ``index`` and its graded value (format S)."""
    return data.StructLayout({"index": 16, "value": signed(state_bits)})


def beat_layout(banks: int, state_bits: int, ubits: int) -> data.StructLayout:
    return data.StructLayout({"u": unsigned(ubits), "mask": unsigned(banks),
                              "y": data.ArrayLayout(signed(state_bits), banks)})


class BeatSerializer(wiring.Component):
    """Reads beats ``0 .. count-1`` from a beat-memory read port and emits their events.

    Parameters
    ----------
    banks, state_bits, ubits, depth : beat geometry and beat-memory depth.

    Members
    -------
    start : In(1); a pulse restarts the walk at beat 0 (``busy`` is high from the next
        cycle). The walk starts a cycle later still, from ``start`` registered here: the
        layer's FSM decoded into the enables of the reader's flags was 9.1-9.2 ns on three
        builds of round fifteen. ``count`` then already shows a clear made with ``start``.
    count : In; number of valid beats (may grow while ``hold`` is high).
    hold : In(1); the writer is still appending beats: stay busy even when caught up.
    busy : Out(1); high while events remain (one extra cycle after the last transfer).
    o_stream : Out(stream of `event_layout`).
    rd_addr, rd_en : Out; drive the beat memory's read port. rd_data : In(beat).
    """

    def __init__(self, *, banks, state_bits, ubits, depth):
        self.banks, self.ubits = banks, ubits
        self._beat = beat_layout(banks, state_bits, ubits)
        super().__init__({
            "start": In(1), "count": In(range(depth + 1)), "hold": In(1),
            "busy": Out(1),
            "o_stream": Out(stream.Signature(event_layout(state_bits))),
            "rd_addr": Out(range(max(2, depth))), "rd_en": Out(1), "rd_data": In(self._beat),
        })

    def elaborate(self, platform):
        m = Module()
        P = self.banks
        active = Signal()
        ptr = Signal.like(self.count)
        s1v = Signal()                           # rd_data holds an unconsumed beat
        cur = Signal(self._beat, reset_less=True)   # the beat being serialized (rem says)
        rem = Signal(P)                          # its remaining events (mask)
        # Whether rem is empty and whether it holds at most one event, as flip-flops loaded
        # with rem. ``load`` and ``issue`` (the enable of the ~150-bit read-data register
        # and of ``cur``) need only these: computed from rem (rem - 1, a carry chain, then
        # a compare with zero) they were 560 of the default build's 1 349 late endpoints,
        # up to 10.3 ns (round eleven, seed 4).
        rz, r1 = Signal(init=1), Signal(init=1)

        # rem's lowest set bit, kept in flip-flops loaded with rem (binary ``sel`` and one-hot
        # ``oh``): the event's value is then an AND-OR over the lanes. (The priority encoder
        # over rem, then an 8:1 multiplexer, then the output skid buffer's own multiplexer
        # were up to 10 ns into ``fwd_out``/``rec_out``, every seed of round thirteen.)
        sel = Signal(range(max(2, P)))
        oh = Signal(P)

        def lowest(x):                           # (binary, one-hot) of x's lowest set bit
            b_, o_ = Const(0, len(sel)), Const(0, P)
            for b in reversed(range(P)):
                b_, o_ = Mux(x[b], b, b_), Mux(x[b], 1 << b, o_)
            return b_, o_
        value = Const(0, signed(len(cur.y[0])))
        for b in range(P):
            value = value | Mux(oh[b], cur.y[b], 0)
        m.d.comb += [
            self.o_stream.valid.eq(~rz),
            self.o_stream.payload.index.eq(cur.u * P + sel),
            self.o_stream.payload.value.eq(value),
        ]
        take = self.o_stream.valid & self.o_stream.ready
        # rem after this cycle's transfer is empty: it was, or it held one event and sent it
        load = (rz | (take & r1)) & s1v
        # ``lt``: beat ptr has been written (ptr < count), a flip-flop. From ``count`` (the
        # writer's pointer, in the store) through the compare into the enable of the
        # read-data register, this was the default build's latest path at round twelve's
        # first netlist (12.4 ns, 82% routing). It is taken from the last cycle's count:
        # the count only grows while a reader walks (the store is cleared only together
        # with a restart, which loads lt itself), so it can be a cycle late, never early.
        # (``ptr1`` is ptr + 1, a register of its own: the increment's carry chain ahead of
        # the compare's was 8.7 ns into ``lt``, round fourteen's default build)
        lt = Signal()
        ptr1 = Signal.like(ptr, init=1)
        # The compares read ``count_q``, the count a cycle older still, from a register
        # here: the store's count, shared by the writer and both readers, through the
        # compare's carry chain into ``lt`` was 8.5 ns (round seventeen's build K at seed
        # 2). A restart loads ``lt`` from the count itself, and takes effect a cycle after
        # the store's clear, so count_q holds the cleared count by the first compare.
        count_q = Signal.like(self.count)
        m.d.sync += count_q.eq(self.count)
        # A beat is read only into an empty read register, not into one being emptied in
        # the same cycle: ``load`` (from the output's ready) ahead of the read enable, which
        # drives the read register's ~150 enables, and of ``lt`` was 8.4-8.6 ns of mostly
        # routing (round sixteen's first builds). A beat of one event then takes two cycles,
        # against the several that its column takes in the streamer.
        issue = active & lt & ~s1v
        m.d.sync += lt.eq(Mux(issue, ptr1 < count_q, ptr < count_q))
        m.d.comb += [self.rd_addr.eq(ptr), self.rd_en.eq(issue)]
        # rem and its flags: the new beat's mask, or rem less its lowest event, or as is
        rest = rem & ~oh
        mask = self.rd_data.mask
        with m.If(load):
            m.d.sync += [cur.eq(self.rd_data), rem.eq(mask), rz.eq(mask == 0),
                         r1.eq(_at_most(mask, 1)), Cat(sel, oh).eq(Cat(*lowest(mask)))]
        with m.Elif(take):
            # one event leaves: rem is now empty if it held one, and holds at most one if it
            # held at most two
            m.d.sync += [rem.eq(rest), rz.eq(r1), r1.eq(_at_most(rem, 2)),
                         Cat(sel, oh).eq(Cat(*lowest(rest)))]
        with m.If(issue):
            m.d.sync += [ptr.eq(ptr1), ptr1.eq(ptr1 + 1), s1v.eq(1)]
        with m.Elif(load):
            m.d.sync += s1v.eq(0)
        left = (ptr < self.count) | s1v | ~rz
        with m.If(active & ~left & ~self.hold):
            m.d.sync += active.eq(0)
        start = Signal(name="start_q")
        m.d.sync += start.eq(self.start)
        with m.If(start):
            m.d.sync += [active.eq(1), ptr.eq(0), ptr1.eq(1), s1v.eq(0), rem.eq(0), rz.eq(1),
                         r1.eq(1), lt.eq(self.count != 0)]
        m.d.comb += self.busy.eq(active | start)
        return m


def _at_most(x, k: int):
    """Whether ``x`` has at most ``k`` bits set, in LUTs (``x & (x - 1) == 0`` for k = 1
    would put a carry chain first): ``seen[j]`` says at least j + 1 of the bits so far are
    set, a ripple that synthesis folds into a few LUT levels."""
    seen = [Const(0, 1)] * (k + 1)
    for b in range(len(x)):
        seen = [seen[j] | ((seen[j - 1] if j else 1) & x[b]) for j in range(k + 1)]
    return ~seen[k]


class EventStore(wiring.Component):
    """A layer's emitted events of the last step: beat memory with a writer and two readers.

    Members
    -------
    clear : In(1); empties the store (at the start of the layer's pointwise pass).
    i_beat : In(stream of `beat_layout`) with ``ready`` always 1; beats with an empty mask
        are dropped.
    rec_start / rec_busy / o_rec : the reader feeding the layer itself at the next step.
    fwd_start / fwd_busy / o_fwd : the reader feeding the next layer (or the readout); it can
        be started together with ``clear`` and follows the writer while ``fwd_hold`` is high,
        so the next layer consumes events while the pointwise pass is still producing them.
        ``o_rec`` and ``o_fwd`` leave through `SkidBuffer`s next to the store: a
        serializer's event (a priority pick and a P-way value multiplexer) is registered
        before it travels on, to the next part (that path was 14.4 ns in the default build)
        or through the layer's event multiplexer into the streamer's input buffer (12.0-12.9
        ns, the default build's latest path at seeds 1 and 2). ``rec_busy`` and ``fwd_busy``
        cover an event inside them.
    """

    def __init__(self, *, banks, state_bits, ubits, depth):
        self.banks, self.state_bits, self.ubits, self.depth = banks, state_bits, ubits, depth
        beat = beat_layout(banks, state_bits, ubits)
        ev = stream.Signature(event_layout(state_bits))
        super().__init__({
            "clear": In(1), "i_beat": In(stream.Signature(beat, always_ready=True)),
            "rec_start": In(1), "rec_busy": Out(1), "o_rec": Out(ev),
            "fwd_start": In(1), "fwd_hold": In(1), "fwd_busy": Out(1), "o_fwd": Out(ev),
        })

    def elaborate(self, platform):
        m = Module()
        beat = beat_layout(self.banks, self.state_bits, self.ubits)
        # (the readers stay below ``count``, the write address: `hw.core.ram`)
        m.submodules.mem = mem = ram(shape=beat, depth=max(2, self.depth))
        wp = mem.write_port()
        count = Signal(range(self.depth + 1))
        m.d.comb += [wp.addr.eq(count), wp.data.eq(self.i_beat.payload)]
        with m.If(self.i_beat.valid & (self.i_beat.payload.mask != 0)):
            m.d.comb += wp.en.eq(1)
            m.d.sync += count.eq(count + 1)
        with m.If(self.clear):
            m.d.sync += count.eq(0)
        for name in ("rec", "fwd"):
            ser = BeatSerializer(banks=self.banks, state_bits=self.state_bits,
                                 ubits=self.ubits, depth=self.depth)
            m.submodules[f"ser_{name}"] = ser
            rp = SyncRead(m, mem, name=f"beat_{name}")
            m.d.comb += [rp.addr.eq(ser.rd_addr), rp.en.eq(ser.rd_en),
                         ser.rd_data.eq(rp.data), ser.count.eq(count),
                         ser.start.eq(getattr(self, f"{name}_start")),
                         ser.hold.eq(self.fwd_hold if name == "fwd" else 0)]
            # the serializer's ready is the skid's copy of it, a flip-flop by the serializer
            # (the skid itself is pulled towards the consumer): from ``skid_v`` it was 2.8 ns
            # of routing ahead of the reader's handshake (round sixteen, 8.55 ns)
            out = SkidBuffer(event_layout(self.state_bits), ready_copy=True)
            m.submodules[f"{name}_out"] = out
            m.d.comb += [out.i.valid.eq(ser.o_stream.valid),
                         out.i.payload.eq(ser.o_stream.payload),
                         ser.o_stream.ready.eq(out.ready_copy)]
            wiring.connect(m, wiring.flipped(getattr(self, f"o_{name}")), out.o)
            m.d.comb += getattr(self, f"{name}_busy").eq(ser.busy | out.o.valid)
        return m
