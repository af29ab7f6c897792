"""Training: loss goes down, bit-identical resume, CLI errors, torchrun (DDP on gloo)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from sw import train
from sw.checkpoint import CheckpointError, load_checkpoint, load_model

REPO = Path(__file__).resolve().parents[1]
TINY = ["--emb-size", "16", "--hidden-size", "24", "--num-layers", "2", "--batch-size", "8",
        "--bptt", "12", "--no-progress", "--threads", "1"]


def run(corpus, out, *extra):
    return train.main(["--data", str(corpus), "--out", str(out), *TINY, *extra])


def weights(path):
    tensors, _ = load_checkpoint(path)
    return {k: v for k, v in tensors.items() if k.startswith("model.")}


@pytest.mark.parametrize("rnn", ["egru", "lstm"])
def test_training_lowers_loss(tiny_corpus, tmp_path, rnn):
    res = run(tiny_corpus, tmp_path / "r", "--rnn", rnn, "--epochs", "5", "--lr", "3e-2",
              "--dropout-in", "0", "--dropout-out", "0", "--weight-drop", "0")
    log = [json.loads(line) for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    model, cfg, vocab = load_model(tmp_path / "r" / "best.safetensors")
    uniform = math.log(len(vocab))  # the loss of an untrained model
    assert log[-1]["loss"] < uniform - 0.6, [e["loss"] for e in log]
    assert log[-1]["loss"] < log[0]["loss"]
    assert cfg.rnn == rnn and len(vocab) == cfg.vocab_size and not model.training
    assert res["progress"]["epoch"] == 5


def test_resume_is_bit_identical(tiny_corpus, tmp_path):
    """Uninterrupted run vs the same run stopped mid-epoch and resumed: identical weights."""
    args = ("--epochs", "2", "--save-every", "4")
    run(tiny_corpus, tmp_path / "a", *args)
    run(tiny_corpus, tmp_path / "b", *args, "--max-steps", "7")  # mid-epoch 1
    _, doc = load_checkpoint(tmp_path / "b" / "last.safetensors")
    assert doc["progress"]["epoch"] == 0 and doc["progress"]["batch"] == 7
    train.main(["--resume", str(tmp_path / "b" / "last.safetensors"), "--max-steps", "0",
                "--no-progress", "--threads", "1"])
    wa, wb = weights(tmp_path / "a" / "last.safetensors"), weights(tmp_path / "b" / "last.safetensors")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    _, doc_a = load_checkpoint(tmp_path / "a" / "last.safetensors")
    _, doc_b = load_checkpoint(tmp_path / "b" / "last.safetensors")
    assert doc_a["progress"]["step"] == doc_b["progress"]["step"] == 2 * 19  # 19 windows/epoch


def test_cli_errors(tiny_corpus, tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.main(["--no-such-option", "1"])
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--rnn", "transformer"])
    assert "invalid choice: 'transformer'" in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r"not found.*--data DIR"):
        train.main(["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    (tiny_corpus / "valid.txt").write_text("")
    with pytest.raises(SystemExit, match=r"valid\.txt is empty"):
        run(tiny_corpus, tmp_path / "o")


def test_corrupted_checkpoint(tiny_corpus, tmp_path):
    run(tiny_corpus, tmp_path / "r", "--max-steps", "2")
    good = tmp_path / "r" / "last.safetensors"
    blob = good.read_bytes()
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="truncated.safetensors is corrupted"):
        load_model(bad)
    flipped = bytearray(blob)
    flipped[-10] ^= 0xFF  # inside the last tensor's data: only the checksum can tell
    bad.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_model(bad)
    with pytest.raises(SystemExit, match="truncated.safetensors"):
        train.main(["--resume", str(bad)])
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "none.safetensors")


@pytest.mark.slow
def test_torchrun_two_processes(tiny_corpus, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "sw.train", "--data", str(tiny_corpus), "--out", str(out), *TINY,
           "--epochs", "1", "--save-every", "5", "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
                       check=False)
    assert p.returncode == 0, p.stdout[-1500:] + p.stderr[-3000:]
    tensors, doc = load_checkpoint(out / "last.safetensors")
    assert tensors["train.rng"].shape[0] == 2  # both ranks' RNG and carried state are saved
    assert tensors["train.state.0.0"].shape[:3] == (2, 1, 4)  # (world, 1, B / world, H)
    assert doc["progress"]["epoch"] == 1
