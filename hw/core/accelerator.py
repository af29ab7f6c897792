"""The accelerator top: host stream interface, input event queue, layer sequencing, readout."""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .banks import wwrite_layout
from .counters import Counters, counters_layout, part_counters_layout
from .events import event_layout
from .fsm import one_hot
from .layer import Layer, trace_layout
from .params import core_params, mem_ids, write_bus
from .queue import EventQueue
from .readout import Readout, out_word_layout
from .replica import Replica
from .skid import HoldBuffer, SkidBuffer
from .wport import chain_blocks

#: cycles after a step's last output word until ``counters`` include that step (the counters
#: register their inputs three times; see `hw.core.counters.Counters`)
COUNTERS_SETTLE = Counters.latency + 1

__all__ = ["COUNTERS_SETTLE", "Accelerator", "Op", "in_cmd_layout"]


class Op:
    """Host command codes (``InCmd.op``)."""
    STEP_TOKEN = 0
    EVENT = 1
    STEP = 2
    RESET = 3


def in_cmd_layout(state_bits: int) -> data.StructLayout:
    return data.StructLayout({"op": 2, "index": 16, "value": signed(state_bits)})


class Accelerator(wiring.Component):
    """Event-driven EGRU accelerator generated from a bundle (docs/accelerator.md).

    Parameters
    ----------
    bundle : `hw.bundle.Bundle` (or `hw.core.params.CoreParams`).
    trace : add the ``o_trace`` port (one word per pointwise beat).
    fifo_depth : input event queue depth (default: input size + 1).

    Members
    -------
    i_stream : In(stream of `in_cmd_layout`): STEP_TOKEN / EVENT / STEP / RESET.
    o_stream : Out(stream of `out_word_layout`): per step [V logits,] top-1 (last=1).
    emit_logits : In(1).
    counters : Out(`counters_layout`). layer_counters : Out(array of L+1
        `part_counters_layout`: layers, then the readout; the last step's figures). Both
        are up to date `COUNTERS_SETTLE` cycles after a step's last output word.
    w_stream : In(stream of `wwrite_layout`): run-time memory writes, accepted while idle.
    busy : Out(1): a step or reset is running.
    o_trace : Out(stream of `trace_layout`) when ``trace``.
    """

    def __init__(self, bundle, *, trace=False, fifo_depth=None):
        from .params import CoreParams
        self.params = bundle if isinstance(bundle, CoreParams) else \
            core_params(bundle, fifo_depth=fifo_depth)
        self.trace = trace
        p = self.params
        f = p.fmt
        self.L = len(p.layers)
        #: cycles from a ``w_stream`` handshake until the write has landed in its memory, at
        #: most: the input skid buffer, this block's register, then the whole chain
        #: (hw.core.wport)
        self.write_latency = 2 + self.L * Layer.chain_hops(p.banks) + \
            (Readout.chain_hops(p.banks) if p.readout is not None else 0)
        members = {
            "i_stream": In(stream.Signature(in_cmd_layout(f.state_bits))),
            "o_stream": Out(stream.Signature(out_word_layout(f.acc_bits))),
            "emit_logits": In(1),
            "counters": Out(counters_layout()),
            "layer_counters": Out(data.ArrayLayout(part_counters_layout(), self.L + 1)),
            "w_stream": In(stream.Signature(wwrite_layout())),
            "busy": Out(1),
        }
        if trace:
            members["o_trace"] = Out(stream.Signature(trace_layout(p.banks, f.state_bits)))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        p, L = self.params, self.L
        f = p.fmt
        ids = mem_ids(p)
        sb = f.state_bits
        ev_layout = event_layout(sb)

        m.submodules.fifo = fifo = EventQueue(ev_layout, depth=p.fifo_depth)
        layers = []
        for lp in p.layers:
            layer = Layer(lp, p, ids, trace=self.trace)
            m.submodules[f"layer{lp.index}"] = layer
            layers.append(layer)
        ro = None
        if p.readout is not None:
            m.submodules.readout = ro = Readout(p.readout, p, ids)
        m.submodules.counters = cnt = Counters(parts=L + 1, lanes=p.banks)
        # output words leave through a skid buffer: the host side's ready stops there
        m.submodules.out = out = SkidBuffer(out_word_layout(f.acc_bits))
        wiring.connect(m, out.o, wiring.flipped(self.o_stream))
        # Commands and weight writes enter through skid buffers too: the ready that the
        # sequencer decodes (its state, the command's op, the event queue's level, pending
        # writes) then ends at these registers, next to the core, and the host side sees a
        # flip-flop. Decoded straight into the host side's buffers (`hw.top.top`), whose
        # enables it drove, it was 97 of the default build's late endpoints (up to 10.1 ns,
        # round eleven, seed 4). Each adds one cycle to a command, none to a step; they
        # take a word every other cycle (`HoldBuffer`), ample for commands that come one
        # per UART frame.
        m.submodules.cmd_in = cmd_in = HoldBuffer(self.i_stream.payload.shape())
        m.submodules.w_in = w_in = HoldBuffer(self.w_stream.payload.shape())
        wiring.connect(m, wiring.flipped(self.i_stream), cmd_in.i)
        wiring.connect(m, wiring.flipped(self.w_stream), w_in.i)
        i_stream, w_stream = cmd_in.o, w_in.o
        m.d.comb += [self.counters.eq(cnt.counters), self.layer_counters.eq(cnt.part_counters)]

        # run-time writes: registered here, narrowed to the chain's payload, then carried
        # block by block (hw.core.wport); a write whose fields do not fit matches no memory
        # and is dropped here
        bus = write_bus(p)
        wr = Signal(bus)
        wr_en = Signal()
        hw_ = w_stream.payload
        fits = ((hw_.mem >> len(wr.mem)) == 0) & ((hw_.bank >> len(wr.bank)) == 0) & \
            ((hw_.addr >> len(wr.addr)) == 0) & ((hw_.data >> len(wr.data)) == 0)
        m.d.sync += [wr.mem.eq(hw_.mem), wr.bank.eq(hw_.bank), wr.addr.eq(hw_.addr),
                     wr.data.eq(hw_.data),
                     wr_en.eq(w_stream.valid & w_stream.ready & fits)]
        blocks = layers + ([ro] if ro is not None else [])
        chain_blocks(m, wr, wr_en, blocks)
        # a write lands within `write_latency` cycles of its handshake: no command until then
        # (``wr_wait != 0`` is kept as a flip-flop, ``wr_nz``: the compare sat on the path
        # from the command's handshake to the queue's write and every part's start)
        wr_wait = Signal(range(self.write_latency + 1))
        wr_nz = Signal()
        wr_busy = Signal()
        with m.If(w_stream.valid & w_stream.ready):         # (past the skid buffer)
            m.d.sync += [wr_wait.eq(self.write_latency - 1),
                         wr_nz.eq(self.write_latency - 1 != 0)]
        with m.Elif(wr_nz):
            m.d.sync += [wr_wait.eq(wr_wait - 1), wr_nz.eq(wr_wait != 1)]
        m.d.comb += wr_busy.eq(w_stream.valid | wr_nz)

        rst_wait, idle_q = Signal(), Signal()     # (the FSM's RST_WAIT state; below)
        # RST_WAIT again, as a flip-flop of its own next to the skid buffer below (set on
        # entering the state, cleared on leaving it): decoded from the FSM's state across the
        # die into the skid's ready and its registers' enables, it was one seed's latest
        # path at round fourteen (8.9 ns, 7.7 of it routing)
        flush = Signal()
        # input queue -> skid buffer -> layer 0. The queue's read data is its block RAM's
        # output: straight into layer 0's event multiplexer, with layer 0's ready on the
        # RAM's CE and the queue's level, it was one seed's latest path at round thirteen.
        # The skid's ready is a flip-flop next to the queue, and the queue's own output is
        # a flip-flop loaded from the block RAM with no logic between (hw.core.queue). An
        # event in the skid is layer 0's ``i_stream.valid``; RST_WAIT drains it with the
        # queue (a reset drops queued events).
        m.submodules.q_out = q_out = SkidBuffer(ev_layout)
        l0 = layers[0]
        wiring.connect(m, fifo.o, q_out.i)
        m.d.comb += [l0.i_stream.payload.eq(q_out.o.payload),
                     l0.i_busy.eq(fifo.nonempty)]
        with m.If(flush):
            m.d.comb += q_out.o.ready.eq(1)
        with m.Else():
            m.d.comb += [l0.i_stream.valid.eq(q_out.o.valid), q_out.o.ready.eq(l0.i_stream.ready)]
        # Events pass from part to part through a skid buffer: the consumer's ready (and
        # its event mux) and the producer's serializer are then two register stages apart,
        # not one path between two blocks. An event in the skid is on its ``o.valid``, so
        # ``i_busy`` (the producer's reader) and ``i_stream.valid`` still cover every event.
        for k, blk in enumerate(blocks[1:], start=1):
            m.submodules[f"link{k}"] = link = SkidBuffer(ev_layout)
            wiring.connect(m, layers[k - 1].o_fwd, link.i)
            wiring.connect(m, link.o, blk.i_stream)
            m.d.comb += blk.i_busy.eq(layers[k - 1].fwd_busy)
        if ro is not None:
            m.d.comb += ro.emit_logits.eq(self.emit_logits)
            wiring.connect(m, ro.o_stream, out.i)

        # trace: only one layer is in its pointwise pass at a time
        if self.trace:
            for layer in layers:
                m.d.comb += layer.o_trace.ready.eq(self.o_trace.ready)
                with m.If(layer.o_trace.valid):
                    m.d.comb += [self.o_trace.valid.eq(1),
                                 self.o_trace.payload.eq(layer.o_trace.payload)]

        for i, blk in enumerate(layers + ([ro] if ro is not None else [])):
            m.d.comb += [cnt.ev_inc[i].eq(blk.ev_inc), cnt.mac_inc[i].eq(blk.mac_inc)]

        cmd = i_stream.payload
        # Every layer (and the readout) starts at the beginning of the step and streams its
        # recurrent events at once; its input becomes final when the part below is done.
        fin = [Signal(name=f"fin{k}") for k in range(len(blocks))]   # part k is done
        src = [Signal(name=f"src{k}") for k in range(len(blocks))]   # part k's input started
        m.d.comb += layers[0].i_final.eq(1)
        for k in range(1, len(blocks)):
            m.d.comb += blocks[k].i_final.eq(src[k])
        part = Signal(range(L + 1))
        m.d.comb += part.eq(L)
        for k in reversed(range(L)):
            with m.If(~fin[k]):
                m.d.comb += part.eq(k)
        m.d.comb += cnt.part.eq(part)
        # The reset's end, from flip-flops: each part's ``busy`` is registered once by
        # itself, and only the AND of those copies (and of the queue's flags, flip-flops
        # already) is registered again into ``idle_q``. One AND of the parts' decoded
        # states across the die was the latest path of round fifteen's build at seed 3
        # (9.65 ns, 8.42 of it routing); the queue's level adder and compare in it had been
        # one seed's latest path before (11.8 ns). Only idleness seen in RST_WAIT counts:
        # in the RST cycle the parts have not started their reset pass, so a part's copy
        # counts from RST_WAIT's second cycle (``rst_wait_q``). Nothing starts while the
        # reset waits, so "all idle" a cycle or two ago is still true.
        rst_wait_q = Signal()
        m.d.sync += rst_wait_q.eq(rst_wait)
        idle = rst_wait & rst_wait_q & ~fifo.nonempty & ~q_out.o.valid
        for i, blk in enumerate(layers + ([ro] if ro is not None else [])):
            busy_q = Signal(name=f"part_busy_q{i}")
            m.d.sync += busy_q.eq(blk.busy)
            idle = idle & ~busy_q
        m.d.sync += idle_q.eq(idle)
        # The step's start reaches each part through a flip-flop of its own, a cycle after
        # the command: decoded from the command, the write wait and the FIFO straight into
        # every part's start, it crossed the die into the event readers' enables (6
        # levels, 11.9 ns, one seed's build at round thirteen)
        start_d = Signal()
        for i, blk in enumerate(blocks):
            m.submodules[f"start{i}"] = rep = Replica(1)
            m.d.comb += [rep.d.eq(start_d), blk.start.eq(rep.q)]
        with m.FSM() as fsm:
            with m.State("IDLE"):
                m.d.comb += w_stream.ready.eq(1)
                # commands wait for pending weight writes to land (hw.core.wport)
                queued = (cmd.op == Op.EVENT) | (cmd.op == Op.STEP_TOKEN)
                m.d.comb += i_stream.ready.eq(~wr_busy & (~queued | fifo.w_rdy))
                m.d.comb += fifo.w_data.eq(cmd.index | (cmd.value.as_unsigned() << 16))
                with m.If(cmd.op == Op.STEP_TOKEN):
                    m.d.comb += fifo.w_data.eq(cmd.index | ((1 << f.state_frac) << 16))
                go = Signal()
                with m.If(i_stream.valid & i_stream.ready):  # noqa: SIM117
                    with m.Switch(cmd.op):
                        with m.Case(Op.EVENT):
                            m.d.comb += fifo.w_en.eq(1)
                        with m.Case(Op.STEP_TOKEN):
                            m.d.comb += [fifo.w_en.eq(1), go.eq(1)]
                        with m.Case(Op.STEP):
                            m.d.comb += go.eq(1)
                        with m.Case(Op.RESET):
                            m.next = "RST"
                with m.If(go):
                    m.d.comb += [cnt.step_start.eq(1), start_d.eq(1)]
                    m.d.sync += [x.eq(0) for x in fin + src]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [self.busy.eq(1), cnt.running.eq(1)]
                for k, blk in enumerate(blocks):
                    with m.If(blk.done):
                        m.d.sync += fin[k].eq(1)
                for k, layer in enumerate(layers):
                    if k + 1 < len(blocks):
                        # the next part consumes this layer's events as they are produced
                        m.d.comb += layer.fwd_start.eq(layer.pw_start)
                        with m.If(layer.pw_start):
                            m.d.sync += src[k + 1].eq(1)
                if ro is not None:
                    with m.If(ro.done):
                        m.d.comb += cnt.step_end.eq(1)
                        m.next = "IDLE"
                else:
                    with m.If(layers[-1].done):
                        m.next = "ACK"
            with m.State("ACK"):
                # no readout: one acknowledgement word (kind 1, data -1, last 1)
                m.d.comb += [self.busy.eq(1), cnt.running.eq(1), out.i.valid.eq(1),
                             out.i.payload.data.eq(-1),
                             out.i.payload.kind.eq(1), out.i.payload.last.eq(1)]
                with m.If(out.i.ready):
                    m.d.comb += cnt.step_end.eq(1)
                    m.next = "IDLE"
            with m.State("RST"):
                m.d.comb += [self.busy.eq(1), cnt.clear_last.eq(1)]
                for layer in layers:
                    m.d.comb += layer.reset.eq(1)
                if ro is not None:
                    m.d.comb += ro.reset.eq(1)
                m.d.sync += flush.eq(1)
                m.next = "RST_WAIT"
            with m.State("RST_WAIT"):
                m.d.comb += [self.busy.eq(1), rst_wait.eq(1)]
                with m.If(idle_q):
                    m.d.sync += flush.eq(0)
                    m.next = "IDLE"
        one_hot(fsm)                  # (hw.core.fsm: one flip-flop per state)
        return m
