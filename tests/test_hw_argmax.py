"""The readout's pipelined arg-max against numpy's (first maximum wins)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.core.argmax import ArgMax


@pytest.mark.parametrize("width", [1, 2, 3, 8])
def test_argmax_matches_numpy(width):
    rng = np.random.default_rng(width)
    dut = ArgMax(width, 16, 8)
    rows = 5
    cases = []
    for trial in range(6):
        vals = rng.integers(-4, 4, size=rows * width)         # many ties on purpose
        if trial == 5:
            vals[:] = -(2 ** 15)                               # all at the minimum
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
            ctx.set(dut.push, 0)
            ticks = 0
            while ctx.get(dut.busy):
                await ctx.tick()
                ticks += 1
            assert ticks == dut.stages - 1          # the push itself took one tick
            results.append(ctx.get(dut.best))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    for (vals, mask), got in zip(cases, results):
        masked = np.where(mask, vals, np.iinfo(np.int64).min)
        assert got == int(np.argmax(masked))
