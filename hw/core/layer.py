"""One EGRU layer: event streamer over its W and R banks, P MAC lanes, P pointwise lanes,
and the store of its emitted events."""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .banks import ColumnStreamer
from .drain import SNAPSHOT_LATENCY, drained_flag
from .events import EventStore, event_layout
from .fsm import one_hot
from .mac import MacLane
from .params import write_bus
from .pointwise import PointwiseLane
from .replica import Replica
from .skid import SkidBuffer
from .wport import chain_blocks, write_members

__all__ = ["Layer", "trace_layout"]


def trace_layout(banks: int, state_bits: int) -> data.StructLayout:
    """One pointwise beat: units ``u*P + b`` of ``layer``; ``mask`` bit b = unit b fired."""
    return data.StructLayout({
        "layer": 8, "u": 16, "mask": banks,
        "y": data.ArrayLayout(signed(state_bits), banks),
        "c": data.ArrayLayout(signed(state_bits), banks),
    })


def lane_ctl_layout(ubits: int) -> data.StructLayout:
    """What the layer's control sends each lane (`Layer`; one `Replica` per lane)."""
    return data.StructLayout({
        "ext": 1,                 # accumulator ports to the pointwise pass
        "u": unsigned(ubits),     # unit read (slot ``slot``) / cleared
        "slot": 3,
        "rd": 1,                  # read the slot (and write its bias back)
        "clr": 1,                 # RESET pass: clear c[u], write back every slot's bias
        "p0": 1,                  # unit ``p0_u`` enters the pointwise lane (gathered)
        "p0_u": unsigned(ubits),
    })


def popcount(bits):
    total = 0
    for b in bits:
        total = total + b
    return total


