"""cocotb testbench of hw.core.Accelerator: driver / monitor / model (sw.golden) / checker.

Configured by environment variables (set by sim.runner): ``ACCEL_BUNDLE`` (bundle folder),
``ACCEL_SCENARIO`` (JSON, see sim/cocotb_accel/scenario.py), ``ACCEL_REPORT`` (JSON written
with per-step counters and timing). Every step's events and states (per layer, from the
``o_trace`` port), logits and top-1 are compared with the golden model with no tolerance.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, First, RisingEdge, Timer
from cocotb.utils import get_sim_time

from hw.bundle import load_bundle
from hw.core import (
    COUNTERS_SETTLE,
    Op,
    counters_layout,
    in_cmd_layout,
    out_word_layout,
    part_counters_layout,
    trace_layout,
    weight_writes,
    wwrite_layout,
)
from sim.cocotb_accel.layouts import pack, unpack
from sim.cocotb_accel.scenario import expand
from sim.cocotb_accel.streams import flag, offer, release


class Driver:
    """Sends the steps' commands on i_stream, with random idle gaps."""

    def __init__(self, dut, bundle, steps, rng, gap, writes=()):
        self.dut, self.steps, self.rng, self.gap = dut, steps, rng, gap
        self.layout = in_cmd_layout(bundle.format.state_bits)
        self.writes = list(writes)
        self.done = False

    async def load_weights(self):
        """Run-time weight load through w_stream (then a RESET copies the new biases)."""
        dut, layout = self.dut, wwrite_layout()
        for mem, bank, addr, word in self.writes:
            await offer(dut, "w_stream", pack(layout, {"mem": mem, "bank": bank,
                                                       "addr": addr, "data": word}),
                        gap=self.gap, rng=self.rng)
        await release(dut, "w_stream")

    def commands(self):
        for s in self.steps:
            if s[0] == "token":
                yield {"op": Op.STEP_TOKEN, "index": s[1], "value": 0}
            elif s[0] == "reset":
                yield {"op": Op.RESET, "index": 0, "value": 0}
            else:
                for j, v in s[1]:
                    yield {"op": Op.EVENT, "index": j, "value": v}
                yield {"op": Op.STEP, "index": 0, "value": 0}

    async def run(self):
        dut = self.dut
        if self.writes:
            await self.load_weights()
            self.steps = [("reset",)] + list(self.steps)
        for cmd in self.commands():
            await offer(dut, "i_stream", pack(self.layout, cmd), gap=self.gap, rng=self.rng)
        await release(dut, "i_stream")
        self.done = True


class Monitor:
    """Collects o_stream words and o_trace beats per step (random back-pressure)."""

    def __init__(self, dut, bundle, nsteps, rng, bp):
        self.dut, self.nsteps, self.rng, self.bp = dut, nsteps, rng, bp
        f = bundle.format
        self.word_l = out_word_layout(f.acc_bits)
        self.trace_l = trace_layout(bundle.banks, f.state_bits)
        self.cnt_l = counters_layout()
        self.part_l = part_counters_layout()
        self.L = bundle.num_layers
        self.words, self.beats, self.perf = [[]], [[]], []
        self.cycles = 0

    def read_counters(self):
        c = unpack(self.cnt_l, int(self.dut.counters.value))
        parts = int(self.dut.layer_counters.value)
        w = self.part_l.size
        c["parts"] = [unpack(self.part_l, (parts >> (i * w)) & ((1 << w) - 1))
                      for i in range(self.L + 1)]
        return c

    async def run(self, limit):
        dut = self.dut
        pending = None
        while len(self.perf) < self.nsteps:
            if (self.bp == 0 and pending is None and not flag(dut.o_trace__valid)
                    and not flag(dut.o_stream__valid)):
                # nothing to sample until an output becomes valid: skip the idle cycles
                dut.o_stream__ready.value = 1
                dut.o_trace__ready.value = 1
                await First(RisingEdge(dut.o_trace__valid), RisingEdge(dut.o_stream__valid),
                            Timer(10 * limit, unit="ns"))
            await FallingEdge(dut.clk)
            self.cycles = int(get_sim_time(unit="ns")) // 10
            if self.cycles > limit:
                raise AssertionError(f"timeout after {limit} cycles: {len(self.perf)} of "
                                     f"{self.nsteps} steps done")
            if pending is not None:
                pending -= 1
                if pending == 0:
                    self.perf.append(self.read_counters())
                    pending = None
            r_out = self.rng.random() >= self.bp
            r_tr = self.rng.random() >= self.bp
            dut.o_stream__ready.value = int(r_out)
            dut.o_trace__ready.value = int(r_tr)
            if r_tr and flag(dut.o_trace__valid):
                self.beats[-1].append(unpack(self.trace_l, int(dut.o_trace__payload.value)))
            if r_out and flag(dut.o_stream__valid):
                w = unpack(self.word_l, int(dut.o_stream__payload.value))
                self.words[-1].append((w["kind"], w["data"]))
                if w["last"]:
                    self.words.append([])
                    self.beats.append([])
                    pending = COUNTERS_SETTLE + 1


