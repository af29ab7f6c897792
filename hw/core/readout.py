"""Sparse readout: the last layer's events through the decoder banks into V logits, top-1."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .argmax import ArgMax
from .banks import ColumnStreamer
from .drain import SNAPSHOT_LATENCY, drained_flag
from .events import event_layout
from .fsm import one_hot
from .mac import MacLane
from .params import write_bus
from .replica import Replica
from .skid import SkidBuffer
from .wport import chain_blocks, write_members

__all__ = ["Readout", "out_word_layout"]


def out_word_layout(acc_bits: int) -> data.StructLayout:
    """A result word: ``kind`` 0 = a logit, 1 = the top-1 index; ``last`` ends a step."""
    return data.StructLayout({"data": signed(acc_bits), "kind": 1, "last": 1})


class Readout(wiring.Component):
    """Decoder (format A logits, bias ``dec.b``) and top-1 over the step's last-layer events.

    After the events: a scan of ``ceil(V/P)`` rows reads all P lanes' logits of a row at
    once (writing the biases back for the next step) into a pipelined `ArgMax` (the
    smallest index wins ties), whose ``stages`` cycles of latency follow the scan. A row
    takes two cycles: the lanes act on their registered copy of the read (WAIT), then the
    logits are on their read ports (SCAN). With ``emit_logits`` every logit is also sent
    (one word per cycle, in index order), then the top-1 word; the row's logits are then
    first copied into registers here (LOAD, one more cycle a row).

    Members
    -------
    start, reset : In(1); done : Out(1) pulse after the top-1 word is sent; busy : Out(1).
    i_stream, i_busy, i_final : In; the last layer's events (see `hw.core.layer.Layer`).
    emit_logits : In(1). o_stream : Out(stream of `out_word_layout`).
    ev_inc, mac_inc : Out; counter increments.
    wr, wr_en, wr_o, wr_o_en : the write chain (`hw.core.wport`) through the streamer's
        banks, then the MAC lanes (`write_hops`).
    """

    def __init__(self, ro, params, ids):
        self.ro, self.params, self.ids = ro, params, ids
        P, f = params.banks, params.fmt
        self.bus = write_bus(params)
        self.write_hops = self.chain_hops(P)
        super().__init__({
            "start": In(1), "reset": In(1), "done": Out(1), "busy": Out(1),
            "i_stream": In(stream.Signature(event_layout(f.state_bits))), "i_busy": In(1),
            "i_final": In(1),
            "emit_logits": In(1),
            "o_stream": Out(stream.Signature(out_word_layout(f.acc_bits))),
            "ev_inc": Out(1), "mac_inc": Out(range(P + 1)),
            **write_members(self.bus),
        })

    @staticmethod
    def chain_hops(banks: int) -> int:
        """Write-chain registers of the readout: one per streamer bank and MAC lane."""
        return banks * (1 + MacLane.write_hops)

    def elaborate(self, platform):
        m = Module()
        ro, prm, ids = self.ro, self.params, self.ids
        P, f, R, V = prm.banks, prm.fmt, ro.rows, ro.vocab
        ab = f.acc_bits
        m.submodules.streamer = st = ColumnStreamer(
            banks=P, mats=[ro.w], weight_bits=f.weight_bits, state_bits=f.state_bits,
            ubits=ro.ubits, gated=False, mem_ids=[(ids["dec.w.ptr"], ids["dec.w.ent"])],
            bus=self.bus)
        # The lane words reach the MAC lanes through a register each, next to the lane:
        # the streamer's lane word is its entry block RAM's output register (`hw.build.
        # outreg`), and from there a route across the die, the lane's address multiplexer
        # and its LUT RAM read were 8.3-9.2 ns (round sixteen's shipped netlist at seeds 1,
        # 2 and 4). A word in this register is one more term of ``drained``
        # (`hw.core.drain`).
        macs, lane_q = [], []
        for b in range(P):
            mac = MacLane(slots=1, depth=R, fmt=f, ubits=ro.ubits, bank=b, bias=[ro.b[b]],
                          bias_ids=(ids["dec.b"],), bus=self.bus)
            m.submodules[f"mac{b}"] = mac
            macs.append(mac)
            q = Signal.like(st.lanes[b], name=f"lane_q{b}")
            m.d.sync += q.eq(st.lanes[b])
            m.d.comb += mac.i.eq(q)
            lane_q.append(q)
        wr_o, wr_o_en = chain_blocks(m, self.wr, self.wr_en, [st] + macs)
        m.d.comb += [self.wr_o.eq(wr_o), self.wr_o_en.eq(wr_o_en)]

        # ``accum``: in ACC_GO* or ACC (the streamer takes events), as a flip-flop of its
        # own, set on the edge that leaves IDLE for ACC_GO0 and cleared on the one that
        # leaves ACC. Decoded from the FSM's state bits, it reached the enables of the
        # layer-1 link's skid buffer across the die as its ready (9.5 ns, 5.3 of it one
        # route; round sixteen, seed 1).
        accum = Signal()
        # (the payload passes ungated: only valid and ready say whether a word moves)
        m.d.comb += [st.i_stream.payload.col.eq(self.i_stream.payload.index),
                     st.i_stream.payload.value.eq(self.i_stream.payload.value)]
        # (ANDs, not an ``m.If``: a conditional comb block whose inputs are all flip-flops
        # that keep their initial values is not evaluated at time 0 by Icarus, whose
        # ``always @*`` waits for a change, so the ready stayed X until the first step)
        m.d.comb += [st.i_stream.valid.eq(accum & self.i_stream.valid),
                     self.i_stream.ready.eq(accum & st.i_stream.ready)]
        m.d.comb += self.ev_inc.eq(st.i_stream.valid & st.i_stream.ready)
        total = 0
        for b in range(P):
            total = total + st.lanes[b].valid
        m.d.comb += self.mac_inc.eq(total)
        # every source and pipeline empty with the input final (`hw.core.drain`)
        drained = drained_flag(
            m, local_busy=[self.i_busy, self.i_stream.valid] + [q.valid for q in lane_q],
            source_busy_q=[st.busy_q] + [mac.busy_q for mac in macs], final=self.i_final)

        u = Signal(range(R + 1))
        last_row = Signal()
        bsel = Signal(range(P + 1))       # the lane whose logit is sent; P: the top-1 word
        ext, rd = Signal(), Signal()
        rd_addr = Signal(ro.ubits)
        m.d.comb += rd_addr.eq(u)
        # The lanes' read control, registered once more next to each lane
        # (`hw.core.replica`): a row is read one cycle after it is issued (state WAIT),
        # and its logits are on ``rd_data`` in the cycle after that (SCAN).
        ctl_layout = data.StructLayout({"ext": 1, "rd": 1, "addr": ro.ubits})
        for b, mac in enumerate(macs):
            m.submodules[f"ctl{b}"] = rep = Replica(ctl_layout)
            m.d.comb += [rep.d.ext.eq(ext), rep.d.rd.eq(rd), rep.d.addr.eq(rd_addr)]
            m.d.comb += [mac.ext.eq(rep.q.ext), mac.rd_en.eq(rep.q.rd),
                         mac.rd_addr.eq(rep.q.addr), mac.rd_hold.eq(1), mac.rd_mask.eq(1)]

        # top-1: a pipelined arg-max (a P-long compare chain here limited Fmax to ~18 MHz)
        m.submodules.argmax = amax = ArgMax(P, ab, 16)
        emit = self.emit_logits
        m.d.comb += amax.base.eq(u * P)
        for b in range(P):
            ok = (u * P + b < V) & (~emit | (bsel == b))
            m.d.comb += [amax.mask[b].eq(ok), amax.values[b].eq(macs[b].rd_data[0])]
        # The row's logits, copied from the lanes once (state LOAD) into registers here,
        # and sent as ``row[bsel]``: a P-way multiplexer by ``bsel`` straight from lanes
        # spread over the die into the output was the default build's critical path (15.5
        # ns). (Sent from a shift register, ``row[0]``, the output's ready became the
        # enable of all P x 32 row bits: one flip-flop's net to 256 CE pins, 10.9 ns, the
        # latest path of one seed's build at round thirteen.)
        row = [Signal(signed(ab), name=f"row{b}", reset_less=True) for b in range(P)]
        bsel_d = Signal.like(bsel)
        # ``bsel`` one-hot as well (``hot``, bit P: the top-1 word), its next value set
        # beside ``bsel``'s: a shift, not an increment and a compare per bit, ahead of the
        # copies below (8.2 ns from the output's ready, round seventeen's build K at seed 3)
        hot, hot_d = Signal(P + 1, init=1), Signal(P + 1)
        m.d.comb += [bsel_d.eq(bsel), hot_d.eq(hot)]
        m.d.sync += [bsel.eq(bsel_d), hot.eq(hot_d)]

        def select(lane):             # bsel_d = lane (None: bsel + 1), and hot_d with it
            if lane is None:
                m.d.comb += [bsel_d.eq(bsel + 1), hot_d.eq(hot << 1)]
            else:
                m.d.comb += [bsel_d.eq(lane), hot_d.eq(1 << lane)]
        # The word sent is an AND-OR over the row and the top-1 index, by ``bsel`` decoded
        # one-hot into flip-flops (`hw.core.replica`), four copies, each for a quarter of
        # the bits: no decode and no state sits between those flip-flops and the word, 2
        # levels of LUTs. Indexed by ``bsel`` (a binary select, decoded into a 32 x 8:1
        # multiplexer, then the state's choice of the logit or the top-1 word), the decode's
        # net took 3.5 ns of routing and the path 8.4-9.3 ns (round sixteen's shipped
        # netlist at seeds 2 and 3; one binary copy per quarter still 8.2-8.5 ns).
        top_w = Signal(ab)
        m.d.comb += top_w.eq(amax.best)
        srcs = [r.as_unsigned() for r in row] + [top_w]
        parts = []
        for k in range(4):
            lo, hi = k * ab // 4, (k + 1) * ab // 4
            m.submodules[f"bsel_hot{k}"] = rep = Replica(P + 1)
            m.d.comb += rep.d.eq(hot_d)
            part = 0
            for b, src in enumerate(srcs):
                part = part | Mux(rep.q[b], src[lo:hi], 0)
            parts.append(part)
        word = Cat(*parts).as_signed()
        # Only the last row can be partial (V - (R-1)P logits), so the row's last lane is a
        # constant chosen by ``last_row`` (a flip-flop): ``u * P + bsel == V - 1``, an
        # adder and a compare, drove ``u``'s enable (9.1-11.5 ns, round thirteen's builds).
        last_in_row = bsel == Mux(last_row, V - 1 - (R - 1) * P, P - 1)

        # Words leave through a skid buffer here, next to the row registers: the row's
        # multiplexer by ``bsel`` then ends at a local register, not at the accelerator's
        # output buffer across the die (9.9 ns of routing, one seed's build at round
        # thirteen), and the scan's ``ready`` is a flip-flop.
        m.submodules.send = send = SkidBuffer(out_word_layout(ab))
        wiring.connect(m, send.o, wiring.flipped(self.o_stream))
        o_stream = send.i
        # (the word in every state: only ``valid`` says when it is one)
        m.d.comb += o_stream.payload.data.eq(word)
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += accum.eq(1)
                    m.next = "ACC_GO0"
                with m.Elif(self.reset):
                    m.d.sync += u.eq(0)
                    m.next = "CLR"
            # ``drained`` describes the pass only from the SNAPSHOT_LATENCY-th cycle on
            for i in range(SNAPSHOT_LATENCY):
                with m.State(f"ACC_GO{i}"):
                    m.d.comb += self.busy.eq(1)
                    m.d.sync += u.eq(0)
                    m.next = f"ACC_GO{i + 1}" if i + 1 < SNAPSHOT_LATENCY else "ACC"
            with m.State("ACC"):
                m.d.comb += self.busy.eq(1)
                with m.If(drained):
                    m.d.sync += accum.eq(0)
                    m.d.comb += [ext.eq(1), rd.eq(1)]          # read row 0
                    select(0)
                    m.d.comb += amax.clear.eq(1)
                    m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += [ext.eq(1), self.busy.eq(1)]
                # registered here, where u is steady until SCAN: the compare straight into
                # the FSM's next state was the tiny build's latest path on one seed (8.4 ns)
                m.d.sync += last_row.eq(u == R - 1)
                with m.If(emit):
                    m.next = "LOAD"
                with m.Else():
                    m.next = "SCAN"
            with m.State("LOAD"):
                m.d.comb += [ext.eq(1), self.busy.eq(1)]
                m.d.sync += [row[b].eq(macs[b].rd_data[0]) for b in range(P)]
                m.next = "SCAN"
            with m.State("SCAN"):
                m.d.comb += [ext.eq(1), self.busy.eq(1)]
                row_done = Signal()
                with m.If(emit):
                    m.d.comb += [o_stream.valid.eq(1), o_stream.payload.kind.eq(0),
                                 o_stream.payload.last.eq(0)]
                    with m.If(o_stream.ready):
                        select(None)
                        m.d.comb += [amax.push.eq(1), row_done.eq(last_in_row)]
                with m.Else():
                    m.d.comb += [amax.push.eq(1), row_done.eq(1)]
                with m.If(row_done):
                    with m.If(last_row):
                        select(P)                             # the top-1 word
                        m.next = "TOP"
                    with m.Else():
                        select(0)
                        m.d.comb += [rd.eq(1), rd_addr.eq(u + 1)]
                        m.d.sync += u.eq(u + 1)
                        m.next = "WAIT"
            with m.State("TOP"):
                m.d.comb += [self.busy.eq(1), o_stream.valid.eq(~amax.busy),
                             o_stream.payload.kind.eq(1), o_stream.payload.last.eq(1)]
                with m.If(o_stream.ready & ~amax.busy):
                    m.next = "DONE"
            with m.State("CLR"):
                m.d.comb += [ext.eq(1), rd.eq(1), self.busy.eq(1)]
                m.d.sync += u.eq(u + 1)
                with m.If(u == R - 1):
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += [self.done.eq(1), self.busy.eq(1)]
                m.next = "IDLE"
        one_hot(fsm)                  # (hw.core.fsm: one flip-flop per state)
        return m
