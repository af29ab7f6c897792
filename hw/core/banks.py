"""Sparse weight banks: per bank and matrix a column-pointer table and an entry memory.

On an event (column j, value v) every bank streams its entries of column j, one per cycle,
to its MAC lane. The next event's pointers are fetched while the current column streams, so
an event costs ``max(1, max over banks of nnz(bank, j))`` cycles with no bubbles.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .arith import exceeds
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
    lanes : Out(array of P `lane_layout`); registered, valid three cycles after a column
        starts.
    busy : Out(1); an event or entry is in flight.
    wr, wr_en, wr_o, wr_o_en : the write chain through the banks (`write_hops` = P
        registers, one per bank).

    Latency: an accepted event's first entries reach ``lanes`` 7 cycles later; columns then
    follow back to back. Events enter through a `SkidBuffer`: the column handshake (``load``,
    an AND over the P banks' flags) ends at its registers, and ``i_stream.ready`` is a
    flip-flop, so no path runs from the banks, spread over the die with their block RAMs,
    into the block that produces the events.
    """

    stages = 7

    def __init__(self, *, banks, mats, weight_bits, state_bits, ubits, gated, mem_ids,
                 bus=None):
        if not 1 <= len(mats) <= 2:
            raise ValueError(f"a streamer serves 1 or 2 matrices, got {len(mats)}")
        self.banks, self.mats, self.wb, self.sb = banks, mats, weight_bits, state_bits
        self.ubits, self.gated, self.mem_ids = ubits, gated, mem_ids
        self.write_hops = banks
        self.col_bits = max(1, max(mt.columns for mt in mats).bit_length())
        self.addr_bits = max(mt.ptr_bits for mt in mats)
        super().__init__({
            "i_stream": In(stream.Signature(col_event_layout(self.col_bits, state_bits))),
            "lanes": Out(data.ArrayLayout(lane_layout(weight_bits, state_bits, ubits), banks)),
            "busy": Out(1),
            **write_members(bus),
        })

    def elaborate(self, platform):
        m = Module()
        P, nm = self.banks, len(self.mats)
        # The pending events, in three stages that move together (``adv*``) so that
        # columns still follow back to back: B, the pointers are the pointer memories' read
        # data; B2, registered; B3, with the flags of the column they span. (Computing the
        # flags straight from the block RAM outputs put ~5.6 ns of clock-to-out, a mux, a
        # subtraction and the load mux on one path: the default build's critical path.)
        def held(shape, name):           # data of a stage (its valid bit says whether)
            return Signal(shape, name=name, reset_less=True)

        def per_bank(shape, name):
            return [held(shape, f"{name}{b}") for b in range(P)]

        pend_v, b2_v, b3_v = Signal(), Signal(), Signal()
        pend_val, b2_val, b3_val = (held(signed(self.sb), f"{s}_val") for s in ("pend", "b2", "b3"))
        pend_mat, b2_mat, b3_mat = (held(1, f"{s}_mat") for s in ("pend", "b2", "b3"))
        ab = self.addr_bits
        b2_start, b3_start = per_bank(ab, "b2_start"), per_bank(ab, "b3_start")
        b2_end, b3_end = per_bank(ab, "b2_end"), per_bank(ab, "b3_end")
        b3_more, b3_many = per_bank(1, "b3_more"), per_bank(1, "b3_many")
        # stage C: the column being streamed
        act = Signal()
        act_val = Signal(signed(self.sb))
        act_mat = Signal()
        addr = [Signal(self.addr_bits, name=f"addr{b}") for b in range(P)]
        end = [Signal(self.addr_bits, name=f"end{b}") for b in range(P)]
        # stage D: entry words come out of the entry memories
        d_v = [Signal(name=f"d_v{b}") for b in range(P)]
        d_val = Signal(signed(self.sb))
        d_mat = Signal()

        # Registered per-bank flags, kept equal to (addr < end) and (end - addr > 1): the
        # end-of-column test is then an AND of P flip-flops, not P subtractions, on the path
        # that decides `load` and, through `ready`, the upstream event handshakes.
        more = [Signal(name=f"more{b}") for b in range(P)]    # entries left in this column
        many = [Signal(name=f"many{b}") for b in range(P)]    # more than one entry left
        last = Signal()
        m.d.comb += last.eq(1)
        for b in range(P):
            with m.If(many[b]):
                m.d.comb += last.eq(0)
        can_load = ~act | last
        load = can_load & b3_v
        adv3 = ~b3_v | can_load              # B3 is free or loads into C
        adv2 = ~b2_v | adv3                  # B2 is free or moves on
        adv1 = ~pend_v | adv2                # B is free or moves on
        m.submodules.skid = skid = SkidBuffer(col_event_layout(self.col_bits, self.sb))
        wiring.connect(m, wiring.flipped(self.i_stream), skid.i)
        src = skid.o
        accept = src.valid & src.ready
        m.d.comb += src.ready.eq(adv1)
        ev = src.payload

        start_sel = [Signal(self.addr_bits, name=f"start_sel{b}") for b in range(P)]
        end_sel = [Signal(self.addr_bits, name=f"end_sel{b}") for b in range(P)]
        ent_data = [[] for _ in range(P)]
        chain = WriteChain("st")
        for k, mt in enumerate(self.mats):
            ptr_id, ent_id = self.mem_ids[k]
            for b in range(P):
                pm = memory.Memory(shape=unsigned(mt.ptr_bits), depth=mt.ptr_depth,
                                   init=mt.ptr[b])
                em = memory.Memory(shape=unsigned(mt.ent_bits), depth=mt.ent_depth,
                                   init=mt.ent[b])
                m.submodules[f"ptr{k}_{b}"] = pm
                m.submodules[f"ent{k}_{b}"] = em
                p0, p1 = pm.read_port(), pm.read_port()
                m.d.comb += [p0.addr.eq(ev.col), p1.addr.eq(ev.col + 1),
                             p0.en.eq(accept), p1.en.eq(accept)]
                with m.If(pend_mat == k):
                    m.d.comb += [start_sel[b].eq(p0.data), end_sel[b].eq(p1.data)]
                er = em.read_port()
                m.d.comb += er.addr.eq(addr[b])
                ent_data[b].append(er.data)
                for mem_, wid in ((pm, ptr_id), (em, ent_id)):
                    chain.add(mem_.write_port(),
                              lambda w, wid=wid, b=b: (w.mem == wid) & (w.bank == b), key=b)
        chain.build(m, self.write_hops, self.wr, self.wr_en, self.wr_o, self.wr_o_en)

        with m.If(adv1):
            m.d.sync += pend_v.eq(accept)
        with m.If(accept):
            m.d.sync += [pend_val.eq(ev.value), pend_mat.eq(ev.mat)]
        with m.If(adv2):
            m.d.sync += [b2_v.eq(pend_v), b2_val.eq(pend_val), b2_mat.eq(pend_mat)]
            m.d.sync += [b2_start[b].eq(start_sel[b]) for b in range(P)]
            m.d.sync += [b2_end[b].eq(end_sel[b]) for b in range(P)]
        with m.If(adv3):
            m.d.sync += [b3_v.eq(b2_v), b3_val.eq(b2_val), b3_mat.eq(b2_mat)]
            m.d.sync += [b3_start[b].eq(b2_start[b]) for b in range(P)]
            m.d.sync += [b3_end[b].eq(b2_end[b]) for b in range(P)]
            for b in range(P):
                left = b2_end[b] - b2_start[b]
                m.d.sync += [b3_more[b].eq(exceeds(left, 0)), b3_many[b].eq(exceeds(left, 1))]
        with m.If(load):
            m.d.sync += [act.eq(1), act_val.eq(b3_val), act_mat.eq(b3_mat)]
            m.d.sync += [addr[b].eq(b3_start[b]) for b in range(P)]
            m.d.sync += [end[b].eq(b3_end[b]) for b in range(P)]
            m.d.sync += [more[b].eq(b3_more[b]) for b in range(P)]
            m.d.sync += [many[b].eq(b3_many[b]) for b in range(P)]
        with m.Elif(act & last):
            m.d.sync += act.eq(0)
        m.d.sync += [d_val.eq(act_val), d_mat.eq(act_mat)]
        for b in range(P):
            issue = act & more[b]
            with m.If(issue & ~load):
                m.d.sync += [addr[b].eq(addr[b] + 1), more[b].eq(many[b]),
                             many[b].eq(exceeds(end[b] - addr[b], 2))]
            m.d.sync += d_v[b].eq(issue)

        # stage E: the lane words, registered (the entry memory's clock-to-out is ~5.8 ns,
        # too much to drive the MAC lane's accumulator addresses in the same cycle)
        wb, ub = self.wb, self.ubits
        for b in range(P):
            word = ent_data[b][0] if nm == 1 else Mux(d_mat, ent_data[b][1], ent_data[b][0])
            lane = self.lanes[b]
            m.d.sync += [lane.valid.eq(d_v[b]), lane.v.eq(d_val),
                         lane.w.eq(word[:wb].as_signed()), lane.addr.eq(word[wb:wb + ub])]
            if self.gated:
                m.d.sync += lane.sel.eq(word[wb + ub:wb + ub + 2] + d_mat * 3)
            else:
                m.d.sync += lane.sel.eq(0)
        busy = src.valid | pend_v | b2_v | b3_v | act
        for b in range(P):
            busy = busy | d_v[b] | self.lanes[b].valid
        m.d.comb += self.busy.eq(busy)
        return m
