"""Greedy text generation on the accelerator RTL (cocotb, SIM=icarus|verilator) equals the
golden model's, token for token, on the shipped bundle (models/default).

The RTL's own top-1 is fed back as the next token (sim/cocotb_generate/test_generate.py);
the generated ids must equal `sw.generate.generate_ids` (greedy). The design is generated
without the trace port. ``EGRU_GEN_TOKENS`` overrides the number of generated tokens
(default 60; Icarus simulates the default model at a few seconds per token on this machine,
see models/README.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hw.bundle import load_bundle
from sw.generate import generate_ids
from sw.golden import Golden
from sw.tokens import bundle_level, detokenize, tokenize

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "models" / "default"
PROMPT = "The "


def _ntokens() -> int:
    return int(os.environ.get("EGRU_GEN_TOKENS", "60"))


@pytest.mark.cocotb
@pytest.mark.slow
def test_rtl_generation_matches_golden(tmp_path):
    from sim.generate_rtl import build_design, run_generation
    if not (BUNDLE / "manifest.json").is_file():
        pytest.skip(f"{BUNDLE} not available")
    bundle = load_bundle(BUNDLE)
    level = bundle_level(bundle.model)
    prompt = tokenize(PROMPT, bundle.vocab, level)
    n = _ntokens()
    runner = build_design(bundle, tmp_path / "build", waves=False)
    rep = run_generation(runner, tmp_path / "build", BUNDLE, prompt, n,
                         run_dir=tmp_path / "run", waves=False)
    want = generate_ids(Golden(bundle), prompt, n)     # independently of the cocotb module
    assert rep["golden_ids"] == want
    assert len(rep["rtl_ids"]) == n
    got_text = detokenize(rep["rtl_ids"], bundle.vocab, level)
    want_text = detokenize(want, bundle.vocab, level)
    assert rep["rtl_ids"] == want, f"RTL {PROMPT + got_text!r} != golden {PROMPT + want_text!r}"
    assert rep["identical"] and rep["passed"], rep["log"]
    assert rep["steps"] == len(prompt) + n - 1


def test_generate_rtl_cli_reports_difference(monkeypatch, capsys):
    """The CLI prints both texts and exits 1 when they differ, 0 when identical (the
    simulation itself is replaced by a stub)."""
    import sim.generate_rtl as g
    if not (BUNDLE / "manifest.json").is_file():
        pytest.skip(f"{BUNDLE} not available")
    bundle = load_bundle(BUNDLE)
    prompt = tokenize(PROMPT, bundle.vocab, bundle_level(bundle.model))
    gold = generate_ids(Golden(bundle), prompt, 5)
    for rtl, code in ((list(gold), 0), (gold[:2] + [(gold[2] + 1) % len(bundle.vocab)]
                                        + gold[3:], 1)):
        monkeypatch.setattr(g, "build_design", lambda *a, **k: object())
        monkeypatch.setattr(g, "run_generation", lambda *a, _r=rtl, **k: {
            "rtl_ids": _r, "golden_ids": gold, "identical": _r == gold, "passed": _r == gold,
            "steps": len(prompt) + 4, "cycles": 1000, "sim_seconds": 1.0,
            "golden_seconds": 0.0, "log": "test.log"})
        assert g.main(["--bundle", str(BUNDLE), "--prompt", PROMPT, "--tokens", "5"]) == code
        out = capsys.readouterr().out
        assert ("identical: yes" in out) == (code == 0)
        assert PROMPT + detokenize(gold, bundle.vocab, "char") in out
