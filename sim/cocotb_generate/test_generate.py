"""cocotb: greedy text generation on the accelerator RTL, checked against the golden model.

The prompt tokens go to ``i_stream`` as STEP_TOKEN commands; after every step the top-1
word (``kind = 1``, ``last = 1``) is read from ``o_stream`` (``emit_logits = 0``). After the
prompt, the RTL's own top-1 is fed back as the next token, ``GEN_TOKENS`` times. The
generated ids are written to a JSON file and compared with `sw.generate.generate_ids` on
the same bundle (greedy), token for token.

Configuration (environment variables, set by `sim.generate_rtl`):

- ``GEN_BUNDLE``: the bundle folder the design was generated from;
- ``GEN_PROMPT_IDS``: JSON list of prompt token ids (at least one);
- ``GEN_TOKENS``: tokens to generate;
- ``GEN_OUT``: JSON file to write (or the plusarg ``+GEN_OUT=path``): ``{"prompt_ids",
  "rtl_ids", "golden_ids", "prompt_top1", "identical", "cycles", "step_cycles",
  "sim_seconds", "golden_seconds"}``; written before the comparison, so it exists on failure.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, First, RisingEdge, Timer
from cocotb.utils import get_sim_time

from hw.bundle import load_bundle
from hw.core import Op, in_cmd_layout, out_word_layout
from sim.cocotb_accel.layouts import pack, unpack
from sim.cocotb_accel.streams import flag, offer, release

PERIOD_NS = 10


def _out_path() -> str | None:
    return cocotb.plusargs.get("GEN_OUT") or os.environ.get("GEN_OUT")


def _write_report(report: dict) -> None:
    path = _out_path()
    if path:
        with open(path, "w") as fh:
            json.dump(report, fh)


class Host:
    """Drives i_stream (one STEP_TOKEN at a time) and reads o_stream (always ready)."""

    def __init__(self, dut, bundle, step_limit: int):
        self.dut = dut
        self.cmd_l = in_cmd_layout(bundle.format.state_bits)
        self.word_l = out_word_layout(bundle.format.acc_bits)
        self.step_limit = step_limit

    def cycle(self) -> int:
        return int(get_sim_time(unit="ns")) // PERIOD_NS

    async def send(self, cmd: dict) -> None:
        await offer(self.dut, "i_stream", pack(self.cmd_l, cmd))
        await release(self.dut, "i_stream")

    async def read_word(self) -> dict:
        """The next o_stream word (valid sampled at a falling edge; ready is held at 1, so
        it transfers at the next rising edge). Idle cycles are skipped by waiting on valid."""
        dut = self.dut
        start = self.cycle()
        while True:
            if not flag(dut.o_stream__valid):
                await First(RisingEdge(dut.o_stream__valid),
                            Timer(PERIOD_NS * self.step_limit, unit="ns"))
            await FallingEdge(dut.clk)
            if flag(dut.o_stream__valid):
                word = unpack(self.word_l, int(dut.o_stream__payload.value))
                await RisingEdge(dut.clk)               # the transfer
                return word
            if self.cycle() - start > self.step_limit:
                raise AssertionError(f"no o_stream word within {self.step_limit} cycles")

    async def step_token(self, token: int) -> int:
        """One STEP_TOKEN; return the step's top-1 index."""
        await self.send({"op": Op.STEP_TOKEN, "index": int(token), "value": 0})
        word = await self.read_word()
        assert word["kind"] == 1 and word["last"] == 1, f"unexpected o_stream word {word}"
        return int(word["data"])


@cocotb.test()
async def generate_matches_golden(dut):
    """Greedy generation on the RTL equals `generate_ids` on the golden model."""
    bundle = load_bundle(os.environ["GEN_BUNDLE"])
    prompt = [int(t) for t in json.loads(os.environ["GEN_PROMPT_IDS"])]
    n = int(os.environ.get("GEN_TOKENS", "20"))
    assert prompt, "the prompt must hold at least one token"
    assert bundle.model.get("kind") == "lm", "text generation needs a language-model bundle"
    # generous per-step bound: every column of every memory at its worst bank, plus slack
    nnz = sum(int(bundle.memories[m].nnz.max(axis=0).sum()) for m in bundle.memories)
    host = Host(dut, bundle, step_limit=4 * nnz + 10000)

    # the GPI (C) clock: no Python callback per clock edge (cocotb 2 picks the Python
    # clock unless COCOTB_TRUST_INERTIAL_WRITES is set); inputs change at falling edges only
    Clock(dut.clk, PERIOD_NS, unit="ns", impl=os.environ.get("GEN_CLOCK_IMPL", "gpi")).start()
    dut.rst.value = 1
    dut.i_stream__valid.value = 0
    dut.w_stream__valid.value = 0
    dut.o_stream__ready.value = 1
    dut.emit_logits.value = 0
    for _ in range(3):
        await FallingEdge(dut.clk)
    dut.rst.value = 0

    t0 = time.perf_counter()
    c0 = host.cycle()
    prompt_top1, step_cycles = [], []
    for t in prompt:
        c = host.cycle()
        prompt_top1.append(await host.step_token(t))
        step_cycles.append(host.cycle() - c)
    rtl = []
    nxt = prompt_top1[-1]
    for _ in range(n):
        rtl.append(nxt)
        if len(rtl) == n:                            # the last token needs no further step
            break
        c = host.cycle()
        nxt = await host.step_token(nxt)
        step_cycles.append(host.cycle() - c)
    t_sim = time.perf_counter() - t0
    cycles = host.cycle() - c0

    from sw.generate import generate_ids
    from sw.golden import Golden
    t1 = time.perf_counter()
    golden = generate_ids(Golden(bundle), prompt, n) if n else []
    t_gold = time.perf_counter() - t1

    report = {"prompt_ids": prompt, "rtl_ids": rtl, "golden_ids": golden,
              "prompt_top1": prompt_top1, "identical": rtl == golden, "cycles": cycles,
              "step_cycles": step_cycles, "steps": len(step_cycles),
              "sim_seconds": t_sim, "golden_seconds": t_gold}
    _write_report(report)
    first = next((i for i, (a, b) in enumerate(zip(rtl, golden)) if a != b), None)
    assert rtl == golden, (f"RTL and golden differ at generated token {first}: "
                           f"rtl {rtl[first:first + 8]} golden {golden[first:first + 8]}")
