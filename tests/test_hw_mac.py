"""hw.core.mac.MacLane: read-modify-write at 1 entry/cycle, with hits on the same accumulator
back to back and at every distance up to past the pipeline (forwarding), idle gaps, wrapping
adds, and the bias write-back on an external read."""

import re

import numpy as np
import pytest

from hw.core.mac import MacLane
from hw.fixedpoint import Format, wrap
from sim.amaranth_sim import run_testbench

U = 4


async def read_unit(ctx, dut, u, mask):
    """Reads unit ``u``'s slots (one per cycle when there are several) with the bias
    write-back of ``mask``; returns the slots' values once they are in ``rd_data``."""
    S = dut.slots
    ctx.set(dut.rd_en, 1)
    ctx.set(dut.rd_addr, u)
    ctx.set(dut.rd_mask, mask)
    for s in range(S):
        ctx.set(dut.rd_slot, s)
        await ctx.tick()
    ctx.set(dut.rd_en, 0)
    if S > 1:
        for _ in range(MacLane.gather_latency - 1):
            await ctx.tick()
    return [ctx.get(dut.rd_data[s]) for s in range(S)]


def _run(entries, *, fmt, bias, steps=1):
    """Drives ``entries`` (tuples (addr, sel, w, v) or None for an idle cycle), reads all
    accumulators back with the bias write-back, ``steps`` times; checks against a model."""
    S = len(bias)
    dut = MacLane(slots=S, depth=U, fmt=fmt, ubits=2, bias=bias,
                  bias_ids=(200, 201) if S == 6 else (200,))
    acc = np.array(bias, dtype=np.int64)            # (S, U)
    for e in entries:
        if e is not None:
            a, s, w, v = e
            acc[s, a] += w * v
    acc = wrap(acc, fmt.acc_bits)
    got = []

    async def tb(ctx):
        for _ in range(steps):
            for e in entries:
                if e is None:
                    ctx.set(dut.i, {"valid": 0})
                else:
                    a, s, w, v = e
                    ctx.set(dut.i, {"valid": 1, "addr": a, "sel": s, "w": w, "v": v})
                await ctx.tick()
            ctx.set(dut.i, {"valid": 0})
            while ctx.get(dut.busy):                   # the users wait for ~busy
                await ctx.tick()
                # busy_q (the layer's drained snapshot, hw.core.drain) is busy a cycle late
                assert ctx.get(dut.busy_q) == 1
            await ctx.tick()
            assert ctx.get(dut.busy_q) == 0
            ctx.set(dut.ext, 1)
            g = np.zeros_like(acc)
            for u in range(U):                         # read + write back biases
                g[:, u] = await read_unit(ctx, dut, u, (1 << S) - 1)
            got.append(g)
            ctx.set(dut.ext, 0)                        # next step right away

        await ctx.tick()
        ctx.set(dut.ext, 1)
        for u in range(U):                             # now the biases again
            assert await read_unit(ctx, dut, u, 0) == [bias[s][u] for s in range(S)]

    run_testbench(dut, tb)
    for g in got:
        assert np.array_equal(g, acc), (g, acc)


def _bias(rng, S):
    return [[int(x) for x in rng.integers(-1000, 1000, U)] for _ in range(S)]


def test_mac_hazards_and_writeback():
    fmt = Format(acc_bits=24)
    rng = np.random.default_rng(0)
    bias = _bias(rng, 6)
    # bursts that hit the same accumulator repeatedly, back to back and at distance 2
    entries = [(0, 1, 100, 2000)] * 5 + [(1, 1, -7, 3000), (0, 1, 3, 5), (1, 1, 2, 4)] + \
        [(int(a), int(s), int(w), int(v)) for a, s, w, v in
         zip(rng.integers(0, U, 40), rng.integers(0, 6, 40), rng.integers(-128, 128, 40),
             rng.integers(-2 ** 15, 2 ** 15, 40))]
    _run(entries, fmt=fmt, bias=bias, steps=2)


@pytest.mark.parametrize("dist", range(1, MacLane.stages + 3))
@pytest.mark.parametrize("filler", ["other", "idle", "same_addr_other_slot"])
def test_mac_hazard_at_distance(dist, filler):
    """The same accumulator hit every ``dist`` cycles; the cycles between carry entries to other
    accumulators, other slots at the same address, or nothing."""
    fmt = Format(acc_bits=24)
    rng = np.random.default_rng(dist)
    bias = _bias(rng, 6)
    entries = []
    for k in range(8):
        entries.append((2, 4, int(rng.integers(-128, 128)), int(rng.integers(-2 ** 15, 2 ** 15))))
        for j in range(dist - 1):
            if filler == "idle":
                entries.append(None)
            elif filler == "other":
                entries.append((int((3 + j) % U), int(j % 6), 5, 7 + k))
            else:
                entries.append((2, int((5 + j) % 6), -3, 11 + k))
    _run(entries, fmt=fmt, bias=bias, steps=2)


@pytest.mark.parametrize("seed", range(4))
def test_mac_random_dense(seed):
    """Random entries on few accumulators (many hits at all distances), random idle gaps,
    wrapping at 24 bits; 1 slot (the readout's lane) and 6 slots."""
    rng = np.random.default_rng(100 + seed)
    fmt = Format(acc_bits=24)
    for S in (1, 6):
        bias = _bias(rng, S)
        entries = [None if rng.random() < 0.2 else
                   (int(rng.integers(0, 2)), int(rng.integers(0, min(S, 2))),
                    int(rng.integers(-128, 128)), int(rng.integers(-2 ** 15, 2 ** 15)))
                   for _ in range(120)]
        _run(entries, fmt=fmt, bias=bias, steps=2)


@pytest.mark.parametrize("slots,block", [(6, True), (1, False)])
def test_layer_accumulators_are_one_block_ram(slots, block):
    """A layer lane's six slots are one memory of ``6 << ubits`` words that Yosys must put
    in block RAM (the fit check counts one DP16KD per lane for it); the readout's one-slot
    lane stays in LUT RAM."""
    from amaranth.back import rtlil
    fmt = Format(acc_bits=24)
    dut = MacLane(slots=slots, depth=U, fmt=fmt, ubits=2, bias=_bias(np.random.default_rng(1),
                  slots), bias_ids=(200, 201) if slots == 6 else (200,))
    text = rtlil.convert(dut)
    acc = [m for m in re.finditer(r"((?:\s*attribute [^\n]*\n)*)\s*memory[^\n]*\\acc\b[^\n]*",
                                  text)]
    assert len(acc) == 1, "one accumulator memory"
    assert f"size {max(2, slots << 2)}" in acc[0].group(0)
    assert ('ram_style "block"' in acc[0].group(1)) == block
