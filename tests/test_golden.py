"""The integer golden model against the quantization-aware float model (sw.quant) in float64:
equal bit for bit at every step (c, y, accumulators, logits), and independent of event order."""

import numpy as np
import pytest
import torch

from hw.bundle import load_bundle
from hw.fixedpoint import Format, wrap
from sw.export import export_bundle
from sw.golden import Golden
from sw.quant import EventNet

torch.set_num_threads(1)   # 2 shared cores: no thread oversubscription


def random_net(kind="lm", vocab=13, hidden=(16, 8), seed=0, scale=1.5, theta=0.2,
               delta_threshold=0.0):
    torch.manual_seed(seed)
    net = EventNet(vocab, list(hidden), kind=kind, delta_threshold=delta_threshold).double()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith("threshold"):
                p.uniform_(0.5 * theta, 1.5 * theta)
            elif name.startswith("weight"):
                p.uniform_(-scale, scale)
                p.mul_(torch.rand_like(p) > 0.3)          # some zeros: sparse columns
            else:
                p.uniform_(-1.0, 1.0)
    return net.eval()


def compare_steps(net, fmt, gold, steps, inp):
    """Run the QAT model on inp (T, 1[, I]) and check every step against golden traces."""
    with torch.no_grad():
        out, _, recs = net(inp, fmt=fmt, record=True)
    sf, af = 2.0 ** fmt.state_frac, 2.0 ** fmt.acc_frac
    fired = 0
    for t, tr in enumerate(steps):
        for k, lt in enumerate(tr.layers):
            rec = recs[k]
            H = lt.c.shape[0]
            for name, want, got, scale in (
                    ("c", lt.c, rec.c[t, 0], sf), ("y", lt.y, rec.y[t, 0], sf),
                    ("ax", lt.ax.reshape(-1), rec.ax[t, 0], af),
                    ("ah", lt.ah.reshape(-1), rec.ah[t, 0], af)):
                g = (got * scale).numpy()
                assert np.array_equal(g, np.round(g)), f"step {t} layer {k} {name} off-grid"
                assert np.array_equal(g.astype(np.int64), want), \
                    f"step {t} layer {k} {name} differs from the golden model"
            assert H == rec.c.shape[-1]
            fired += int(np.count_nonzero(lt.y))
        if tr.logits is not None:
            g = (out[t, 0] * af).numpy()
            assert np.array_equal(g.astype(np.int64), tr.logits), f"step {t} logits differ"
    return fired


FORMATS = [Format(), Format(weight_bits=4, weight_frac=2, state_bits=12, state_frac=8,
                            acc_bits=24, pre_bits=12, pre_frac=8, gate_bits=12, gate_frac=10,
                            table_bits=6, table_range_log2=3)]


@pytest.mark.parametrize("fmt", FORMATS, ids=["default", "narrow"])
@pytest.mark.parametrize("seed", [0, 1])
def test_lm_bit_exact(tmp_path, fmt, seed):
    net = random_net(seed=seed)
    path, _ = export_bundle(net, tmp_path / "b", fmt=fmt, banks=4)
    gold = Golden(load_bundle(path))
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 13, size=40)
    steps = gold.run_tokens(tokens)
    fired = compare_steps(net, fmt, gold, steps, torch.tensor(tokens).view(-1, 1))
    assert fired > 0                                  # the comparison saw events


def test_saturating_values_bit_exact(tmp_path):
    """Weights beyond the W range and large biases: saturation in W, P and S paths."""
    net = random_net(seed=3, scale=4.0, theta=0.05)
    with torch.no_grad():
        net.bias_ih_l0.mul_(30.0)
    fmt = Format()
    path, report = export_bundle(net, tmp_path / "b", fmt=fmt, banks=2)
    assert report["saturated_total"] > 0
    gold = Golden(load_bundle(path))
    tokens = np.arange(30) % 13
    compare_steps(net, fmt, gold, gold.run_tokens(tokens), torch.tensor(tokens).view(-1, 1))