class Layer(wiring.Component):
    """One layer of the event-driven datapath.

    A step (``start`` pulse): input events (``i_stream``, matrix W, into ax) and the layer's
    own events of the previous step (matrix R, into ah) stream through the banks; then the
    pointwise pass over ``U = ceil(H/P)`` local units (six cycles each: one per accumulator
    slot) writes c, emits this step's events into the event store and writes the biases back
    into the accumulators. ``done`` pulses at the end. ``reset`` runs a 6U-cycle pass: c = 0,
    accumulators = biases, no pending events.

    Parameters
    ----------
    lp : `hw.core.params.LayerParams`.
    params : `hw.core.params.CoreParams`.
    ids : name -> memory id (`hw.core.params.mem_ids`).
    trace : drive ``o_trace`` (and let its back-pressure stall the pointwise pass).

    Members
    -------
    start, reset : In(1) pulses (only while not ``busy``). done : Out(1) pulse. busy : Out(1).
    pw_start : Out(1) pulse; the pointwise pass starts (``fwd_start`` may be pulsed with it:
        the forward reader then streams events as the pass produces them).
    i_stream, i_busy, i_final : In; input events; "more input events will come"; "the input
        source has started" (until then the layer streams only its recurrent events, so it
        can start at the beginning of the step, before the layer below has finished).
    fwd_start, fwd_busy, o_fwd : this step's events for the next layer / the readout.
    o_trace : Out(stream of `trace_layout`).
    ev_inc, mac_inc : Out; events accepted / entries streamed this cycle (counters).
    wr, wr_en, wr_o, wr_o_en : the write chain (`hw.core.wport`) through the streamer's
        banks, then lane by lane through the MAC and pointwise lanes (`write_hops`).
    """

    def __init__(self, lp, params, ids, *, trace=False):
        self.lp, self.params, self.ids, self.trace = lp, params, ids, trace
        P, sb = params.banks, params.fmt.state_bits
        self.bus = write_bus(params)
        self.write_hops = self.chain_hops(P)
        ev = stream.Signature(event_layout(sb))
        super().__init__({
            "start": In(1), "reset": In(1), "done": Out(1), "busy": Out(1),
            "pw_start": Out(1),
            "i_stream": In(ev), "i_busy": In(1), "i_final": In(1),
            "fwd_start": In(1), "fwd_busy": Out(1), "o_fwd": Out(ev),
            "o_trace": Out(stream.Signature(trace_layout(P, sb))),
            "ev_inc": Out(1), "mac_inc": Out(range(P + 1)),
            **write_members(self.bus),
        })

    @staticmethod
    def chain_hops(banks: int) -> int:
        """Write-chain registers of a layer: one per streamer bank, MAC and pointwise lane."""
        return banks * (1 + MacLane.write_hops + PointwiseLane.write_hops)

    def elaborate(self, platform):
        m = Module()
        lp, prm, ids = self.lp, self.params, self.ids
        P, f, U = prm.banks, prm.fmt, lp.units
        k = lp.index

        m.submodules.streamer = st = ColumnStreamer(
            banks=P, mats=[lp.w, lp.r], weight_bits=f.weight_bits, state_bits=f.state_bits,
            ubits=lp.ubits, gated=True, bus=self.bus,
            mem_ids=[(ids[f"l{k}.w.ptr"], ids[f"l{k}.w.ent"]),
                     (ids[f"l{k}.r.ptr"], ids[f"l{k}.r.ent"])])
        m.submodules.store = store = EventStore(banks=P, state_bits=f.state_bits,
                                                ubits=lp.ubits, depth=U)
        macs, pws = [], []
        for b in range(P):
            mac = MacLane(slots=6, depth=U, fmt=f, ubits=lp.ubits, bank=b,
                          bias=lp.bx[b] + lp.bh[b],
                          bias_ids=(ids[f"l{k}.bx"], ids[f"l{k}.bh"]), bus=self.bus)
            pw = PointwiseLane(fmt=f, units=U, valid_units=-(-(lp.hidden - b) // P),
                               ubits=lp.ubits, theta=lp.theta[b], sig=prm.sig, tanh=prm.tanh,
                               theta_id=ids[f"l{k}.theta"], bank=b, bus=self.bus)
            m.submodules[f"mac{b}"] = mac
            m.submodules[f"pw{b}"] = pw
            macs.append(mac)
            pws.append(pw)
            m.d.comb += [mac.i.eq(st.lanes[b]), pw.acc.eq(mac.rd_data)]
        # the write chain: streamer banks, then MAC lane b and pointwise lane b, b = 0..P-1
        wr_o, wr_o_en = chain_blocks(m, self.wr, self.wr_en,
                                     [st] + [x for pair in zip(macs, pws) for x in pair])
        m.d.comb += [self.wr_o.eq(wr_o), self.wr_o_en.eq(wr_o_en)]

        # forward reader
        m.d.comb += [store.fwd_start.eq(self.fwd_start), self.fwd_busy.eq(store.fwd_busy)]
        wiring.connect(m, wiring.flipped(self.o_fwd), store.o_fwd)

        # event mux: input events (W -> ax) first, then recurrent ones (R -> ah)
        # ``accum`` (states ACC_GO* and ACC) is a flip-flop of its own, set on entering
        # ACC_GO0 and cleared on leaving ACC, as the readout's; and the payload is picked by
        # the input's valid alone: decoded from the FSM's state, ``accum`` gated the
        # streamer's input buffer's data and enables (the readout's twin path was 10.2 ns,
        # round fourteen)
        accum = Signal()
        # The recurrent events pass one more skid buffer, here by the event multiplexer:
        # the streamer's ready, gated by ``accum`` and the input's valid, then ends at its
        # registers, not at the event store's output buffer by the store (8.2 ns into its
        # 20 enables, round seventeen's build K at seed 2). An event in it is one more term
        # of ``drained``.
        m.submodules.rec_in = rec_in = SkidBuffer(event_layout(f.state_bits))
        wiring.connect(m, store.o_rec, rec_in.i)
        rec = rec_in.o
        with m.If(self.i_stream.valid):
            m.d.comb += [st.i_stream.payload.col.eq(self.i_stream.payload.index),
                         st.i_stream.payload.value.eq(self.i_stream.payload.value),
                         st.i_stream.payload.mat.eq(0)]
        with m.Else():
            m.d.comb += [st.i_stream.payload.col.eq(rec.payload.index),
                         st.i_stream.payload.value.eq(rec.payload.value),
                         st.i_stream.payload.mat.eq(1)]
        with m.If(accum):
            with m.If(self.i_stream.valid):
                m.d.comb += [st.i_stream.valid.eq(1),
                             self.i_stream.ready.eq(st.i_stream.ready)]
            with m.Else():
                m.d.comb += [st.i_stream.valid.eq(rec.valid),
                             rec.ready.eq(st.i_stream.ready)]
        m.d.comb += [self.ev_inc.eq(st.i_stream.valid & st.i_stream.ready),
                     self.mac_inc.eq(popcount(st.lanes[b].valid for b in range(P)))]

        # every source and pipeline empty with the input final (`hw.core.drain`: a snapshot
        # of flip-flops next to their sources, two cycles old)
        drained = drained_flag(
            m, local_busy=[self.i_busy, self.i_stream.valid, store.rec_busy,
                           rec_in.o.valid],
            source_busy_q=[st.busy_q] + [mac.busy_q for mac in macs], final=self.i_final)
        pipe_busy = pws[0].pipe_busy

        # pointwise control: a unit's six accumulators are read one slot per cycle (the MAC
        # lane keeps them in one block RAM); the unit enters the pointwise lanes when the
        # lanes have gathered them, ``MacLane.gather_latency - 1`` cycles after its last slot
        u = Signal(range(U + 1))
        slot = Signal(range(6))
        last_slot = Signal()          # slot == 5, kept in a flip-flop
        out_ready = Signal()
        m.d.comb += out_ready.eq(self.o_trace.ready if self.trace else 1)
        adv = ~pws[0].out_valid | out_ready
        issue = Signal()
        # issue == (u < U) in the PW state, kept in a flip-flop: it drives the read enables
        # of every lane's accumulator memory, so it should not start with a comparator
        pw_more = Signal()
        # ext == (state is PW or CLR), kept in a flip-flop set and cleared on the transitions:
        # it selects every MAC lane's accumulator read address
        ext = Signal()
        clr = Signal()
        # the gathered unit on its way to P0 (advances with the pointwise lanes)
        gv = [Signal(name=f"gather{k}_v") for k in range(MacLane.gather_latency - 1)]
        gu = [Signal(range(U + 1), name=f"gather{k}_u", reset_less=True) for k in range(len(gv))]
        with m.If(adv):
            m.d.sync += [gv[0].eq(issue & last_slot), gu[0].eq(u)]
            m.d.sync += [x.eq(y) for x, y in zip(gv[1:] + gu[1:], gv[:-1] + gu[:-1])]
        gather_busy = gv[0]
        for x in gv[1:]:
            gather_busy = gather_busy | x
        wb_mask = 0b111000 if lp.persistent else 0b111111
        # The lanes' control, registered once more in each lane (`hw.core.replica`): every
        # lane acts on it one advancing cycle later, all together, so the timing between
        # the slot reads, the gather and P0 is unchanged. (With trace back-pressure the
        # copies load only while ``adv``, and a read is done only in an advancing cycle.)
        ctl = Signal(lane_ctl_layout(lp.ubits))
        m.d.comb += [ctl.ext.eq(ext), ctl.u.eq(u), ctl.slot.eq(slot), ctl.rd.eq(clr | issue),
                     ctl.clr.eq(clr), ctl.p0.eq(gv[-1]), ctl.p0_u.eq(gu[-1])]
        reps = []
        for b in range(P):
            m.submodules[f"ctl{b}"] = rep = Replica(ctl.shape(), enable=self.trace)
            reps.append(rep)
            m.d.comb += rep.d.eq(ctl)
            if self.trace:
                m.d.comb += rep.en.eq(adv)
            q = rep.q
            m.d.comb += [pws[b].adv.eq(adv), pws[b].p0_valid.eq(q.p0), pws[b].p0_u.eq(q.p0_u),
                         pws[b].clr_en.eq(q.clr), pws[b].clr_addr.eq(q.u),
                         macs[b].ext.eq(q.ext), macs[b].rd_addr.eq(q.u),
                         macs[b].rd_slot.eq(q.slot), macs[b].rd_en.eq(q.rd & adv),
                         macs[b].rd_mask.eq(Mux(q.clr, 0b111111, wb_mask))]
            # without trace back-pressure (adv == 1) the read ports need no enable
            m.d.comb += macs[b].rd_hold.eq(~adv)
        # a unit on its way from the copies into P0
        gather_busy = gather_busy | reps[0].q.p0

        def next_slot():
            """Advance (u, slot) by one slot read."""
            with m.If(last_slot):
                m.d.sync += [slot.eq(0), last_slot.eq(0), u.eq(u + 1)]
            with m.Else():
                m.d.sync += [slot.eq(slot + 1), last_slot.eq(slot == 4)]

        # beats -> event store and trace
        beat = store.i_beat.payload
        tr = self.o_trace.payload
        m.d.comb += [beat.u.eq(pws[0].out_u), store.i_beat.valid.eq(pws[0].out_valid & adv),
                     tr.layer.eq(k), tr.u.eq(pws[0].out_u)]
        for b in range(P):
            m.d.comb += [beat.mask[b].eq(pws[b].out_fire), beat.y[b].eq(pws[b].out_y),
                         tr.mask[b].eq(pws[b].out_fire), tr.y[b].eq(pws[b].out_y),
                         tr.c[b].eq(pws[b].out_c)]
        if self.trace:
            m.d.comb += self.o_trace.valid.eq(pws[0].out_valid)

        # The pass's end (every unit issued, none in the gather or the pointwise lanes),
        # registered: the compare, the OR over the 18 pipeline stages and the FSM's next
        # state drove the enables of ``ext`` (8.8-9.9 ns in round twelve's and thirteen's
        # builds). A cycle-old snapshot is safe: once every unit is issued no work enters,
        # and only the PW state's own cycles count (u still holds the last pass's U when
        # the state is entered).
        in_pw, pw_end_q = Signal(), Signal()
        m.d.sync += pw_end_q.eq(in_pw & (u == U) & ~gather_busy & ~pipe_busy)
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += store.rec_start.eq(1)
                    m.d.sync += accum.eq(1)
                    m.next = "ACC_GO0"
                with m.Elif(self.reset):
                    m.d.sync += [u.eq(0), slot.eq(0), last_slot.eq(0), ext.eq(1)]
                    m.next = "CLR"
            # ``drained`` describes the pass only from the SNAPSHOT_LATENCY-th cycle on
            for i in range(SNAPSHOT_LATENCY):
                with m.State(f"ACC_GO{i}"):
                    m.d.comb += self.busy.eq(1)
                    m.next = f"ACC_GO{i + 1}" if i + 1 < SNAPSHOT_LATENCY else "ACC"
            with m.State("ACC"):
                m.d.comb += self.busy.eq(1)
                with m.If(drained):
                    m.d.sync += accum.eq(0)
                    m.d.sync += [u.eq(0), slot.eq(0), last_slot.eq(0), pw_more.eq(1),
                                 ext.eq(1)]
                    m.d.comb += [store.clear.eq(1), self.pw_start.eq(1)]
                    m.next = "PW"
            with m.State("PW"):
                m.d.comb += [self.busy.eq(1), issue.eq(pw_more),
                             store.fwd_hold.eq(1)]
                with m.If(issue & adv):
                    next_slot()
                    with m.If(last_slot):
                        m.d.sync += pw_more.eq(u < U - 1)
                m.d.comb += in_pw.eq(1)
                with m.If(pw_end_q):
                    m.d.sync += ext.eq(0)
                    m.next = "DONE"
            with m.State("CLR"):
                m.d.comb += [clr.eq(1), self.busy.eq(1), store.clear.eq(1)]
                next_slot()
                with m.If((u == U - 1) & last_slot):
                    m.d.sync += ext.eq(0)
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += [self.done.eq(1), self.busy.eq(1)]
                m.next = "IDLE"
        one_hot(fsm)                  # (hw.core.fsm: one flip-flop per state)
        return m
