"""The sparsity study end to end on a tiny config: plan, resumability, report files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from sw import study
from sw.study_plots import REPORT_FILES

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "wt2-proxy"


def _tiny_corpus(dst: Path) -> Path:
    """A few hundred lines of wt2-proxy (real text), or synthetic text where it is absent."""
    dst.mkdir()
    for split, n in (("train", 400), ("valid", 60), ("test", 60)):
        src = CORPUS / f"{split}.txt"
        if src.is_file():
            lines = src.read_text(encoding="utf-8").splitlines()[:n]
        else:
            lines = [" ".join(f"w{(i * 7 + j) % 50}" for j in range(12)) for i in range(n)]
        (dst / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dst


def _config(tmp_path: Path, data: Path) -> Path:
    cfg = {
        "name": "tiny", "out": str(tmp_path / "out"), "threads": 1,
        "corpora": [{"name": "tiny", "data": str(data), "level": "word", "vocab_cap": 300}],
        "rnns": ["lstm", "egru"], "seeds": [1, 2],
        "model": {"emb_size": 8, "hidden_size": 16, "num_layers": 2},
        "train": {"batch_size": 4, "bptt": 8, "epochs": 1, "max_steps": 6, "lr": 0.003,
                  "weight_decay": 0.01, "save_every": 3},
        "prune": {"sparsities": [0.5, 0.9], "continue_data": True,
                  "finetune": {"max_steps": 3, "lr": 0.001}},
        "eval": {"batch_size": 4, "max_windows": 4, "splits": ["valid", "test"]},
        "wd_sweep": {"rnn": "egru", "values": [0.0, 0.01], "seeds": [1]},
        "dense_control": True,
    }
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(cfg))
    return path


def _results(out: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in (out / "results").glob("*.json")}


def test_plan_chains_and_dedup(tmp_path):
    cfg = study.load_config(_config(tmp_path, _tiny_corpus(tmp_path / "data")))
    runs = study.plan(cfg)
    ids = [r.id for r in runs]
    assert len(ids) == len(set(ids))
    # 2 rnns x 2 seeds x (dense + 2 sparsities + 2 dense controls) + 1 extra weight decay
    # (0.01 is shared with the main chain)
    assert len(runs) == 2 * 2 * 5 + 1
    for r in runs:  # parents run before their children
        if r.parent is not None:
            assert ids.index(r.parent.id) < ids.index(r.id)
    shared = next(r for r in runs if r.id == "tiny/egru/wd0.01/seed1/sp0")
    assert shared.groups == {"main", "wd_sweep"}
    ctl = next(r for r in runs if r.id == "tiny/lstm/wd0.01/seed2/sp0-ft2")
    assert ctl.parent.id == "tiny/lstm/wd0.01/seed2/sp0-ft1"
    assert ctl.parent.parent.id == "tiny/lstm/wd0.01/seed2/sp0"


def test_global_magnitude_masks_exact_and_nested():
    from sw.config import ModelConfig
    from sw.models import build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(rnn="egru", vocab_size=20, emb_size=8, hidden_size=16))
    emb = model.encoder.weight.detach().clone()
    m50 = study.global_magnitude_masks(model, 0.5)
    study.apply_masks(model, m50)
    assert study.weight_sparsity(model) == pytest.approx(0.5, abs=1e-3)
    m90 = study.global_magnitude_masks(model, 0.9)
    assert all(bool((m90[n] <= m50[n]).all()) for n in m50)  # pruned weights stay pruned
    study.apply_masks(model, m90)
    assert study.weight_sparsity(model) == pytest.approx(0.9, abs=1e-3)
    assert torch.equal(model.encoder.weight, emb)  # the embedding is never pruned


def test_study_end_to_end_resume_and_report(tmp_path, capsys):
    data = _tiny_corpus(tmp_path / "data")
    cfg_path = _config(tmp_path, data)
    out = tmp_path / "out"
    publish = tmp_path / "published"

    # interrupted study: only the first 4 runs
    assert study.main(["--config", str(cfg_path), "--max-runs", "4"]) == 0
    first = _results(out)
    assert len(first) == 4

    # rerun: finished runs are skipped (files untouched), the rest run
    assert study.main(["--config", str(cfg_path), "--publish", str(publish)]) == 0
    second = _results(out)
    assert len(second) == 21
    assert all(second[k] == v for k, v in first.items())

    # a dense run whose result is lost mid-way resumes from sw.train's last checkpoint: no
    # extra optimizer steps, the other results stay as they are
    dense = out / "results" / "tiny__egru__wd0.01__seed2__sp0.json"
    dense.unlink()
    capsys.readouterr()
    assert study.main(["--config", str(cfg_path)]) == 0
    log = capsys.readouterr().out
    assert "tiny/egru/wd0.01/seed2/sp0: resuming sw.train" in log
    assert log.count(": start (") == 1
    third = _results(out)
    assert all(third[k] == v for k, v in second.items() if k != dense.name)
    ck = json.loads(dense.read_text())
    assert ck["target_sparsity"] == 0.0 and ck["rnn"] == "egru"

    # results: JSON per run with the measured weight sparsity of the chain
    for p in (out / "results").glob("*.json"):
        r = json.loads(p.read_text())
        assert r["weight_sparsity"] == pytest.approx(r["target_sparsity"], abs=2e-3)
        if r["control"]:  # fine-tuned like the chain, never pruned
            assert r["info"]["finetune"]["steps"] == 3
        if r["control"] or r["target_sparsity"]:  # stage k continues where k-1 stopped
            k = r["control"] or [0.5, 0.9].index(r["target_sparsity"]) + 1
            assert r["info"]["finetune"]["first_window"] == 3 * (k - 1)
        assert r["eval"]["test"]["macs"]["rnn_effective"] > 0

    # report: tables, plots (PNG), data; also copied to --publish
    rep = out / "report"
    for name in REPORT_FILES:
        assert (rep / name).is_file(), name
        assert (publish / name).is_file(), name
    for name in REPORT_FILES:
        if name.endswith(".png"):
            assert (rep / name).read_bytes()[:4] == b"\x89PNG"
    table = (rep / "table.md").read_text()
    assert "| 90% |" in table and "21 of 21 runs finished" in table
    assert "dense control" in table
    data_json = json.loads((rep / "data.json").read_text())
    assert set(data_json["aggregate"]["tiny"]) == {"lstm", "egru"}
    lstm0 = data_json["aggregate"]["tiny"]["lstm"]["0.0"]
    assert lstm0["n"] == 2 and lstm0["mac_reduction_vs_dense_lstm"] == pytest.approx(1.0)
    lstm90 = data_json["aggregate"]["tiny"]["lstm"]["0.9"]
    assert lstm90["mac_reduction_vs_dense_lstm"] == pytest.approx(10.0, rel=0.02)
    assert data_json["wd_sweep"]["tiny"]["0.0"].keys() == {"0.0", "0.01"}
    assert data_json["dense_controls"]["tiny"]["egru"]["0.9"]["n"] == 2

    # a changed config refuses to mix with the old results
    cfg = json.loads(cfg_path.read_text())
    cfg["train"]["lr"] = 0.01
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(SystemExit, match="different study config"):
        study.main(["--config", str(cfg_path)])


def test_cli_list(tmp_path):
    cfg_path = _config(tmp_path, _tiny_corpus(tmp_path / "data"))
    assert study.main(["--config", str(cfg_path), "--list"]) == 0
    assert not (tmp_path / "out" / "results").exists()


@pytest.mark.parametrize("name", ["study_cpu.json", "study_full.json"])
def test_shipped_configs_plan(name):
    path = Path(__file__).resolve().parents[1] / "configs" / name
    cfg = study.load_config(path)
    runs = study.plan(cfg)
    assert {r.rnn for r in runs} >= {"lstm", "egru"}
    assert any("wd_sweep" in r.groups for r in runs)
    for r in runs:  # every run's configs are valid dataclasses
        study.model_config(cfg, r, 100)
        study.train_config(cfg, r, Path(os.devnull), finetune=r.finetuned)
