"""hw.core.events: the event store serializes beats into events in unit order, 1 per cycle."""

import numpy as np
from amaranth.hdl import Module, Signal

from hw.core.events import EventStore, _at_most
from sim.amaranth_sim import run_testbench


def _run(P, U, beats, stall_p=0.0, seed=0):
    dut = EventStore(banks=P, state_bits=16, ubits=max(1, (U - 1).bit_length()), depth=U)
    rng = np.random.default_rng(seed)
    got = {"rec": [], "fwd": []}
    cycles = {}

    async def tb(ctx):
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        for u, mask, y in beats:
            ctx.set(dut.i_beat.payload, {"u": u, "mask": mask, "y": y})
            ctx.set(dut.i_beat.valid, 1)
            await ctx.tick()
        ctx.set(dut.i_beat.valid, 0)
        for name in ("rec", "fwd"):
            port = getattr(dut, f"o_{name}")
            ctx.set(getattr(dut, f"{name}_start"), 1)
            await ctx.tick()
            ctx.set(getattr(dut, f"{name}_start"), 0)
            n = 0
            while ctx.get(getattr(dut, f"{name}_busy")):
                ready = int(rng.random() >= stall_p)
                ctx.set(port.ready, ready)
                if ready and ctx.get(port.valid):
                    p = ctx.get(port.payload)
                    got[name].append((int(p.index), int(p.value)))
                await ctx.tick()
                n += 1
                assert n < 1000
            cycles[name] = n

    run_testbench(dut, tb)
    return got, cycles


def _beats(P, U, density, seed):
    rng = np.random.default_rng(seed)
    beats, events = [], []
    for u in range(U):
        fire = rng.random(P) < density
        y = [int(v) if f else 0 for v, f in zip(rng.integers(1, 3000, P), fire)]
        mask = sum(1 << b for b in range(P) if fire[b])
        beats.append((u, mask, y))
        events += [(u * P + b, y[b]) for b in range(P) if fire[b]]
    return beats, events


def test_serializes_in_order_one_event_per_cycle():
    for P, U, density in ((4, 6, 0.5), (1, 5, 0.6), (3, 4, 1.0), (8, 3, 0.0), (8, 12, 0.1)):
        beats, events = _beats(P, U, density, seed=P)
        got, cycles = _run(P, U, beats)
        assert got["rec"] == events and got["fwd"] == events
        # one event per cycle, but at least two cycles per beat (a beat is read only into
        # an empty read register: `BeatSerializer`), plus a fixed start-up/drain overhead
        n = [mask.bit_count() for _, mask, _ in beats]
        bound = sum(max(k, 2) for k in n if k) + 4
        assert cycles["rec"] <= bound and cycles["fwd"] <= bound, (P, U, cycles, bound)


def test_back_pressure():
    beats, events = _beats(4, 8, 0.5, seed=9)
    got, _ = _run(4, 8, beats, stall_p=0.5, seed=3)
    assert got["rec"] == events and got["fwd"] == events


def test_at_most_counts_set_bits():
    """The serializer's flags (rem empty / at most one event left) are read off `_at_most`,
    LUT logic instead of ``x & (x - 1)``: every 8-bit mask and the 1-bit one."""
    m = Module()
    x, x1 = Signal(8), Signal(1)
    outs = {k: Signal(name=f"le{k}") for k in (1, 2)}
    one = Signal()
    m.d.comb += [o.eq(_at_most(x, k)) for k, o in outs.items()]
    m.d.comb += one.eq(_at_most(x1, 1))

    async def tb(ctx):
        for v in range(256):
            ctx.set(x, v)
            for k, o in outs.items():
                assert ctx.get(o) == (v.bit_count() <= k), (v, k)
        for v in range(2):
            ctx.set(x1, v)
            assert ctx.get(one) == 1

    run_testbench(m, tb, clock=False)
