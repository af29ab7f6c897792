"""EGRU against DESIGN.md's equations, surrogate gradient, seed variant, language model."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from sw.config import ModelConfig
from sw.models import EGRU, LanguageModel, heaviside_surrogate
from sw.models.egru import surrogate_grad

T, B, I, H, L = 9, 4, 5, 7, 2


def plain_egru(m: EGRU, x, c0, y0, variant="default"):
    """DESIGN.md section 2 written out step by step, unit by unit (no shared code with EGRU)."""
    ys = []
    c, y = [t.clone() for t in c0], [t.clone() for t in y0]
    inp = x
    for k in range(m.num_layers):
        W, R = getattr(m, f"weight_ih_l{k}"), getattr(m, f"weight_hh_l{k}")
        bx, bh = getattr(m, f"bias_ih_l{k}"), getattr(m, f"bias_hh_l{k}")
        theta = getattr(m, f"threshold_l{k}")
        Wr, Wz, Wn = W[:H], W[H:2 * H], W[2 * H:]  # gate order r, z, n (torch.nn.GRU)
        Rr, Rz, Rn = R[:H], R[H:2 * H], R[2 * H:]
        out = []
        for t in range(inp.shape[0]):
            xt, yp, cp = inp[t], y[k], c[k]
            r = torch.sigmoid(xt @ Wr.T + bx[:H] + yp @ Rr.T + bh[:H])
            z = torch.sigmoid(xt @ Wz.T + bx[H:2 * H] + yp @ Rz.T + bh[H:2 * H])
            if variant == "default":
                g = torch.tanh(xt @ Wn.T + bx[2 * H:] + r * (yp @ Rn.T + bh[2 * H:]))
            else:
                g = torch.tanh(xt @ Wn.T + bx[2 * H:] + (r * yp) @ Rn.T + bh[2 * H:])
            ch = z * cp + (1 - z) * g
            o = (ch - theta > 0).to(ch.dtype)
            y[k] = o * ch
            c[k] = ch - o * theta if variant == "default" else ch - y[k]
            out.append(y[k])
        inp = torch.stack(out)
        ys.append(inp)
    return inp, torch.stack(c), torch.stack(y)


def make(variant="default", fused=True, seed=0):
    torch.manual_seed(seed)
    m = EGRU(I, H, num_layers=L, variant=variant, fused=fused).double()
    with torch.no_grad():  # thresholds spread so that activity is strictly between 0 and 1
        for k in range(L):
            getattr(m, f"threshold_l{k}").copy_(torch.linspace(0.02, 0.4, H))
    x = torch.randn(T, B, I, dtype=torch.double)
    c0 = 0.3 * torch.randn(L, B, H, dtype=torch.double)
    y0 = torch.relu(torch.randn(L, B, H, dtype=torch.double)) * 0.5
    return m, x, c0, y0


@pytest.mark.parametrize("variant,fused", [("default", True), ("default", False),
                                           ("seed", False)])
def test_egru_matches_equations(variant, fused):
    m, x, c0, y0 = make(variant, fused)
    y, st = m(x, (c0, y0))
    y_ref, c_ref, yl_ref = plain_egru(m, x, list(c0), list(y0), variant)
    act = (y != 0).double().mean().item()
    assert 0.05 < act < 0.95, act
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(st.c, c_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(st.y, yl_ref, rtol=1e-12, atol=1e-12)


def test_fused_backward_matches_autograd():
    """The hand-written BPTT equals autograd through the plain loop (all inputs)."""
    grads = []
    for fused in (True, False):
        m, x, c0, y0 = make("default", fused)
        x, c0, y0 = (t.requires_grad_() for t in (x, c0, y0))
        y, st = m(x, (c0, y0))
        gy = torch.randn_like(y, generator=torch.Generator().manual_seed(1))
        ((y * gy).sum() + (st.c * 0.7).sum()).backward()
        grads.append([p.grad for p in m.parameters()] + [x.grad, c0.grad, y0.grad])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert all(g.abs().sum() > 0 for g in grads[0])


def test_surrogate_gradient():
    v = torch.linspace(-1, 1, 201, dtype=torch.double).requires_grad_()
    o = heaviside_surrogate(v, 0.7, 2.5)
    assert torch.equal(o, (v > 0).double())
    assert heaviside_surrogate(torch.zeros(1), 1.0, 1.0).item() == 0.0  # H(0) = 0
    o.backward(torch.ones_like(o))
    expected = 0.7 * torch.clamp(1 - 2.5 * v.detach().abs(), min=0)
    torch.testing.assert_close(v.grad, expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(surrogate_grad(v.detach(), 0.7, 2.5), expected)


def test_layout_and_threshold_positive():
    m = EGRU(I, H, num_layers=2)
    g = torch.nn.GRU(I, H, num_layers=2)
    gru_shapes = {k: v.shape for k, v in g.state_dict().items()}
    ours = {k: v.shape for k, v in m.state_dict().items() if not k.startswith("threshold")}
    assert ours == gru_shapes
    assert m.threshold_l1.shape == (H,)
    with torch.no_grad():
        m.threshold_l0.fill_(-1.0)
    assert (m.threshold(0) > 0).all()  # the forward pass never sees theta <= 0
    m.constrain_()
    assert torch.equal(m.threshold_l0, torch.full((H,), m.min_threshold))
    with pytest.raises(ValueError, match="variant"):
        EGRU(I, H, variant="nope")


def test_internals_and_batch_first():
    m, x, c0, y0 = make()
    y, _, traces = m(x, (c0, y0), return_internals=True)
    assert len(traces) == L and traces[0].x is x
    assert torch.equal(traces[-1].y, y)
    ch = traces[0].v + m.threshold(0)
    assert torch.equal(traces[0].y, torch.where(traces[0].v > 0, ch, torch.zeros_like(ch)))
    m.batch_first = True
    yb, _ = m(x.transpose(0, 1), (c0, y0))
    torch.testing.assert_close(yb.transpose(0, 1), y)


@pytest.mark.parametrize("rnn", ["egru", "lstm", "gru"])
def test_language_model(rnn):
    torch.manual_seed(0)
    cfg = ModelConfig(rnn=rnn, vocab_size=50, emb_size=8, hidden_size=12, num_layers=2)
    lm = LanguageModel(cfg)
    tok = torch.randint(0, 50, (6, 3))
    logits, state, traces = lm(tok, return_internals=True)
    assert logits.shape == (6, 3, 50)
    assert [t.y.shape[-1] for t in traces] == [12, 8]  # last layer = embedding size (tied)
    sp = lm.step_sparsity(traces)  # (L, T)
    assert sp.shape == (2, 6) and ((sp >= 0) & (sp <= 1)).all()
    assert lm.decoder_weight is lm.encoder.weight
    lm.eval()
    a, _ = lm(tok, state)
    b, _ = lm(tok, state)
    assert torch.equal(a, b)  # no dropout in eval mode
    lm.train()
    a, _ = lm(tok, state)
    b, _ = lm(tok, state)
    assert not torch.equal(a, b)  # dropouts and DropConnect active
    a.sum().backward()
    assert lm.rnns[0].weight_hh_l0.grad is not None
