"""Pruning: target sparsity, bank balance of every column, masks that survive fine-tuning and
checkpoints."""

import json

import pytest
import torch

from sw.finetune import load_any, save_eventnet, train_steps
from sw.masks import (
    bank_balanced_masks,
    bank_nnz,
    global_magnitude_masks,
    is_bank_balanced,
    mask_sparsity,
    sparsity_schedule,
)
from sw.prune import compute_masks, prune
from sw.quant import EventNet

torch.set_num_threads(1)   # 2 shared cores: no thread oversubscription


def small_net(seed=0, vocab=10, hidden=(16, 16)):
    torch.manual_seed(seed)
    return EventNet(vocab, list(hidden), threshold_init=0.05)


def test_global_masks_hit_target_and_rank_by_magnitude():
    torch.manual_seed(0)
    w = {"a": torch.randn(12, 5), "b": 3 * torch.randn(9, 7)}
    m = global_magnitude_masks(w, 0.75)
    n = sum(t.numel() for t in w.values())
    assert sum(int(x.sum()) for x in m.values()) == round(0.25 * n)
    kept = torch.cat([w[k][m[k]].abs() for k in w])
    dropped = torch.cat([w[k][~m[k]].abs() for k in w])
    assert kept.min() >= dropped.max()
    assert int(m["b"].sum()) > int(m["a"].sum())          # global: larger weights keep more


@pytest.mark.parametrize("banks,hidden", [(4, 16), (8, 16), (3, 10)])
@pytest.mark.parametrize("sparsity", [0.5, 0.8, 0.95])
def test_bank_balanced_every_column(banks, hidden, sparsity):
    torch.manual_seed(banks)
    w = {"w": torch.randn(3 * hidden, 7), "r": 0.3 * torch.randn(3 * hidden, hidden)}
    m = bank_balanced_masks(w, sparsity, banks)
    assert abs(mask_sparsity(m) - sparsity) < 0.03
    for name, mask in m.items():
        pruned = w[name] * mask
        nnz = bank_nnz(pruned, banks)                           # (P, C)
        assert bool((nnz == nnz[:1]).all()), f"{name} unbalanced: {nnz}"
        # within a (bank, column) group the kept weights are the largest ones
        bank = (torch.arange(3 * hidden) % hidden) % banks
        for b in range(banks):
            for j in range(w[name].shape[1]):
                col, keep = w[name][bank == b, j].abs(), mask[bank == b, j]
                if keep.any() and (~keep).any():
                    assert col[keep].min() >= col[~keep].max()


def test_masks_are_monotone():
    torch.manual_seed(1)
    w = {"w": torch.randn(48, 9)}
    m1 = bank_balanced_masks(w, 0.5, 4)
    w2 = {"w": w["w"] * m1["w"] + 5 * torch.randn(48, 9) * (~m1["w"])}   # pruned grew
    m2 = bank_balanced_masks(w2, 0.7, 4, masks=m1)
    assert not (m2["w"] & ~m1["w"]).any()
    g1 = global_magnitude_masks(w, 0.5)
    g2 = global_magnitude_masks(w2, 0.7, masks=g1)
    assert not (g2["w"] & ~g1["w"]).any()


def test_schedules():
    for kind in ("cubic", "geometric", "linear"):
        s = sparsity_schedule(0.9, 4, kind)
        assert len(s) == 4 and s[-1] == 0.9 and s == sorted(s) and s[0] > 0
    assert sparsity_schedule(0.9, 3, "cubic")[0] > sparsity_schedule(0.9, 3, "linear")[0]
    with pytest.raises(ValueError):
        sparsity_schedule(1.0, 3)


def test_prune_hits_target_masks_survive_finetuning(tmp_path):
    net = small_net()
    data = torch.randint(0, 10, (300, 4))
    masks, log = prune(net, data, [0.5, 0.8], steps=5, banks=4, bptt=20, progress=False)
    assert abs(mask_sparsity(masks) - 0.8) < 0.02
    assert [round(e["sparsity"], 2) for e in log] == [0.5, 0.8]
    for name in net.matrix_names():
        w = getattr(net, name).detach()
        assert torch.equal(w != 0, masks[name]) or not (w[~masks[name]] != 0).any()
        assert is_bank_balanced(w, 4), name
    # further fine-tuning (float and QAT) keeps the pruned weights at exactly zero
    from hw.fixedpoint import Format
    train_steps(net, data, 5, bptt=20, masks=masks, progress=False)
    train_steps(net, data, 3, bptt=20, masks=masks, fmt=Format(), progress=False)
    for name in net.matrix_names():
        w = getattr(net, name).detach()
        assert not (w[~masks[name]] != 0).any()
        assert is_bank_balanced(w, 4), name                      # QAT: no kept weight is 0
    # masks travel with the checkpoint (safetensors, no pickle)
    path = save_eventnet(tmp_path / "p.safetensors", net, vocab=list("abcdefghij"),
                         level="char", masks=masks, meta={"banks": 4})
    back = load_any(path)
    assert set(back.masks) == set(masks)
    assert all(torch.equal(back.masks[k], masks[k]) for k in masks)
    assert back.meta["banks"] == 4 and back.vocab == list("abcdefghij")
    assert b"pickle" not in path.read_bytes()[:200]
    header = json.loads(path.read_bytes()[8:8 + int.from_bytes(path.read_bytes()[:8], "little")])
    assert header["mask.weight_hh_l0"]["dtype"] == "BOOL"


def test_unstructured_prune_is_global():
    net = small_net(2)
    m = compute_masks(net, 0.9, None)
    assert abs(mask_sparsity(m) - 0.9) < 1e-3
    assert set(m) == set(net.matrix_names())                     # not the embedding


def test_corrupt_checkpoint_rejected(tmp_path):
    net = small_net()
    path = save_eventnet(tmp_path / "p.safetensors", net)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        load_any(path)


@pytest.mark.parametrize("banks", [None, 4])
def test_per_matrix_scope(banks):
    net = small_net(3)
    with torch.no_grad():
        net.weight_ih_l0.mul_(10)                  # a matrix with much larger weights
    m = compute_masks(net, 0.75, banks, scope="matrix")
    for name, mask in m.items():
        assert abs(1 - float(mask.float().mean()) - 0.75) < 0.03, name
        if banks:
            assert is_bank_balanced(getattr(net, name).detach() * mask, banks)
    g = compute_masks(net, 0.75, banks, scope="global")
    assert float(g["weight_ih_l0"].float().mean()) > 0.9   # global keeps the big matrix
    with pytest.raises(ValueError, match="scope"):
        compute_masks(net, 0.5, scope="layer")


def test_cycle_bound_balanced_vs_unbalanced():
    from sw.masks import cycle_bound
    net = small_net(4).double()
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-1, 1)
        for k in range(2):
            getattr(net, f"threshold_l{k}").fill_(0.05)
    tokens = torch.randint(0, 10, (30,))
    bal = compute_masks(net, 0.7, 4)
    from sw.masks import apply_masks
    apply_masks(net, bal)
    cb = cycle_bound(net, tokens, 4)
    assert cb["events"] > 1 and cb["imbalance"] == 1.0
    with torch.no_grad():                             # one bank gets every weight of column 0
        w = net.weight_hh_l0
        w[:, 0] = 0
        w[0:16:4, 0] = 1.0                            # units 0, 4, 8, 12: all in bank 0
    cb2 = cycle_bound(net, tokens, 4)
    assert cb2["bound"] >= cb2["ideal"] and cb2["imbalance"] >= 1.0
    assert cycle_bound(net, tokens, 1)["imbalance"] == 1.0    # one bank: nothing to balance
