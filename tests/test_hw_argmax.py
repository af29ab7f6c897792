"""The readout's pipelined arg-max against numpy's (first maximum wins)."""

import numpy as np
import pytest

from hw.core.argmax import ArgMax
from sim.amaranth_sim import run_testbench


@pytest.mark.parametrize("gaps", [False, True])
@pytest.mark.parametrize("width", [1, 2, 3, 8])
def test_argmax_matches_numpy(width, gaps):
    """Rows back to back, or with idle cycles between them (``gaps``): the running best
    decides against the row ahead of it or against the best, whichever is current."""
    rng = np.random.default_rng(width)
    dut = ArgMax(width, 16, 8)
    rows = 5
    cases = []
    for trial in range(12):
        vals = rng.integers(-4, 4, size=rows * width)         # many ties on purpose
        if trial == 5:
            vals[:] = -(2 ** 15)                               # all at the minimum
        if trial == 6:
            vals = np.arange(rows * width) - 3                 # every row beats the last
        if trial == 7:
            vals = 3 - np.arange(rows * width)                 # the first row wins
        if trial >= 8:
            # the running best compares the four quarters of a value apart (4 bits each
            # here): equal upper quarters with a lower one that decides, and a signed top
            n = rows * width
            vals = rng.choice([-8, -1, 0, 1, 7], size=n) * 4096
            for k in range(3):
                vals = vals + rng.choice([0, 1, 7, 8, 15] if trial != 8 or k < 2 else [0],
                                         size=n) * 16 ** k
        mask = rng.random(rows * width) < (0.4 if trial == 2 else 1.0)
        mask[rng.integers(0, rows * width)] = True
        cases.append((vals, mask))
    results = []

    async def bench(ctx):
        for vals, mask in cases:
            ctx.set(dut.clear, 1)
            for r in range(rows):
                ctx.set(dut.push, 1)
                ctx.set(dut.base, r * width)
                ctx.set(dut.mask, sum(int(mask[r * width + b]) << b for b in range(width)))
                for b in range(width):
                    ctx.set(dut.values[b], int(vals[r * width + b]))
                await ctx.tick()
                ctx.set(dut.clear, 0)
                if gaps and r < rows - 1 and rng.random() < 0.5:
                    ctx.set(dut.push, 0)
                    for _ in range(int(rng.integers(1, 3))):
                        await ctx.tick()
            ctx.set(dut.push, 0)
            ticks = 0
            while ctx.get(dut.busy):
                await ctx.tick()
                ticks += 1
            assert ticks == dut.stages - 1          # the push itself took one tick
            results.append(ctx.get(dut.best))

    run_testbench(dut, bench)
    for (vals, mask), got in zip(cases, results):
        masked = np.where(mask, vals, np.iinfo(np.int64).min)
        assert got == int(np.argmax(masked))
