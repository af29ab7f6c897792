"""hw.core.skid: every word once, in order, under random valid and ready, with a registered
ready towards the producer; full throughput for SkidBuffer, half for HoldBuffer."""

import numpy as np
import pytest

from hw.core.skid import HoldBuffer, SkidBuffer
from sim.amaranth_sim import run_testbench


def run(p_valid, p_ready, n=300, seed=0, kind=SkidBuffer, copy=False):
    dut = kind(16, ready_copy=True) if copy else kind(16)
    rng = np.random.default_rng(seed)
    got, cycles = [], [0]

    async def tb(ctx):
        nxt = 0
        while len(got) < n:
            offer = nxt < n and rng.random() < p_valid
            ctx.set(dut.i.valid, int(offer))
            ctx.set(dut.i.payload, nxt)
            ready = rng.random() < p_ready
            ctx.set(dut.o.ready, int(ready))
            took = offer and ctx.get(dut.i.ready)
            if copy:        # the copy is the same flip-flop value, every cycle
                assert ctx.get(dut.ready_copy) == ctx.get(dut.i.ready)
            if ready and ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))
            await ctx.tick()
            cycles[0] += 1
            if took:
                nxt += 1

    run_testbench(dut, tb)
    return got, cycles[0]


@pytest.mark.parametrize("kind", [SkidBuffer, HoldBuffer])
def test_order_and_no_loss_under_random_handshakes(kind):
    for seed, (pv, pr) in enumerate([(0.5, 0.5), (1.0, 0.3), (0.3, 1.0), (0.9, 0.9)]):
        got, _ = run(pv, pr, seed=seed, kind=kind)
        assert got == list(range(300)), (pv, pr)


def test_full_throughput():
    got, cycles = run(1.0, 1.0, n=200)
    assert got == list(range(200))
    assert cycles == 201     # one word per cycle after one cycle of latency


def test_hold_buffer_half_throughput():
    got, cycles = run(1.0, 1.0, n=200, kind=HoldBuffer)
    assert got == list(range(200))
    assert cycles == 400     # a word every other cycle


def test_ready_copy_equals_ready():
    """``ready_copy`` (a second flip-flop, loaded with skid_v's next value) equals
    ``i.ready`` in every cycle of random traffic (``run`` asserts it), words intact."""
    for seed, (pv, pr) in enumerate([(0.5, 0.5), (1.0, 0.3), (0.9, 0.9), (0.3, 1.0)]):
        got, _ = run(pv, pr, seed=seed, copy=True)
        assert got == list(range(300))
