"""sw.export: refusals with clear errors, the bundle round trip, and the whole command-line
flow (train -> prune -> QAT -> export) on a tiny corpus, bit-exact against the golden model."""

import numpy as np
import pytest
import torch

from hw.bundle import load_bundle
from hw.fixedpoint import Format
from sw.export import ExportError, export_arrays, export_bundle
from sw.golden import Golden
from sw.masks import is_bank_balanced
from sw.quant import EventNet

torch.set_num_threads(1)   # 2 shared cores: no thread oversubscription


def net64(seed=0, vocab=12, hidden=(16, 8)):
    torch.manual_seed(seed)
    return EventNet(vocab, list(hidden), threshold_init=0.1).double().eval()


def test_refuses_nan_and_inf(tmp_path):
    for bad in (float("nan"), float("inf")):
        net = net64()
        with torch.no_grad():
            net.weight_hh_l1[2, 3] = bad
        with pytest.raises(ExportError, match="weight_hh_l1: 1 NaN/inf"):
            export_bundle(net, tmp_path / "x", banks=4)
        assert not (tmp_path / "x").exists()


def test_refuses_threshold_out_of_range(tmp_path):
    net = net64()
    with torch.no_grad():
        net.threshold_l0[0] = 9.0                     # format S is [-8, 8)
    with pytest.raises(ExportError, match="threshold_l0: thresholds do not fit"):
        export_bundle(net, tmp_path / "x", banks=4)


def test_refuses_accumulator_overflow(tmp_path):
    net = net64()
    fmt = Format(acc_bits=24)                          # too narrow for full-scale rows
    with torch.no_grad():
        net.weight_hh_l0.fill_(1.9)
    with pytest.raises(ExportError, match="could overflow"):
        export_bundle(net, tmp_path / "x", fmt=fmt, banks=4)


def test_weights_saturate_and_are_counted():
    net = net64()
    with torch.no_grad():
        net.weight_ih_l0[0, :5] = torch.tensor([2.5, -3.0, 1.99, -2.0, 100.0])
    arrays, report = export_arrays(net, Format())
    assert arrays["l0.w"][0, :5].tolist() == [127, -128, 127, -128, 127]
    assert report["saturated"]["l0.w"] == 3          # 1.99 rounds to 127 without saturating


def test_round_trip_logits(tmp_path):
    """export -> load_bundle -> Golden: the same logits as the QAT model, every step."""
    net = net64(3)
    fmt = Format()
    path, _ = export_bundle(net, tmp_path / "b", fmt=fmt, banks=4,
                            vocab=[chr(65 + i) for i in range(12)])
    gold = Golden(load_bundle(path))
    tokens = np.random.default_rng(0).integers(0, 12, 50)
    with torch.no_grad():
        logits, _, _ = net(torch.tensor(tokens).view(-1, 1), fmt=fmt)
    got = (logits[:, 0] * 2.0 ** fmt.acc_frac).numpy()
    want = np.stack([s.logits for s in gold.run_tokens(tokens)])
    assert np.array_equal(got.astype(np.int64), want)


def test_command_line_flow(tmp_path):
    """python -m sw.train / sw.prune / sw.finetune --qat / sw.export on a tiny corpus; the
    bundle is bank-balanced and the golden model equals the QAT checkpoint bit for bit."""
    from sw import export, finetune, prune, train
    data = tmp_path / "corpus"
    data.mkdir()
    rng = np.random.default_rng(0)
    words = ["the ", "cat ", "sat ", "on ", "a ", "mat ", "dog ", "ran\n"]
    for split, n in (("train", 3000), ("valid", 400), ("test", 400)):
        (data / f"{split}.txt").write_text("".join(rng.choice(words, n // 4)))
    run = tmp_path / "run"
    train.main(["--data", str(data), "--level", "char", "--vocab-cap", "16",
                "--emb-size", "16", "--hidden-size", "16", "--num-layers", "2",
                "--batch-size", "4", "--bptt", "20", "--epochs", "1", "--max-steps", "4",
                "--threshold-init", "0.02",     # low thresholds: the tiny model emits events
                "--out", str(run), "--no-progress", "--threads", "1"])
    dense = run / "best.safetensors"
    pruned, qat, out = tmp_path / "p.safetensors", tmp_path / "q.safetensors", tmp_path / "B"
    common = ["--batch-size", "4", "--bptt", "20", "--eval-batch-size", "4",
              "--eval-windows", "2", "--no-progress"]
    assert prune.main(["--checkpoint", str(dense), "--out", str(pruned), "--target", "0.8",
                       "--banks", "4", "--rounds", "2", "--steps", "3", "--keep-rounds",
                       *common]) == 0
    rounds = sorted(tmp_path.glob("p.s*.safetensors"))
    assert len(rounds) == 2
    first = finetune.load_any(rounds[0])
    assert first.meta["history"][-1]["step"] == "prune" and first.meta["prune"]["round"] == 1
    assert finetune.main(["--checkpoint", str(pruned), "--out", str(qat), "--qat",
                          "--steps", "3", *common]) == 0
    assert export.main(["--checkpoint", str(qat), "--out", str(out), "--banks", "4"]) == 0
    assert export.main(["--checkpoint", str(qat), "--out", str(out), "--banks", "4"]) == 1
    bundle = load_bundle(out)
    assert bundle.manifest["provenance"]["source"]["qat_format"] == Format().to_dict()
    for m in ("l0.w", "l0.r", "l1.w", "l1.r"):
        assert bundle.manifest["memories"][m]["balanced"], m
        assert is_bank_balanced(torch.tensor(bundle.arrays[m]), 4)
    nz = sum(int(np.count_nonzero(bundle.arrays[m])) for m in ("l0.w", "l0.r", "l1.w", "l1.r"))
    total = sum(bundle.arrays[m].size for m in ("l0.w", "l0.r", "l1.w", "l1.r"))
    assert abs(1 - nz / total - 0.8) < 0.02
    loaded = finetune.load_any(qat)
    net = loaded.net.double().eval()
    tokens = np.random.default_rng(1).integers(0, bundle.vocab_size, 60)
    with torch.no_grad():
        logits, _, recs = net(torch.tensor(tokens).view(-1, 1), fmt=Format(), record=True)
    steps = Golden(bundle).run_tokens(tokens)
    sf, af = 2.0 ** 12, 2.0 ** 18
    assert sum(int(np.count_nonzero(lt.y)) for s in steps for lt in s.layers) > 0
    for t, s in enumerate(steps):
        assert np.array_equal((logits[t, 0] * af).numpy().astype(np.int64), s.logits)
        for k, lt in enumerate(s.layers):
            assert np.array_equal((recs[k].c[t, 0] * sf).numpy().astype(np.int64), lt.c)
            assert np.array_equal((recs[k].y[t, 0] * sf).numpy().astype(np.int64), lt.y)