def check_step(bundle, k, exp, words, beats, emit_logits):
    P = bundle.banks
    for layer, lt in enumerate(exp.layers):
        H = bundle.hidden(layer)
        got = [b for b in beats if b["layer"] == layer]
        units = -(-H // P)
        assert [b["u"] for b in got] == list(range(units)), \
            f"step {k} layer {layer}: pointwise beats {[b['u'] for b in got]}"
        c = np.zeros(units * P, dtype=np.int64)
        y = np.zeros(units * P, dtype=np.int64)
        for b in got:
            for lane in range(P):
                c[b["u"] * P + lane] = b["c"][lane]
                y[b["u"] * P + lane] = b["y"][lane]
                fired = (b["mask"] >> lane) & 1
                assert bool(fired) == (b["y"][lane] != 0) or b["u"] * P + lane >= H, \
                    f"step {k} layer {layer}: mask/y disagree"
        ev = [(int(i), int(y[i])) for i in np.nonzero(y[:H])[0]]
        assert ev == lt.events, f"step {k} layer {layer}: events {ev} != golden {lt.events}"
        bad = np.nonzero(c[:H] != lt.c)[0]
        assert not len(bad), (f"step {k} layer {layer}: c differs at units {bad[:8].tolist()}: "
                              f"{c[bad[:8]].tolist()} != golden {lt.c[bad[:8]].tolist()}")
        assert not np.any(y[H:]), f"step {k} layer {layer}: padding unit fired"
    if exp.logits is None:
        assert words == [(1, -1)], f"step {k}: words {words} (no readout)"
        return
    if emit_logits:
        logits = [d for kind, d in words[:-1]]
        assert all(kind == 0 for kind, _ in words[:-1]), f"step {k}: word kinds"
        want = [int(x) for x in exp.logits]
        assert logits == want, f"step {k}: logits {logits[:8]}... != golden {want[:8]}..."
    else:
        assert len(words) == 1, f"step {k}: {len(words)} words without emit_logits"
    assert words[-1] == (1, exp.top1), f"step {k}: top1 {words[-1]} != golden {exp.top1}"


@cocotb.test()
async def accel_matches_golden(dut):
    """Every step's events, states, logits and top-1 equal the golden model's."""
    built = load_bundle(os.environ["ACCEL_BUNDLE"])
    scen = json.loads(os.environ.get("ACCEL_SCENARIO", "{}"))
    # "load": a bundle of the same architecture loaded at run time through w_stream
    bundle = load_bundle(scen["load"]) if scen.get("load") else built
    writes = list(weight_writes(bundle, like=built)) if scen.get("load") else []
    rng = np.random.default_rng(scen.get("seed", 0) + 1000)
    emit = int(scen.get("emit_logits", 1))
    t0 = time.perf_counter()
    steps, expected = expand(bundle, scen)
    t_model = time.perf_counter() - t0

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.i_stream__valid.value = 0
    dut.w_stream__valid.value = 0
    dut.o_stream__ready.value = 0
    dut.o_trace__ready.value = 0
    dut.emit_logits.value = emit
    for _ in range(3):
        await FallingEdge(dut.clk)
    dut.rst.value = 0

    driver = Driver(dut, bundle, steps, rng, float(scen.get("gap", 0)), writes)
    monitor = Monitor(dut, bundle, len(expected), rng, float(scen.get("bp", 0)))
    t1 = time.perf_counter()
    cocotb.start_soon(driver.run())
    limit = 10000 + 3 * len(writes) + len(expected) * 20 * (sum(int(np.sum(bundle.memories[m].nnz.max(axis=0)))
                                    for m in bundle.memories) + 200)
    await monitor.run(limit)
    t_sim = time.perf_counter() - t1

    for k, exp in enumerate(expected):
        check_step(bundle, k, exp, monitor.words[k], monitor.beats[k], emit)

    _write_report({"steps": len(expected), "sim_seconds": t_sim, "model_seconds": t_model,
                   "cycles": monitor.cycles, "perf": monitor.perf})


def _write_report(rep):
    path = os.environ.get("ACCEL_REPORT")
    if path:
        with open(path, "w") as fh:
            json.dump(rep, fh)
