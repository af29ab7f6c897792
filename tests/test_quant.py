"""sw.quant: the contract's primitives on float tensors, gradients, folding, projection."""

import math

import numpy as np
import pytest
import torch

from hw.fixedpoint import Format, make_tables, quantize, rshift_round, table_index
from sw.config import ModelConfig
from sw.finetune import evaluate, from_lm, train_steps
from sw.models.lm import LanguageModel
from sw.quant import EventNet, QTables, fake_quant, project_weights_, round_to, sat_to, table_lookup

torch.set_num_threads(1)   # 2 shared cores: no thread oversubscription


def test_round_half_up_matches_contract():
    x = torch.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -0.25, 0.75], dtype=torch.float64)
    got = (round_to(x / 64, 6) * 64).numpy()
    want = quantize(x.numpy() / 64, 32, 6)
    assert np.array_equal(got, want)
    assert list(got[:6]) == [-2, -1, 0, 1, 2, 3]          # half up, not half to even
    # the narrowing A -> P equals rshift_round on the integers
    ints = np.arange(-5000, 5000, 7, dtype=np.int64)
    f = Format()
    s = f.acc_frac - f.pre_frac
    got = round_to(torch.tensor(ints / 2.0 ** f.acc_frac), f.pre_frac) * 2.0 ** f.pre_frac
    assert np.array_equal(got.numpy().astype(np.int64), rshift_round(ints, s))


def test_fake_quant_saturates_and_is_straight_through():
    w = torch.tensor([-3.0, -2.0, 0.3, 1.99, 5.0], dtype=torch.float64, requires_grad=True)
    q = fake_quant(w, 8, 6)
    assert q.tolist() == [-2.0, -2.0, 19 / 64, 127 / 64, 127 / 64]
    q.sum().backward()
    assert w.grad.tolist() == [1.0] * 5
    x = torch.tensor([-100.0, 0.0, 100.0], requires_grad=True)
    y = sat_to(x, 16, 10)
    assert y.tolist() == [-32.0, 0.0, 32767 / 1024]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 0.0]


def test_table_lookup_index_and_gradient():
    fmt = Format()
    tabs = QTables.of(fmt)
    sig, tanh = make_tables(fmt)
    p_int = np.arange(-2 ** 15, 2 ** 15, 37, dtype=np.int64)
    p = torch.tensor(p_int / 2.0 ** fmt.pre_frac, requires_grad=True)
    v = table_lookup(p, tabs.sig, torch.sigmoid, tabs)
    want = sig[table_index(p_int, fmt)] / 2.0 ** fmt.gate_frac
    assert np.array_equal(v.detach().numpy(), want)
    v.sum().backward()
    s = torch.sigmoid(p.detach())
    assert torch.allclose(p.grad, s * (1 - s))              # the exact sigmoid's gradient
    g = table_lookup(p.detach(), tabs.tanh, torch.tanh, tabs)
    assert np.array_equal(g.numpy(), tanh[table_index(p_int, fmt)] / 2.0 ** fmt.state_frac)


def test_fold_equals_float_lm():
    """EventNet.from_lm computes the float LM's logits (layer 0 folded: W_ih . E^T)."""
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=11, emb_size=8, hidden_size=12, num_layers=2,
                      threshold_init=0.05)
    lm = LanguageModel(cfg).double().eval()
    net = from_lm(lm).double().eval()
    tokens = torch.randint(0, 11, (30, 3))
    with torch.no_grad():
        want, _ = lm(tokens)
        got, _, events = net(tokens)
    assert torch.allclose(got, want, atol=1e-9)
    assert 0 < sum(int(torch.count_nonzero(e)) for e in events)


def test_qat_float32_close_to_float64_and_trains():
    torch.manual_seed(1)
    net = EventNet(7, [8, 8], threshold_init=0.1)
    fmt = Format()
    tokens = torch.randint(0, 7, (20, 4))
    with torch.no_grad():
        a, _, _ = net(tokens, fmt=fmt)
        b, _, _ = net.double()(tokens, fmt=fmt)
    assert torch.allclose(a.double(), b, atol=1e-3)
    net.float()
    data = torch.arange(200).view(-1, 1).repeat(1, 4) % 7         # learnable: a cycle
    before = evaluate(net, data, bptt=20, fmt=fmt)["loss"]
    train_steps(net, data, 15, lr=1e-2, bptt=20, fmt=fmt, progress=False)
    after = evaluate(net, data, bptt=20, fmt=fmt)["loss"]
    assert after < before
    for name in net.matrix_names():                          # projected: no saturation
        assert float(getattr(net, name).detach().abs().max()) <= 2.0


def test_project_weights_keeps_pattern():
    torch.manual_seed(2)
    net = EventNet(5, [8], threshold_init=0.1)
    fmt = Format()
    with torch.no_grad():
        net.weight_hh_l0.mul_(10)
        net.weight_hh_l0[0, :4] = torch.tensor([0.001, -0.001, 0.0078, -0.0078])
    masks = {n: getattr(net, n) != 0 for n in net.matrix_names()}
    counts = project_weights_(net, fmt, masks)
    assert counts["clamped"] > 0 and counts["bumped"] >= 4
    for name, m in masks.items():
        q = quantize(getattr(net, name).detach().numpy(), 8, 6, saturate=False)
        assert np.array_equal(q != 0, m.numpy())
    assert project_weights_(net, fmt, masks) == {"clamped": 0, "bumped": 0}   # idempotent
    assert math.isclose(float(net.weight_hh_l0[0, 1].detach()), -1 / 64)


def test_bad_kind_rejected():
    with pytest.raises(ValueError, match="kind"):
        EventNet(5, [8], kind="cnn")
