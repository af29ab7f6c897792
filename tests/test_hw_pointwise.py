"""hw.core.pointwise.PointwiseLane against the golden model's pointwise step (two passes, so
the stored state c is used), with random pipeline stalls."""

import numpy as np

from hw.bundle import load_bundle
from hw.core.pointwise import PointwiseLane
from hw.fixedpoint import make_tables
from sim.amaranth_sim import run_testbench
from sim.random_bundle import random_bundle
from sw.golden import Golden


def test_pointwise_lane_matches_golden(tmp_path):
    b = load_bundle(random_bundle(tmp_path / "b", layers=1, hidden=7, vocab=4, banks=1,
                                  seed=3))
    fmt, H = b.format, 7
    g = Golden(b)
    sig, tanh = make_tables(fmt)
    theta = [int(x) for x in b.arrays["l0.theta"]]
    dut = PointwiseLane(fmt=fmt, units=8, valid_units=H, ubits=3, theta=theta + [1],
                        sig=[int(x) for x in sig], tanh=[int(x) for x in tanh],
                        theta_id=99, bank=0)
    rng = np.random.default_rng(4)
    lim = 2 ** 22
    passes = [(rng.integers(-lim, lim, (3, H)), rng.integers(-lim, lim, (3, H)))
              for _ in range(12)]
    passes[2][0][:] = 2 ** 31 - 2 ** 20            # saturating pre-activations
    want = []
    for ax, ah in passes:
        c, y = g._pointwise(0, ax, ah)
        g.c[0] = c
        want.append((c.tolist(), y.tolist()))
    got = []

    async def tb(ctx):
        for ax, ah in passes:
            accs = [[int(ax[s % 3, u]) if s < 3 else int(ah[s % 3, u]) for s in range(6)]
                    for u in range(H)] + [[0] * 6]
            cur = [0] * 6
            u, out_c, out_y = 0, [], []
            while len(out_c) < 8:
                adv = int(rng.random() > 0.3)
                ctx.set(dut.adv, adv)
                ctx.set(dut.p0_valid, int(u < 8))
                ctx.set(dut.p0_u, min(u, 7))
                ctx.set(dut.acc, cur)
                if adv and ctx.get(dut.out_valid):
                    assert ctx.get(dut.out_u) == len(out_c)
                    out_c.append(ctx.get(dut.out_c))
                    out_y.append(ctx.get(dut.out_y))
                    assert bool(ctx.get(dut.out_fire)) == (out_y[-1] != 0)
                await ctx.tick()
                if adv and u < 8:
                    cur = accs[u]
                    u += 1
            got.append((out_c[:H], out_y[:H]))
            assert out_y[H] == 0                   # the padding unit never fires

    run_testbench(dut, tb)
    assert got == want
