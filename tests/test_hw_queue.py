"""hw.core.queue: the input event queue keeps every word once and in order under random
writes and reads, reads one word per cycle, says when it is full and nonempty, and maps to a
block RAM whose read data feeds flip-flops with no logic between (no collision emulation)."""

import json

import numpy as np
import pytest

from hw.core.queue import EventQueue
from sim.amaranth_sim import run_testbench
from sim.yosys_stat import yosys_stat

DEPTH = 13


def run(p_write, p_ready, n=300, seed=0, depth=DEPTH):
    dut = EventQueue(16, depth=depth)
    rng = np.random.default_rng(seed)
    got, cycles, in_queue = [], [0], []

    async def tb(ctx):
        nxt = 0
        while len(got) < n:
            write = nxt < n and rng.random() < p_write
            ctx.set(dut.w_en, int(write))
            ctx.set(dut.w_data, nxt)
            ready = rng.random() < p_ready
            ctx.set(dut.o.ready, int(ready))
            took = write and ctx.get(dut.w_rdy)
            # the memory holds at most `depth` words, plus two in flight
            assert len(in_queue) <= depth + 2
            assert ctx.get(dut.nonempty) == (len(in_queue) > 0)
            if ready and ctx.get(dut.o.valid):
                word = ctx.get(dut.o.payload)
                got.append(word)
                assert in_queue.pop(0) == word
            await ctx.tick()
            cycles[0] += 1
            if took:
                in_queue.append(nxt)
                nxt += 1
        assert cycles[0] < 20 * n, "the queue stopped delivering"

    run_testbench(dut, tb)
    return got, cycles[0]


@pytest.mark.parametrize("pw,pr", [(0.5, 0.5), (1.0, 0.3), (0.3, 1.0), (0.9, 0.9), (1.0, 0.05)])
def test_order_and_no_loss_under_random_handshakes(pw, pr):
    got, _ = run(pw, pr, seed=int(pw * 10 + pr * 100))
    assert got == list(range(300))


def test_one_word_per_cycle():
    got, cycles = run(1.0, 1.0, n=200)
    assert got == list(range(200))
    assert cycles == 203     # written, in memory, on the block RAM's output, in head


def test_full_after_depth_plus_two_words():
    dut = EventQueue(8, depth=4)

    async def tb(ctx):
        accepted = 0
        ctx.set(dut.w_en, 1)
        for t in range(10):
            ctx.set(dut.w_data, t)
            if ctx.get(dut.w_rdy):
                accepted += 1
            await ctx.tick()
        assert accepted == 6 and not ctx.get(dut.w_rdy)
        ctx.set(dut.w_en, 0)
        ctx.set(dut.o.ready, 1)
        out = []
        for _ in range(10):
            if ctx.get(dut.o.valid):
                out.append(ctx.get(dut.o.payload))
            await ctx.tick()
        assert out == list(range(6)) and not ctx.get(dut.nonempty)

    run_testbench(dut, tb)


def test_depth_below_two_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        EventQueue(8, depth=1)


def test_block_ram_output_goes_straight_into_flip_flops(tmp_path):
    """The round-fourteen limit was a LUT (Yosys's transparency multiplexer) between the
    queue's block RAM and the next register; here every used read-data bit drives flip-flop
    D inputs only."""
    yosys_stat(EventQueue(24, depth=97),
               "synth_lattice -family ecp5 -top top; write_json q.json", tmp_path)
    mod = json.loads((tmp_path / "q.json").read_text())["modules"]["top"]
    cells = mod["cells"].values()
    rams = [c for c in cells if c["type"] == "DP16KD"]
    assert len(rams) == 1
    dout = {b for pin, bits in rams[0]["connections"].items()
            if pin.startswith("DO") for b in bits if isinstance(b, int)}
    sinks = {}
    for c in cells:
        for pin, bits in c["connections"].items():
            if c.get("port_directions", {}).get(pin) == "input":
                for b in bits:
                    if b in dout:
                        sinks.setdefault(b, set()).add((c["type"], pin))
    assert len(sinks) == 24, sinks
    assert all(s == {("TRELLIS_FF", "DI")} for s in sinks.values()), sinks
