"""Sparse weight banks: per bank and matrix a column-pointer table and an entry memory.

On an event (column j, value v) every bank streams its entries of column j, one per cycle,
to its MAC lane. The banks run independently: each takes the events from a queue of its own
and fetches the next event's pointers while the current column streams, so bank b spends
``max(1, nnz(b, j))`` cycles on column j with no bubbles, and a fast bank runs up to
`ColumnStreamer.queue_depth` events ahead of a slow one. (In lock step, with every bank
waiting for the slowest on each column, an event cost ``max over banks of nnz(b, j)``, and
the column handshake was an AND over P banks spread over the whole die.)
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .arith import exceeds
from .ram import SyncRead, ram
from .replica import Replica
from .skid import SkidBuffer
from .wport import WriteChain, write_members, wwrite_layout

__all__ = ["ColumnStreamer", "col_event_layout", "lane_layout", "wwrite_layout"]


def col_event_layout(col_bits: int, state_bits: int) -> data.StructLayout:
    return data.StructLayout({"col": unsigned(col_bits), "value": signed(state_bits),
                              "mat": 1})


def lane_layout(weight_bits, state_bits, ubits) -> data.StructLayout:
    """One entry delivered to a MAC lane: accumulator slot ``sel`` (mat*3+g) at ``addr``."""
    return data.StructLayout({"valid": 1, "sel": 3, "addr": unsigned(ubits),
                              "w": signed(weight_bits), "v": signed(state_bits)})


class ColumnStreamer(wiring.Component):
    """Streams the non-zero entries of event columns out of P banks.

    Parameters
    ----------
    banks : P.
    mats : list of `hw.core.params.MatrixImage` (1 or 2: event ``mat`` selects one).
    weight_bits, state_bits : formats W and S.
    ubits : width of a local row address in an entry word.
    gated : entries carry a 2-bit gate field above the address (layer matrices).
    mem_ids : per matrix (ptr_id, ent_id) for run-time writes through ``wr``.
    bus : the write chain's payload layout (`hw.core.wport.bus_layout`).

    Members
    -------
    i_stream : In(stream of `col_event_layout`).
    lanes : Out(array of P `lane_layout`); registered. Each bank keeps the order of the
        events; the banks are not in step with each other.
    busy : Out(1); an event or entry is in flight.
    busy_q : Out(1); ``busy`` as it was in the previous cycle, from one flip-flop per bank
        and one for the input (`hw.core.drain`: no OR across the banks before a register).
    wr, wr_en, wr_o, wr_o_en : the write chain through the banks (`write_hops` = P
        registers, one per bank).

    Latency: an event's first entries reach ``lanes`` `stages` cycles after its
    ``i_stream`` handshake when its bank's queue is empty. Events enter through two
    `SkidBuffer` stages (``i_stream.ready`` is a flip-flop), then are copied to every
    bank's queue through a register next to the bank (`hw.core.replica`). The only signal
    that depends on all banks is the skid's ``ready``: an AND of the banks' registered
    credits.
    """

    #: events a bank may fall behind the fastest bank by (its queue)
    queue_depth = 8
    #: columns fetched ahead of the one streaming (a bank's B to B4 stages and its column
    #: FIFO together)
    col_fifo_depth = 8

    def __init__(self, *, banks, mats, weight_bits, state_bits, ubits, gated, mem_ids,
                 bus=None):
        if not 1 <= len(mats) <= 2:
            raise ValueError(f"a streamer serves 1 or 2 matrices, got {len(mats)}")
        self.banks, self.mats, self.wb, self.sb = banks, mats, weight_bits, state_bits
        self.ubits, self.gated, self.mem_ids = ubits, gated, mem_ids
        self.write_hops = banks
        #: cycles from an event's handshake to its first entries on ``lanes`` (empty queue)
        self.stages = 14 + (len(mats) == 2)
        self.col_bits = max(1, max(mt.columns for mt in mats).bit_length())
        self.addr_bits = max(mt.ptr_bits for mt in mats)
        for mt in mats:
            if mt.ptr_width != 2 * mt.ptr_bits:
                raise ValueError(f"{mt.name}: pointer words must hold (start, end)")
        super().__init__({
            "i_stream": In(stream.Signature(col_event_layout(self.col_bits, state_bits))),
            "lanes": Out(data.ArrayLayout(lane_layout(weight_bits, state_bits, ubits), banks)),
            "busy": Out(1), "busy_q": Out(1),
            **write_members(bus),
        })

    def elaborate(self, platform):
        m = Module()
        P, Q = self.banks, self.queue_depth
        ev_layout = col_event_layout(self.col_bits, self.sb)
        # Two skid buffers in a row: the first is pulled towards the event sources (the
        # layer's event multiplexer over the link from the part below and the layer's own
        # event store), the second towards the banks it broadcasts to, spread over the die;
        # with one, the multiplexer's inputs crossed that distance into it in one cycle
        # (9.4-10.2 ns into its registers, every seed of round thirteen).
        m.submodules.skid_in = pre = SkidBuffer(ev_layout)
        m.submodules.skid = skid = SkidBuffer(ev_layout)
        wiring.connect(m, wiring.flipped(self.i_stream), pre.i)
        wiring.connect(m, pre.o, skid.i)
        src = skid.o
        # Registered credits: room_b says bank b's queue held at most Q - 4 events in the
        # cycle before, and ``all_room`` is their AND, registered once more: so it reflects
        # the levels of two cycles before, which miss at most the events accepted in the
        # three cycles since (each written one cycle after its handshake, through the
        # bank's copy); with this cycle's, the queue has room for them all. (The AND of the
        # P banks' flags, spread over the die, drove the input buffer's ready and its
        # data registers' enables directly: round twelve's late paths.)
        room = [Signal(name=f"room{b}", init=1) for b in range(P)]
        room_and = room[0]
        for r in room[1:]:
            room_and = room_and & r
        all_room = Signal(init=1)
        m.d.sync += all_room.eq(room_and)
        m.d.comb += src.ready.eq(all_room)
        accept = src.valid & all_room

        chain = WriteChain("st")
        busy = src.valid | pre.o.valid
        src_q = Signal(name="src_busy_q")
        m.d.sync += src_q.eq(busy)
        busy_q = src_q
        for b in range(P):
            # the event, registered once more next to the bank (`hw.core.replica`)
            m.submodules[f"in{b}"] = rep = Replica(data.StructLayout(
                {"we": 1, "ev": ev_layout}))
            m.d.comb += [rep.d.we.eq(accept), rep.d.ev.eq(src.payload)]
            # the queue's output is a register: it addresses the pointer tables
            m.submodules[f"queue{b}"] = q = SyncFIFOBuffered(width=ev_layout.size, depth=Q)
            m.d.comb += [q.w_en.eq(rep.q.we), q.w_data.eq(rep.q.ev)]
            m.d.sync += room[b].eq(q.level <= Q - 4)
            bank_busy = rep.q.we | (q.level != 0) | self._bank(m, b, q, ev_layout, chain)
            bank_q = Signal(name=f"bank_busy_q{b}")
            m.d.sync += bank_q.eq(bank_busy)
            busy, busy_q = busy | bank_busy, busy_q | bank_q
        chain.build(m, self.write_hops, self.wr, self.wr_en, self.wr_o, self.wr_o_en)
        m.d.comb += [self.busy.eq(busy), self.busy_q.eq(busy_q)]
        return m

    def _bank(self, m, b, queue, q_layout, chain):
        """Bank b: streams the columns of the events in its ``queue`` to ``lanes[b]``;
        returns its busy flag (an event or entry in flight past the queue)."""
        nm = len(self.mats)
        ab = self.addr_bits
        ev = data.View(q_layout, queue.r_data)

        # Data of a stage: its valid bit says whether it holds something, so no reset.
        def held(shape, name):
            return Signal(shape, name=f"{name}{b}", reset_less=True)

        # The pending event in four stages that never stall: B, the pointers are the
        # pointer memory's read data (one word, start and end:
        # `hw.core.params.MatrixImage.ptr_words`); B2, registered; B3, with the length of
        # the column they span; B4, with its flags (computing them straight from the block
        # RAM outputs put ~5.6 ns of clock-to-out, a mux, a subtraction and the load mux on
        # one path). Then a FIFO of columns (``cols``) from which stage C loads. A credit
        # counter lets an event be fetched only while the FIFO has room for everything in
        # flight, so B to B4 load every cycle and need no enable: when they moved together
        # (``adv = ~b2_v | ~b3_v | ~act | ~many``), that stall signal drove the enables of
        # every stage register, the queue's read and the pointer block RAMs' CE, and
        # several of its nets were among the latest of round twelve's and thirteen's
        # default builds (up to 11.4 ns at one seed).
        pend_v, b2_v, b3_v = (Signal(name=f"{s}_v{b}") for s in ("pend", "b2", "b3"))
        pend_val, b2_val = (held(signed(self.sb), f"{s}_val") for s in ("pend", "b2"))
        pend_mat, b2_mat = (held(1, f"{s}_mat") for s in ("pend", "b2"))
        # B2 keeps each matrix's pointers in registers of its own, next to that matrix's
        # block RAM (the two are placed apart); the matrix is selected on the way to B3
        b2_start = [held(ab, f"b2_start_m{k}_") for k in range(nm)]
        b2_end = [held(ab, f"b2_end_m{k}_") for k in range(nm)]
        col = data.StructLayout({"val": signed(self.sb), "mat": 1, "start": ab,
                                 "left": signed(ab + 1), "more": 1, "many": 1})
        b3 = Signal(col, name=f"b3_{b}", reset_less=True)      # (without its flags)
        m.submodules[f"cols{b}"] = cols = SyncFIFOBuffered(width=col.size,
                                                           depth=self.col_fifo_depth)
        cf = data.View(col, cols.r_data)
        # events fetched and not yet loaded into C, and whether one more fits (registered)
        pending = Signal(range(self.col_fifo_depth + 1), name=f"pending{b}")
        credit = Signal(name=f"credit{b}", init=1)
        # stage C: the column being streamed; registered flags kept equal to
        # (left > 0) and (left > 1), so that the end of a column is one flip-flop.
        # ``left`` (end - addr) is a down-counter: ``many``'s next value is read off its
        # bits, where ``end - addr`` put a subtraction's carry chain before the compare
        # (8.2 ns, round fourteen's default build)
        act = Signal(name=f"act{b}")
        act_val, act_mat = held(signed(self.sb), "act_val"), held(1, "act_mat")
        addr, left_c = Signal(ab, name=f"addr{b}"), held(signed(ab + 1), "left")
        more, many = Signal(name=f"more{b}"), Signal(name=f"many{b}")
        # stage D: the entry word comes out of the entry memory
        d_v = Signal(name=f"d_v{b}")
        d_val, d_mat = held(signed(self.sb), "d_val"), held(1, "d_mat")

        can_load = ~act | ~many              # C is free, or streams its last entry now
        load = can_load & cols.r_rdy
        fetch = queue.r_rdy & credit
        m.d.comb += [queue.r_en.eq(credit), cols.r_en.eq(can_load)]
        # ``pending + fetch - load`` and its compare, by case: the count's +1, -1 and
        # compares come from ``pending`` alone, and fetch and load only pick one. As one
        # sum, load (C's flags and the FIFO's level) went through a carry chain into the
        # compare and ``credit`` (8.1-8.5 ns on five builds of round sixteen).
        D = self.col_fifo_depth
        up, down = fetch & ~load, load & ~fetch
        with m.If(up):
            m.d.sync += pending.eq(pending + 1)
        with m.Elif(down):
            m.d.sync += pending.eq(pending - 1)
        # (a load takes a column that was pending, so after ``down`` one more always fits)
        m.d.sync += credit.eq(down | Mux(up, pending < D - 1, pending < D))

        ent_data = []
        for k, mt in enumerate(self.mats):
            ptr_id, ent_id = self.mem_ids[k]
            pm = ram(shape=unsigned(mt.ptr_width), depth=mt.ptr_depth, init=mt.ptr_words(b))
            em = ram(shape=unsigned(mt.ent_bits), depth=mt.ent_depth, init=mt.ent[b])
            m.submodules[f"ptr{k}_{b}"] = pm
            m.submodules[f"ent{k}_{b}"] = em
            # The table reads every cycle, at the queue's head: in the cycle after a fetch
            # its read register holds the fetched event's pointers, which B2 takes (B2
            # loads every cycle, only ``b2_v`` says what it holds). With the read enable
            # equal to B2's (1), `hw.build.outreg` can make B2 the block RAM's output
            # register; read under ``fetch``, it could not (the pointer reads were 8.0-8.8
            # ns, round fourteen's default build).
            pr = SyncRead(m, pm, name=f"ptr{k}_{b}")
            m.d.comb += pr.addr.eq(ev.col)
            m.d.sync += [b2_start[k].eq(pr.data[:mt.ptr_bits]),
                         b2_end[k].eq(pr.data[mt.ptr_bits:])]
            er = SyncRead(m, em, name=f"ent{k}_{b}")
            m.d.comb += er.addr.eq(addr)
            ent_data.append(er.data)
            for mem_, wid in ((pm, ptr_id), (em, ent_id)):
                chain.add(mem_.write_port(),
                          lambda w, wid=wid: (w.mem == wid) & (w.bank == b), key=b)

        m.d.sync += [pend_v.eq(fetch), pend_val.eq(ev.value), pend_mat.eq(ev.mat),
                     b2_v.eq(pend_v), b2_val.eq(pend_val), b2_mat.eq(pend_mat)]
        # each matrix's column length from its own registers, the matrix selected after
        # the subtraction: a multiplexer before its carry chain, then the flags' load,
        # was a streamer's latest path (9.5 ns at round twelve, seed 4)
        left = [b2_end[k] - b2_start[k] for k in range(nm)]

        def pick(vals):
            return vals[0] if nm == 1 else Mux(b2_mat, vals[1], vals[0])
        # B3 holds each matrix's column length (its own subtraction, registered), B4 the
        # one picked by the matrix, with its flags: with the flags in B3 too, the carry
        # chain and the OR over its bits were one path of 11 levels (10.2 ns, round
        # thirteen's build at seed 4); with the pick before B3, the two matrices' pointer
        # registers (next to their block RAMs, placed apart) met in one subtraction and
        # multiplexer (8.7-9.0 ns, round fifteen's first builds)
        b3_left = [held(signed(ab + 1), f"b3_left_m{k}_") for k in range(nm)]
        m.d.sync += [b3_v.eq(b2_v), b3.val.eq(b2_val), b3.mat.eq(b2_mat),
                     b3.start.eq(pick(b2_start))]
        m.d.sync += [r.eq(x) for r, x in zip(b3_left, left)]

        def pick3(vals):
            return vals[0] if nm == 1 else Mux(b3.mat, vals[1], vals[0])
        b4_v = Signal(name=f"b4_v{b}")
        b4 = Signal(col, name=f"b4_{b}", reset_less=True)
        m.d.sync += [b4_v.eq(b3_v), b4.eq(b3),        # B3's fields, then the length and flags
                     b4.left.eq(pick3(b3_left)),
                     b4.more.eq(pick3([exceeds(x, 0) for x in b3_left])),
                     b4.many.eq(pick3([exceeds(x, 1) for x in b3_left]))]
        m.d.comb += [cols.w_en.eq(b4_v), cols.w_data.eq(b4)]
        issue = act & more
        with m.If(load):
            m.d.sync += [act.eq(1), act_val.eq(cf.val), act_mat.eq(cf.mat), addr.eq(cf.start),
                         left_c.eq(cf.left), more.eq(cf.more), many.eq(cf.many)]
        with m.Else():
            with m.If(act & ~many):
                m.d.sync += act.eq(0)
            with m.If(issue):
                m.d.sync += [addr.eq(addr + 1), left_c.eq(left_c - 1), more.eq(many),
                             many.eq(exceeds(left_c, 2))]
        m.d.sync += [d_v.eq(issue), d_val.eq(act_val), d_mat.eq(act_mat)]

        # stage E: the lane word, registered (the entry memory's clock-to-out is ~5.8 ns,
        # too much to drive the MAC lane's accumulator addresses in the same cycle). With
        # two matrices each entry memory's word is registered first, next to its block RAM
        # (the two are placed apart), and the matrix is selected on the way to the lane.
        wb, ub = self.wb, self.ubits
        if nm == 1:
            e_v, e_val, e_mat, word = d_v, d_val, d_mat, ent_data[0]
        else:
            e_v = Signal(name=f"e_v{b}")
            e_val, e_mat = held(signed(self.sb), "e_val"), held(1, "e_mat")
            e_word = [held(len(w), f"e_word_m{k}_") for k, w in enumerate(ent_data)]
            m.d.sync += [e_v.eq(d_v), e_val.eq(d_val), e_mat.eq(d_mat)]
            m.d.sync += [r.eq(w) for r, w in zip(e_word, ent_data)]
            word = Mux(e_mat, e_word[1], e_word[0])
        # The lane word's data fields in registers without reset (``valid`` says what they
        # hold): with one matrix the entry memory's word goes straight into them, and a
        # register with a reset cannot become the block RAM's output register.
        lane = self.lanes[b]
        lw, la = held(signed(wb), "lane_w"), held(ub, "lane_addr")
        lv, ls = held(signed(self.sb), "lane_v"), held(3, "lane_sel")
        m.d.sync += [lane.valid.eq(e_v), lv.eq(e_val), lw.eq(word[:wb].as_signed()),
                     la.eq(word[wb:wb + ub])]
        m.d.comb += [lane.v.eq(lv), lane.w.eq(lw), lane.addr.eq(la), lane.sel.eq(ls)]
        if self.gated:
            m.d.sync += ls.eq(word[wb + ub:wb + ub + 2] + e_mat * 3)
        return (pending != 0) | act | d_v | e_v | lane.valid
