"""hw.core.mac.MacLane: read-modify-write at 1 entry/cycle, with back-to-back hits on the same
accumulator (forwarding), wrapping adds, and the bias write-back on an external read."""

import numpy as np
from amaranth.sim import Simulator

from hw.core.mac import MacLane
from hw.fixedpoint import Format, wrap


def test_mac_hazards_and_writeback():
    fmt = Format(acc_bits=24)
    U = 4
    rng = np.random.default_rng(0)
    bias = [[int(x) for x in rng.integers(-1000, 1000, U)] for _ in range(6)]
    dut = MacLane(slots=6, depth=U, fmt=fmt, ubits=2, bias=bias, bias_ids=(200, 201))
    # bursts that hit the same accumulator repeatedly, back to back and at distance 2
    entries = [(0, 1, 100, 2000)] * 5 + [(1, 1, -7, 3000), (0, 1, 3, 5), (1, 1, 2, 4)] + \
        [(int(a), int(s), int(w), int(v)) for a, s, w, v in
         zip(rng.integers(0, U, 40), rng.integers(0, 6, 40), rng.integers(-128, 128, 40),
             rng.integers(-2 ** 15, 2 ** 15, 40))]
    acc = np.array(bias, dtype=np.int64)            # (6, U)
    for a, s, w, v in entries:
        acc[s, a] += w * v
    acc = wrap(acc, fmt.acc_bits)
    got = np.zeros_like(acc)

    async def tb(ctx):
        for a, s, w, v in entries:
            ctx.set(dut.i, {"valid": 1, "addr": a, "sel": s, "w": w, "v": v})
            await ctx.tick()
        ctx.set(dut.i, {"valid": 0})
        await ctx.tick().repeat(3)
        ctx.set(dut.ext, 1)
        for u in range(U):                         # read + write back biases
            ctx.set(dut.rd_en, 1)
            ctx.set(dut.rd_addr, u)
            ctx.set(dut.rd_mask, 0b111111)
            await ctx.tick()
            ctx.set(dut.rd_en, 0)
            got[:, u] = [ctx.get(dut.rd_data[s]) for s in range(6)]
        await ctx.tick()
        for u in range(U):                         # now the biases again
            ctx.set(dut.rd_en, 1)
            ctx.set(dut.rd_addr, u)
            ctx.set(dut.rd_mask, 0)
            await ctx.tick()
            assert [ctx.get(dut.rd_data[s]) for s in range(6)] == [bias[s][u] for s in range(6)]

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert np.array_equal(got, acc), (got, acc)
