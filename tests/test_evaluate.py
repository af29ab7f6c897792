"""sw.evaluate: perplexity, sparsities and effective MACs, CLI table and JSON."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from sw import evaluate, train
from sw.config import ModelConfig
from sw.metrics import SparsityMeter, effective_macs
from sw.models import LanguageModel
from sw.models.egru import LayerTrace


def test_effective_macs_formula():
    """Hand-made densities: every matrix counts dense x input density x weight density."""
    torch.manual_seed(0)
    cfg = ModelConfig(rnn="egru", vocab_size=20, emb_size=4, hidden_size=6, num_layers=2)
    lm = LanguageModel(cfg)
    with torch.no_grad():
        lm.rnns[0].weight_hh_l0[:9] = 0  # 9 of 18 rows pruned: density 1/2
    meter = SparsityMeter(2, s=1.0)
    x0 = torch.ones(2, 1, 4)
    y0 = torch.tensor([1.0, 0, 0, 0, 0, 0]).expand(2, 1, 6)  # density 1/6
    y1 = torch.tensor([1.0, 1, 0, 0]).expand(2, 1, 4)  # density 1/2
    v = torch.tensor([0.5, 1.0, -2.0, 0.0, 0.1, 0.2]).expand(2, 1, 6)
    meter.update([LayerTrace(x0, y0, v), LayerTrace(y0, y1, v[..., :4])])
    assert meter.activity_sparsity() == pytest.approx([5 / 6, 1 / 2])
    assert meter.backward_sparsity() == pytest.approx([2 / 6, 2 / 4])  # |v| >= 1/s
    m = effective_macs(lm, meter)
    l0, l1 = m["layers"]
    assert l0["W"]["effective"] == pytest.approx(3 * 6 * 4)  # dense input, dense weights
    assert l0["R"]["effective"] == pytest.approx(3 * 6 * 6 / 6 / 2)
    assert l1["W"]["effective"] == pytest.approx(3 * 4 * 6 / 6)
    assert l1["R"]["effective"] == pytest.approx(3 * 4 * 4 / 2)
    assert m["decoder"]["effective"] == pytest.approx(20 * 4 / 2)
    assert m["rnn_dense_lstm"] == 4 * 6 * (4 + 6) + 4 * 4 * (6 + 4)
    assert m["reduction_vs_lstm"] == pytest.approx(m["rnn_dense_lstm"] / m["rnn_effective"])


def test_evaluate_cli(tiny_corpus, tmp_path, capsys):
    out = tmp_path / "r"
    train.main(["--data", str(tiny_corpus), "--out", str(out), "--emb-size", "8",
                "--hidden-size", "12", "--batch-size", "4", "--bptt", "10", "--max-steps", "5",
                "--no-progress", "--threads", "1"])
    capsys.readouterr()
    res = evaluate.main(["--checkpoint", str(out / "last.safetensors"), "--split", "test",
                         "--json", str(tmp_path / "ev.json")])
    text = capsys.readouterr().out
    assert "activity_sparsity" in text and "decoder (separate)" in text and "ppl" in text
    saved = json.loads((tmp_path / "ev.json").read_text())
    assert saved["split"] == "test" and saved["tokens"] > 0
    assert len(saved["activity_sparsity"]) == 2 and len(saved["backward_sparsity"]) == 2
    assert 0 < saved["macs"]["rnn_effective"] < saved["macs"]["rnn_dense"]
    assert res["ppl"] == pytest.approx(saved["ppl"])


def test_evaluate_errors(tmp_path, capsys):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(SystemExit, match="x.safetensors is corrupted"):
        evaluate.main(["--checkpoint", str(bad)])
    with pytest.raises(SystemExit):
        evaluate.main(["--checkpoint", str(bad), "--split", "dev"])
    assert "invalid choice: 'dev'" in capsys.readouterr().err


def test_char_level_reports_bpc(tiny_corpus, tmp_path, capsys):
    out = tmp_path / "c"
    train.main(["--data", str(tiny_corpus), "--out", str(out), "--level", "char",
                "--emb-size", "8", "--hidden-size", "12", "--batch-size", "4", "--bptt", "20",
                "--max-steps", "3", "--no-progress", "--threads", "1"])
    res = evaluate.main(["--checkpoint", str(out / "best.safetensors"), "--max-windows", "5"])
    assert "bpc" in res and "ppl" not in res and res["level"] == "char"
    assert "bpc" in capsys.readouterr().out
