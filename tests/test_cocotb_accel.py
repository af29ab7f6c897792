"""cocotb RTL tests of the accelerator core against the golden model (SIM=icarus|verilator).

Each architecture (P, layers, sizes, formats) is generated and compiled once, from a dense
"capacity" bundle; every scenario then loads its own random bundle of that architecture at
run time through ``w_stream`` (so the weight-loading path is tested too), resets, and runs
steps, comparing every step's events, states (c, per layer), logits and top-1 with
``sw.golden`` exactly. Each case runs in its own folder under pytest's tmp path; each
architecture has its own build folder. Every scenario runs twice: plainly, and with random
idle gaps on the inputs and back-pressure on both outputs. ``WAVES=1`` dumps waveforms.

The real-text case reads the bundle from ``EGRU_ACCEL_BUNDLE`` (default ``models/default``);
when that folder is absent it uses a random char-level stand-in (and says so). It runs 500
tokens with Verilator but only 12 with Icarus, which simulates the default model at several
seconds a token (``EGRU_ACCEL_TEXT_TOKENS`` overrides).
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import pytest

from hw.bundle import load_bundle, write_bundle
from hw.fixedpoint import Format
from sim.random_bundle import random_bundle

pytestmark = pytest.mark.cocotb

REPO = Path(__file__).resolve().parent.parent
TEXT = Path("/work/shared/data/wt2-proxy/test.txt")

NARROW = Format(weight_bits=4, weight_frac=2, state_bits=10, state_frac=6, acc_bits=24,
                pre_bits=12, pre_frac=6, gate_bits=12, gate_frac=10, table_bits=6,
                table_range_log2=3)
WIDE = Format(weight_bits=10, weight_frac=8, state_bits=14, state_frac=10, acc_bits=40,
              pre_bits=18, pre_frac=12, gate_bits=18, gate_frac=16, table_bits=10,
              table_range_log2=3)

# name -> random_bundle arguments of the architecture (the capacity bundle adds sparsity=0)
ARCHS = {
    "p4_lm2": {"layers": 2, "hidden": [12, 8], "vocab": 10, "banks": 4},
    "p1_narrow": {"layers": 1, "hidden": 6, "vocab": 5, "banks": 1, "fmt": NARROW},
    "p8_rnn_delta": {"layers": 1, "hidden": 20, "banks": 8, "kind": "rnn", "input_size": 6,
                         "input_mode": "persistent"},
    "p2_lm3_wide": {"layers": 3, "hidden": [5, 7, 4], "vocab": 9, "banks": 2, "fmt": WIDE},
}

# (architecture, case name, bundle variant (None: the built bundle itself), scenario)
_LM = {"steps": 12, "resets": [7]}
SCENARIOS = [
    ("p4_lm2", "dense", None, _LM),
    ("p4_lm2", "s50", {"sparsity": 0.5, "seed": 11}, _LM),
    ("p4_lm2", "s90", {"sparsity": 0.9, "seed": 12}, _LM),
    ("p4_lm2", "s99", {"sparsity": 0.99, "seed": 13}, _LM),
    ("p4_lm2", "balanced75", {"sparsity": 0.75, "balanced": True, "seed": 14}, _LM),
    ("p4_lm2", "saturate", {"sparsity": 0.5, "saturate": True, "seed": 15}, _LM),
    ("p4_lm2", "all_firing", {"sparsity": 0.3, "theta": "firing", "seed": 16}, _LM),
    ("p4_lm2", "all_silent", {"sparsity": 0.2, "theta": "silent", "seed": 17}, _LM),
    ("p4_lm2", "no_logits", {"sparsity": 0.6, "seed": 18}, dict(_LM, emit_logits=0)),
    ("p1_narrow", "s50", {"sparsity": 0.5, "seed": 21}, _LM),
    ("p1_narrow", "saturate", {"sparsity": 0.3, "saturate": True, "seed": 22}, _LM),
    ("p8_rnn_delta", "s50", {"sparsity": 0.5, "seed": 31},
     {"dense": {"steps": 10, "hold": 0.6}, "resets": [6]}),
    ("p8_rnn_delta", "firing", {"sparsity": 0.4, "theta": "firing", "seed": 32},
     {"dense": {"steps": 8, "hold": 0.3}}),
    ("p2_lm3_wide", "dense", None, _LM),
]
VARIANTS = {"plain": {}, "gaps_bp": {"gap": 0.3, "bp": 0.4}}


def _sim():
    from sim.runner import simulator
    return simulator()


@pytest.fixture(scope="session")
def builds(tmp_path_factory):
    """Architecture -> (runner, build folder, capacity bundle path), built on first use."""
    from sim.runner import build
    cache = {}

    def get(arch):
        if arch not in cache:
            root = tmp_path_factory.mktemp(f"accel_{arch}_{_sim()}")
            cap = random_bundle(root / "capacity", sparsity=0.0, seed=1, **ARCHS[arch])
            runner = build(load_bundle(cap), root / "build")
            cache[arch] = (runner, root / "build", cap)
        return cache[arch]
    return get


def _scenario(arch, scen, variant, seed):
    rng = np.random.default_rng(seed)
    out = {k: v for k, v in scen.items() if k != "steps"}
    if "steps" in scen:
        out["tokens"] = [int(t) for t in rng.integers(0, ARCHS[arch]["vocab"], scen["steps"])]
    out.update(VARIANTS[variant], seed=seed)
    return out


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("arch,case,bundle_args,scen", SCENARIOS,
                         ids=[f"{a}-{c}" for a, c, _, _ in SCENARIOS])
def test_accel_random(builds, tmp_path, arch, case, bundle_args, scen, variant):
    from sim.runner import run_scenario
    runner, build_dir, cap = builds(arch)
    scenario = _scenario(arch, scen, variant, seed=zlib.crc32(f"{case}-{variant}".encode()) % 1000)
    if bundle_args is not None:
        args = dict(ARCHS[arch], **bundle_args)
        scenario["load"] = str(random_bundle(tmp_path / "bundle", **args))
    rep = run_scenario(runner, build_dir, cap, scenario, run_dir=tmp_path / "run")
    assert rep["steps"] == len(rep["perf"]) > 0


def _text_bundle(tmp_path):
    """models/default (or EGRU_ACCEL_BUNDLE), else a random char-level stand-in."""
    path = Path(os.environ.get("EGRU_ACCEL_BUNDLE", REPO / "models" / "default"))
    if (path / "manifest.json").is_file():
        return path, False
    text = TEXT.read_text(encoding="utf-8")[:20000]
    chars = sorted(set(text))
    vocab = chars + ["<unk>"]
    tmp = random_bundle(tmp_path / "rand", layers=2, hidden=[24, 16], vocab=len(vocab),
                        banks=4, sparsity=0.8, seed=5)
    b = load_bundle(tmp)
    arrays = {k: v for k, v in b.arrays.items() if not k.endswith(".nnz")}
    out = write_bundle(tmp_path / "standin", fmt=b.format, model=b.model, banks=b.banks,
                       arrays=arrays, vocab=vocab, provenance={"standin": True})
    return out, True


def _text_tokens() -> int:
    """500 tokens with Verilator; Icarus runs the default model at 100-300 cycles/s (several
    seconds a token), so it defaults to 12. EGRU_ACCEL_TEXT_TOKENS overrides both."""
    if "EGRU_ACCEL_TEXT_TOKENS" in os.environ:
        return int(os.environ["EGRU_ACCEL_TEXT_TOKENS"])
    return 500 if _sim() == "verilator" else 12


@pytest.mark.slow
def test_accel_real_text(tmp_path):
    """Real text (wt2-proxy test split) through the default bundle, bit-exact: 500 tokens
    with Verilator (see `_text_tokens`)."""
    from sim.runner import build, run_scenario
    if not TEXT.is_file():
        pytest.skip(f"{TEXT} not available")
    path, standin = _text_bundle(tmp_path)
    bundle = load_bundle(path)
    runner = build(bundle, tmp_path / "build", cxx_opt="-O1")
    ntok = _text_tokens()
    rep = run_scenario(runner, tmp_path / "build", path,
                       {"text": str(TEXT), "ntok": ntok, "seed": 3, "gap": 0.05, "bp": 0.0},
                       run_dir=tmp_path / "run")
    assert rep["steps"] == ntok, rep["steps"]
    if standin:
        print("note: models/default missing; used a random char-level stand-in bundle")
