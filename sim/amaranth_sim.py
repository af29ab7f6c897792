"""Drive hw.core.Accelerator in the Amaranth simulator and check it against sw.golden (used
by tests/test_hw_*.py; no Verilog, no cocotb)."""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from hw.core import COUNTERS_SETTLE, Op
from sw.golden import Golden

#: a step (or a command's handshake) that takes longer than this has hung: the test models
#: take a few thousand cycles a step
STEP_CYCLES = 100_000


def run_testbench(dut, bench, *, clock=True):
    """Run the async testbench ``bench(ctx)`` on ``dut`` (a sync clock of 100 MHz unless
    ``clock`` is False, for combinational designs)."""
    sim = Simulator(dut)
    if clock:
        sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def run_accel_amaranth(bundle, steps, *, emit_logits=True, trace=True, stall=False, seed=0,
                       dut=None):
    """Drive an Accelerator through ``steps`` (list of event lists, ('token', t), ('reset',),
    ('queue', events): EVENT commands with no STEP, or ('write', mem, bank, addr, data): a
    ``w_stream`` write) in the Amaranth simulator; return (per-step output words, per-step
    trace beats, counters)."""
    from hw.core import Accelerator
    dut = dut or Accelerator(bundle, trace=trace)
    rng = np.random.default_rng(seed)
    P = bundle.banks
    result = {"words": [], "beats": [], "counters": None}

    async def tb(ctx):
        ctx.set(dut.emit_logits, int(emit_logits))
        ctx.set(dut.o_stream.ready, 1)
        if trace:
            ctx.set(dut.o_trace.ready, 1)

        async def handshake(valid, ready, what):
            # (a hung design fails here, with the command it hung on, not by never ending)
            ctx.set(valid, 1)
            for _ in range(STEP_CYCLES):
                if ctx.get(ready):
                    await ctx.tick()
                    ctx.set(valid, 0)
                    return
                await ctx.tick()
            raise AssertionError(f"{what}: not accepted in {STEP_CYCLES} cycles")

        async def send(op, index=0, value=0):
            ctx.set(dut.i_stream.payload, {"op": op, "index": index, "value": value})
            await handshake(dut.i_stream.valid, dut.i_stream.ready, f"command {op!r}")

        for step in steps:
            if isinstance(step, tuple) and step[0] == "token":
                await send(Op.STEP_TOKEN, step[1])
            elif isinstance(step, tuple) and step[0] == "reset":
                await send(Op.RESET)
                continue
            elif isinstance(step, tuple) and step[0] == "queue":
                for j, v in step[1]:
                    await send(Op.EVENT, j, v)
                continue
            elif isinstance(step, tuple) and step[0] == "write":
                ctx.set(dut.w_stream.payload, dict(zip(("mem", "bank", "addr", "data"),
                                                       step[1:])))
                await handshake(dut.w_stream.valid, dut.w_stream.ready, f"write {step[1:]}")
                continue
            else:
                for j, v in step:
                    await send(Op.EVENT, j, v)
                await send(Op.STEP)
            words, beats = [], []
            for _ in range(STEP_CYCLES):
                if stall:
                    ctx.set(dut.o_stream.ready, int(rng.random() < 0.6))
                    if trace:
                        ctx.set(dut.o_trace.ready, int(rng.random() < 0.6))
                done = False
                if trace and ctx.get(dut.o_trace.valid) and ctx.get(dut.o_trace.ready):
                    t = ctx.get(dut.o_trace.payload)
                    beats.append((int(t.layer), int(t.u), int(t.mask),
                                  [int(t.y[b]) for b in range(P)],
                                  [int(t.c[b]) for b in range(P)]))
                if ctx.get(dut.o_stream.valid) and ctx.get(dut.o_stream.ready):
                    w = ctx.get(dut.o_stream.payload)
                    words.append((int(w.kind), int(w.data)))
                    done = bool(w.last)
                await ctx.tick()
                if done:
                    break
            else:
                raise AssertionError(f"step {len(result['words'])}: no last output word in "
                                     f"{STEP_CYCLES} cycles")
            result["words"].append(words)
            result["beats"].append(beats)
        for _ in range(COUNTERS_SETTLE):
            await ctx.tick()
        c = ctx.get(dut.counters)
        result["counters"] = {k: int(getattr(c, k)) for k in
                              ("steps", "cycles", "events", "macs", "last_cycles",
                               "last_events", "last_macs")}

    run_testbench(dut, tb)
    return result


def beats_to_states(bundle, beats):
    """Per layer: (c, y) arrays reconstructed from one step's trace beats."""
    P = bundle.banks
    out = {}
    for layer, u, mask, y, c in beats:
        H = bundle.hidden(layer)
        cs, ys = out.setdefault(layer, (np.zeros(H, np.int64), np.zeros(H, np.int64)))
        for b in range(P):
            i = u * P + b
            if i < H:
                cs[i], ys[i] = c[b], y[b]
    return out


def check_against_golden(bundle, steps, result, *, emit_logits=True, trace=True):
    g = Golden(bundle)
    out = 0                                   # index of the step's output in ``result``
    for t, step in enumerate(steps):
        if isinstance(step, tuple) and step[0] == "reset":
            g.reset()
            continue
        if isinstance(step, tuple) and step[0] in ("write", "queue"):
            continue             # (queued events: only before a RESET, which drops them)
        if isinstance(step, tuple):
            st = g.step_token(step[1])
        else:
            st = g.step_events(step)
        words = result["words"][out]
        if trace:
            states = beats_to_states(bundle, result["beats"][out])
            for k, lt in enumerate(st.layers):
                c, y = states[k]
                assert np.array_equal(c, lt.c), f"step {t} layer {k} c: {c} vs {lt.c}"
                assert np.array_equal(y, lt.y), f"step {t} layer {k} y: {y} vs {lt.y}"
        out += 1
        if st.logits is not None:
            if emit_logits:
                got = [d for kind, d in words if kind == 0]
                assert got == [int(x) for x in st.logits], f"step {t} logits"
            assert words[-1] == (1, st.top1), f"step {t} top1 {words[-1]} vs {st.top1}"
