"""A stand-in accelerator with the ports of ``hw.core.Accelerator``, for board-glue tests.

It computes nothing useful, but deterministically, so the protocol engine can be tested
alone (and quickly): after STEP_TOKEN ``t`` it emits ``vocab`` logits
``logit[k] = k`` except ``logit[(t + bias) % vocab] = 1000`` (when
``emit_logits``), then ``top1 = (t + bias) % vocab``, where ``bias`` is the data of the last
weight write. Each step takes ``latency`` cycles before its first word; counters count
steps, cycles, events (tokens) and macs (= vocab per step).
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "COUNTERS_LAYOUT",
    "WRITE_LAYOUT",
    "StubAccelerator",
    "in_cmd_layout",
    "out_word_layout",
]

OP_STEP_TOKEN, OP_EVENT, OP_STEP, OP_RESET = 0, 1, 2, 3

COUNTERS_LAYOUT = data.StructLayout({
    "steps": 32, "cycles": 48, "events": 32, "macs": 48,
    "last_cycles": 32, "last_events": 32, "last_macs": 32})
WRITE_LAYOUT = data.StructLayout({"mem": 8, "bank": 8, "addr": 16, "data": 32})


def in_cmd_layout(state_bits):
    return data.StructLayout({"op": 2, "index": 16, "value": signed(state_bits)})


def out_word_layout(acc_bits):
    return data.StructLayout({"data": signed(acc_bits), "kind": 1, "last": 1})


class StubAccelerator(wiring.Component):
    """Stand-in with the accelerator's ports (see module docstring).

    Parameters
    ----------
    vocab : number of logits per step.
    state_bits, acc_bits : widths of the command value and output data.
    latency : cycles from a step command to its first output word.
    """

    def __init__(self, *, vocab: int, state_bits: int = 16, acc_bits: int = 32,
                 latency: int = 20):
        if vocab < 2:
            raise ValueError(f"vocab must be >= 2, got {vocab!r}")
        self.vocab, self.state_bits, self.acc_bits = vocab, state_bits, acc_bits
        self.latency = latency
        super().__init__({
            "i_stream": In(stream.Signature(in_cmd_layout(state_bits))),
            "o_stream": Out(stream.Signature(out_word_layout(acc_bits))),
            "emit_logits": In(1),
            "counters": Out(COUNTERS_LAYOUT),
            "w_stream": In(stream.Signature(WRITE_LAYOUT)),
        })

    def elaborate(self, platform):
        m = Module()
        V = self.vocab
        token = Signal(16)
        bias = Signal(16)
        target = Signal(18)
        k = Signal(range(V + 1))
        wait = Signal(range(self.latency + 1))
        cyc = Signal(32)
        value = Signal(signed(self.acc_bits))
        fresh = Signal()
        c = self.counters

        m.d.comb += self.w_stream.ready.eq(1)
        with m.If(self.w_stream.valid):
            m.d.sync += bias.eq(self.w_stream.payload.data[:16])
        m.d.sync += c.cycles.eq(c.cycles + 1)

        with m.FSM(name="stub"):
            with m.State("START"):            # leave the initial state once (for Icarus)
                m.next = "IDLE"
            with m.State("IDLE"):
                m.d.comb += self.i_stream.ready.eq(1)
                with m.If(self.i_stream.valid):
                    cmd = self.i_stream.payload
                    with m.Switch(cmd.op):
                        with m.Case(OP_STEP_TOKEN):
                            m.d.sync += [token.eq(cmd.index), wait.eq(self.latency), k.eq(0),
                                         fresh.eq(0),
                                         cyc.eq(0), c.events.eq(c.events + 1),
                                         target.eq(cmd.index + bias)]
                            m.next = "WAIT"
                        with m.Case(OP_RESET):
                            m.d.sync += c.last_events.eq(0)
            with m.State("WAIT"):
                # target = (token + bias) mod V by repeated subtraction (no divider)
                m.d.sync += cyc.eq(cyc + 1)
                with m.If(target >= V):
                    m.d.sync += target.eq(target - V)
                with m.Elif(wait != 0):
                    m.d.sync += wait.eq(wait - 1)
                with m.Else():
                    m.next = "LOGITS"
            with m.State("LOGITS"):
                # Registered output: `value` is computed for logit k in the cycle after k
                # changes (`fresh`), so the stub adds no combinational path to its user.
                m.d.sync += [cyc.eq(cyc + 1), fresh.eq(1),
                             value.eq(Mux(k == target, 1000, k))]
                with m.If(~self.emit_logits):
                    m.next = "TOP1"
                with m.Else():
                    m.d.comb += [
                        self.o_stream.valid.eq(fresh),
                        self.o_stream.payload.data.eq(value),
                        self.o_stream.payload.kind.eq(0),
                    ]
                    with m.If(fresh & self.o_stream.ready):
                        m.d.sync += [k.eq(k + 1), fresh.eq(0)]
                        with m.If(k == V - 1):
                            m.next = "TOP1"
            with m.State("TOP1"):
                m.d.comb += [self.o_stream.valid.eq(1),
                             self.o_stream.payload.data.eq(target),
                             self.o_stream.payload.kind.eq(1),
                             self.o_stream.payload.last.eq(1)]
                with m.If(self.o_stream.ready):
                    m.d.sync += [c.steps.eq(c.steps + 1), c.macs.eq(c.macs + V),
                                 c.last_cycles.eq(cyc), c.last_events.eq(1),
                                 c.last_macs.eq(V)]
                    m.next = "IDLE"
        return m
