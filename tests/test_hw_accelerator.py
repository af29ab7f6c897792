"""hw.core.Accelerator in the Amaranth simulator against sw.golden (small models), and the
run-time memory map helpers."""

import numpy as np
import pytest

from hw.bundle import load_bundle
from hw.core import core_params, memory_map, weight_writes
from hw.fixedpoint import bits_for
from sim.amaranth_sim import check_against_golden, run_accel_amaranth
from sim.random_bundle import random_bundle


@pytest.mark.parametrize("banks,hidden,stall", [(4, [10, 6], False), (3, [5], True),
                                                (1, [4, 3], False), (8, [9], True)])
def test_lm_steps_match_golden(tmp_path, banks, hidden, stall):
    b = load_bundle(random_bundle(tmp_path / "b", layers=len(hidden), hidden=hidden, vocab=7,
                                  banks=banks, sparsity=0.5, seed=banks))
    steps = [("token", t) for t in (1, 3, 0, 6)] + [("reset",)] + [("token", 2), ("token", 2)]
    r = run_accel_amaranth(b, steps, stall=stall, seed=banks)
    check_against_golden(b, steps, r)
    assert r["counters"]["steps"] == 6


def test_reset_drops_queued_events(tmp_path):
    """Events queued (EVENT, no STEP) and then RESET never reach a step: the input queue and
    the skid buffer after it both drain in RST_WAIT."""
    b = load_bundle(random_bundle(tmp_path / "b", layers=2, hidden=[6, 5], vocab=7, banks=2,
                                  sparsity=0.3, seed=9))
    one = 1 << b.format.state_frac
    steps = [("token", 1), ("queue", [(3, one), (5, one), (6, -one)]), ("reset",),
             ("token", 2), ("token", 4), ("queue", [(0, one)]), ("reset",), ("token", 0)]
    r = run_accel_amaranth(b, steps, seed=2)
    check_against_golden(b, steps, r)
    assert r["counters"]["steps"] == 4


def test_persistent_rnn_matches_golden(tmp_path):
    from sw.golden import Golden
    b = load_bundle(random_bundle(tmp_path / "b", layers=1, hidden=6, banks=2, kind="rnn",
                                  input_size=4, input_mode="persistent", sparsity=0.3, seed=5))
    g = Golden(b)
    rng = np.random.default_rng(0)
    steps = [g.encode_deltas(rng.integers(-3000, 3000, 4)) for _ in range(5)]
    r = run_accel_amaranth(b, steps, emit_logits=False)
    g = Golden(b)
    for k, evs in enumerate(steps):
        st = g.step_events(evs)
        assert r["words"][k] == [(1, -1)]
        c = np.zeros(6, np.int64)
        for layer, u, mask, y, cc in r["beats"][k]:
            for lane in range(2):
                if u * 2 + lane < 6:
                    c[u * 2 + lane] = cc[lane]
        assert np.array_equal(c, st.layers[0].c), k


def test_memory_map_and_weight_writes(tmp_path):
    cap = load_bundle(random_bundle(tmp_path / "cap", layers=2, hidden=[6, 5], vocab=7,
                                    banks=2, sparsity=0.0, seed=1))
    sparse = load_bundle(random_bundle(tmp_path / "sp", layers=2, hidden=[6, 5], vocab=7,
                                       banks=2, sparsity=0.7, seed=2))
    mm = memory_map(cap)
    names = [n for _, n, b, _, _ in mm if b == 0]
    assert names[:7] == ["l0.w.ptr", "l0.w.ent", "l0.r.ptr", "l0.r.ent", "l0.bx", "l0.bh",
                         "l0.theta"]
    assert names[-3:] == ["dec.w.ptr", "dec.w.ent", "dec.b"]
    depth = {(m, b): (d, w) for m, _, b, d, w in mm}
    n = 0
    writes = list(weight_writes(sparse, like=cap))
    for mem, bank, addr, data in writes:
        d, w = depth[(mem, bank)]
        assert 0 <= addr < d and 0 <= data < 2 ** min(w, 32)
        n += 1
    assert n > 0
    # pointer words: (start, end) of each column, packed in the generated design's field
    # width, not the loaded bundle's (a sparser bundle needs narrower pointers)
    ids = {name: mid for mid, name, b, _, _ in mm if b == 0}
    hw_w, sp_w = core_params(cap).layers[0].w, core_params(sparse).layers[0].w
    assert sp_w.ptr_bits < hw_w.ptr_bits
    ptr = [(bank, addr, data) for mem, bank, addr, data in writes if mem == ids["l0.w.ptr"]]
    assert len(ptr) == 2 * hw_w.columns
    for bank, j, data in ptr:
        assert data & ((1 << hw_w.ptr_bits) - 1) == sp_w.ptr[bank][j]
        assert data >> hw_w.ptr_bits == sp_w.ptr[bank][j + 1]
    # the capacity rule: a denser bundle does not fit a design built for a sparser one
    with pytest.raises(ValueError, match="capacity"):
        list(weight_writes(cap, like=sparse))
    other = load_bundle(random_bundle(tmp_path / "other", layers=1, hidden=6, vocab=7,
                                      banks=2, seed=3))
    with pytest.raises(ValueError, match="architecture"):
        list(weight_writes(other, like=cap))
    assert core_params(cap).layers[1].units == 3


def test_writes_outside_the_memory_map_are_dropped(tmp_path):
    """The write chain carries narrowed fields (hw.core.wport): a write to a bank, memory or
    address that does not exist must be dropped, not land in the memory its low bits name."""
    b = load_bundle(random_bundle(tmp_path / "b", layers=1, hidden=[5], vocab=7, banks=2,
                                  sparsity=0.5, seed=7))
    ids = {n: m for m, n, bank, _, _ in memory_map(b) if bank == 0}
    mem_bits = bits_for(1 + max(ids.values()))
    bx = ids["l0.bx"]
    garbage = [("write", bx, 2, 0, 0x7FFFF),                    # bank 2 of 2 (aliases 0)
               ("write", bx + (1 << mem_bits), 0, 0, 0x7FFFF),  # no such memory
               ("write", bx, 0, 1 << 15, 0x7FFFF)]              # beyond every memory
    steps = [("token", 1), ("token", 4)]
    r = run_accel_amaranth(b, garbage + [("reset",)] + steps, seed=1)
    check_against_golden(b, steps, r)
    # the same garbage written where it does land changes the result (the test can fail)
    r = run_accel_amaranth(b, [("write", bx, 0, 0, 0x7FFFF), ("reset",)] + steps, seed=1)
    with pytest.raises(AssertionError):
        check_against_golden(b, steps, r)


def test_write_chain_checks_the_declared_hops():
    """The accelerator's write latency is computed from each block's declared hop count; a
    block that builds a different number of hops is refused at elaboration."""
    from types import SimpleNamespace

    from amaranth.hdl import Fragment, Module, Signal

    from hw.core.wport import WriteChain, wwrite_layout
    chain = WriteChain("t")
    for key in (0, 1):
        port = SimpleNamespace(addr=Signal(2), data=Signal(8), en=Signal())
        chain.add(port, lambda w: w.mem == 0, key=key)
    wr, wr_o = Signal(wwrite_layout()), Signal(wwrite_layout())
    m = Module()
    with pytest.raises(ValueError, match="2 write-chain hops built, 1 declared"):
        chain.build(m, 1, wr, Signal(), wr_o, Signal())
    chain.build(m, 2, wr, Signal(), wr_o, Signal())
    Fragment.get(m, None)           # elaborated, so Amaranth does not warn it was unused
