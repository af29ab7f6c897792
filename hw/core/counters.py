"""Performance counters: cycles, events and MACs per step, in total and per layer."""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Counters", "counters_layout", "part_counters_layout"]


def counters_layout() -> data.StructLayout:
    """The ``counters`` port of the accelerator (docs/accelerator.md)."""
    return data.StructLayout({"steps": 32, "cycles": 48, "events": 32, "macs": 48,
                              "last_cycles": 32, "last_events": 32, "last_macs": 32})


def part_counters_layout() -> data.StructLayout:
    """The last step's figures of one part (a layer, or the readout)."""
    return data.StructLayout({"cycles": 32, "events": 32, "macs": 32})


class Counters(wiring.Component):
    """Counts while a step runs; latches the step's figures when it ends.

    Every input goes through ``latency`` register stages before it is counted (the whole
    picture shifted in time, so the figures are exact): stage 0 registers every input as it
    comes (the sequencer's decoded state, each part's handshakes), stage 1 each part's
    increments and stage 2 their sums. Without them the streamer's end-of-column logic, an
    adder tree over all lanes and the counters' carry chains formed one path across the
    die; without stage 0, the sequencer's decode of a command's handshake went across the
    die into stage 1 (8.7 ns, round seventeen's build K at seed 2).

    Parameters
    ----------
    parts : number of parts (layers + readout) with their own figures.
    lanes : P (largest ``mac_inc`` of one part).

    Members
    -------
    step_start, step_end, clear_last : In(1) pulses.
    part : In; which part is running (its index), valid while ``running``.
    running : In(1). ev_inc : In(array of 1 bit per part). mac_inc : In(array per part).
    counters : Out(`counters_layout`). part_counters : Out(array of `part_counters_layout`).
    """

    #: cycles from an input to the counters that reflect it
    latency = 4

    def __init__(self, *, parts, lanes):
        self.parts, self.lanes = parts, lanes
        super().__init__({
            "step_start": In(1), "step_end": In(1), "clear_last": In(1),
            "running": In(1), "part": In(range(max(2, parts))),
            "ev_inc": In(data.ArrayLayout(1, parts)),
            "mac_inc": In(data.ArrayLayout(range(lanes + 1), parts)),
            "counters": Out(counters_layout()),
            "part_counters": Out(data.ArrayLayout(part_counters_layout(), parts)),
        })

    def elaborate(self, platform):
        m = Module()
        c = self.counters
        ctl = ("step_start", "step_end", "clear_last", "running", "part")
        # stages 0 and 1: register everything as it comes, twice
        s0 = {n: Signal.like(getattr(self, n), name=f"s0_{n}") for n in ctl}
        ev0 = [Signal(name=f"s0_ev{i}") for i in range(self.parts)]
        mac0 = [Signal(range(self.lanes + 1), name=f"s0_mac{i}") for i in range(self.parts)]
        m.d.sync += [s0[n].eq(getattr(self, n)) for n in ctl]
        m.d.sync += [ev0[i].eq(self.ev_inc[i]) for i in range(self.parts)]
        m.d.sync += [mac0[i].eq(self.mac_inc[i]) for i in range(self.parts)]
        s1 = {n: Signal.like(s0[n], name=f"s1_{n}") for n in ctl}
        ev1 = [Signal(name=f"s1_ev{i}") for i in range(self.parts)]
        mac1 = [Signal(range(self.lanes + 1), name=f"s1_mac{i}") for i in range(self.parts)]
        m.d.sync += [s1[n].eq(s0[n]) for n in ctl]
        m.d.sync += [ev1[i].eq(ev0[i]) for i in range(self.parts)]
        m.d.sync += [mac1[i].eq(mac0[i]) for i in range(self.parts)]
        # stage 2: the sums over parts
        s2 = {n: Signal.like(s1[n], name=f"s2_{n}") for n in ctl}
        ev_inc = Signal(range(self.parts + 1))
        mac_inc = Signal(range(self.parts * self.lanes + 1))
        m.d.sync += [s2[n].eq(s1[n]) for n in ctl]
        m.d.sync += [ev_inc.eq(sum(ev1)), mac_inc.eq(sum(mac1))]

        cyc, ev, mac = Signal(32), Signal(32), Signal(32)
        pc = [[Signal(32, name=f"p{i}_{n}") for n in ("cyc", "ev", "mac")]
              for i in range(self.parts)]
        with m.If(s2["running"]):
            m.d.sync += [cyc.eq(cyc + 1), ev.eq(ev + ev_inc), mac.eq(mac + mac_inc),
                         c.cycles.eq(c.cycles + 1), c.events.eq(c.events + ev_inc),
                         c.macs.eq(c.macs + mac_inc)]
            for i in range(self.parts):
                with m.If(s2["part"] == i):
                    m.d.sync += [pc[i][0].eq(pc[i][0] + 1), pc[i][1].eq(pc[i][1] + ev_inc),
                                 pc[i][2].eq(pc[i][2] + mac_inc)]
        with m.If(s2["step_start"]):
            m.d.sync += [cyc.eq(0), ev.eq(0), mac.eq(0)]
            m.d.sync += [s.eq(0) for row in pc for s in row]
        with m.If(s2["step_end"]):
            m.d.sync += [c.steps.eq(c.steps + 1), c.last_cycles.eq(cyc),
                         c.last_events.eq(ev), c.last_macs.eq(mac)]
            for i in range(self.parts):
                p = self.part_counters[i]
                m.d.sync += [p.cycles.eq(pc[i][0]), p.events.eq(pc[i][1]),
                             p.macs.eq(pc[i][2])]
        with m.If(s2["clear_last"]):
            m.d.sync += [c.last_cycles.eq(0), c.last_events.eq(0), c.last_macs.eq(0)]
            m.d.sync += [s.eq(0) for p_ in self.part_counters
                         for s in (p_.cycles, p_.events, p_.macs)]
        return m