@pytest.mark.parametrize("delta", [0.0, 0.05])
def test_persistent_input_bit_exact(tmp_path, delta):
    """Dense delta-encoded input: the QAT model's xhat form equals golden step_dense."""
    fmt = Format()
    net = random_net(kind="rnn", vocab=6, hidden=(8, 8), seed=5, delta_threshold=delta)
    path, _ = export_bundle(net, tmp_path / "b", fmt=fmt, banks=4)
    bundle = load_bundle(path)
    assert bundle.model["delta_threshold"] == round(delta * 2 ** fmt.state_frac)
    gold = Golden(bundle)
    rng = np.random.default_rng(0)
    # a slowly varying signal (integers in format S), with a few big jumps beyond the range
    x = np.cumsum(rng.integers(-300, 300, size=(50, 6)), axis=0)
    x[10, 2] = 40000
    steps = [gold.step_dense(row) for row in x]
    sent = sum(len(s.layers[0].in_events) for s in steps)
    if delta:
        assert sent < x.size                          # the threshold suppressed some
    inp = torch.tensor(x / 2.0 ** fmt.state_frac).unsqueeze(1)   # (T, 1, I)
    compare_steps(net, fmt, gold, steps, inp)


def test_float_delta_encoder_exact_at_zero():
    """The float model with threshold 0 sees the dense input unchanged."""
    net = random_net(kind="rnn", vocab=5, hidden=(8,), seed=2)
    x = torch.randn(20, 3, 5, dtype=torch.float64)
    with torch.no_grad():
        out0, _, _ = net(x)
        net.delta_threshold = 10.0                    # nothing is ever sent: input stays 0
        out1, _, _ = net(x)
        out2, _, _ = net(torch.zeros_like(x))
    assert not torch.equal(out0, out1)
    assert torch.equal(out1, out2)


def _step_by_events(gold, events, rng):
    """Reference accumulation, one event and one entry at a time in shuffled order."""
    fmt = gold.fmt
    events = list(events)
    rng.shuffle(events)
    ax = gold.bx[0].reshape(-1).copy()
    w = gold.w[0]
    for j, v in events:
        rows = np.nonzero(w[:, j])[0]
        for row in rng.permutation(rows):
            ax[row] = wrap(ax[row] + v * w[row, j], fmt.acc_bits)
    return ax


def test_event_order_invariance(tmp_path):
    net = random_net(kind="rnn", vocab=10, hidden=(16, 8), seed=7)
    path, _ = export_bundle(net, tmp_path / "b", fmt=Format(), banks=4)
    bundle = load_bundle(path)
    rng = np.random.default_rng(1)
    a, b = Golden(bundle), Golden(bundle)
    for _ in range(12):
        x = rng.integers(-3000, 3000, size=10)
        ev = a.encode_deltas(x)
        b.encode_deltas(x)
        shuffled = list(ev)
        rng.shuffle(shuffled)
        ta, tb = a.step_events(ev), b.step_events(shuffled)
        for la, lb in zip(ta.layers, tb.layers):
            assert np.array_equal(la.c, lb.c) and np.array_equal(la.y, lb.y)
            assert np.array_equal(la.ax, lb.ax) and np.array_equal(la.ah, lb.ah)
    # a transient-input bundle: one-at-a-time accumulation in random order, per entry
    net = random_net(seed=8)
    path, _ = export_bundle(net, tmp_path / "lm", fmt=Format(), banks=4)
    gold = Golden(load_bundle(path))
    one = gold.fmt.one
    for _ in range(5):
        events = [(int(j), int(v)) for j, v in zip(rng.choice(13, 4, replace=False),
                                                   rng.integers(-one, one, 4))]
        want = gold._accumulate(gold.bx[0], gold.w[0], events).reshape(-1)
        assert np.array_equal(_step_by_events(gold, events, rng), want)
