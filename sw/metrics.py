"""Activity sparsity, backward sparsity and effective MACs (DESIGN.md section 2).

Effective MACs per token, per matrix: dense MACs x (fraction of its input entries that are
non-zero) x (fraction of its weights that are non-zero). Inputs: W sees the layer input (layer
0: the embedding vector), R sees y_{t-1} (measured as the density of y over all steps), the
decoder sees the last layer's y. Weight density counts zeros in the weights themselves, so
pruned models (masks applied to the weights) are counted without any extra hook.
"""

from __future__ import annotations

import math

import torch

from .models.egru import LayerTrace


class SparsityMeter:
    """Accumulates per-layer non-zero counts of inputs, events and out-of-support c^-theta."""

    def __init__(self, num_layers: int, s: float | None = None):
        self.s = s
        self.x_nz = [0] * num_layers
        self.x_n = [0] * num_layers
        self.y_nz = [0] * num_layers
        self.y_n = [0] * num_layers
        self.v_out = [0] * num_layers  # |c^ - theta| outside the surrogate's support
        self.v_n = [0] * num_layers

    @torch.no_grad()
    def update(self, traces: list[LayerTrace]) -> None:
        for k, tr in enumerate(traces):
            self.x_nz[k] += int(torch.count_nonzero(tr.x))
            self.x_n[k] += tr.x.numel()
            self.y_nz[k] += int(torch.count_nonzero(tr.y))
            self.y_n[k] += tr.y.numel()
            if tr.v is not None and self.s is not None:
                self.v_out[k] += int((self.s * tr.v.abs() >= 1).sum())
                self.v_n[k] += tr.v.numel()

    def input_density(self) -> list[float]:
        return [nz / max(n, 1) for nz, n in zip(self.x_nz, self.x_n)]

    def output_density(self) -> list[float]:
        return [nz / max(n, 1) for nz, n in zip(self.y_nz, self.y_n)]

    def activity_sparsity(self) -> list[float]:
        """Fraction of zero y entries per layer."""
        return [1.0 - d for d in self.output_density()]

    def backward_sparsity(self) -> list[float] | None:
        """Fraction of units whose surrogate gradient is zero (s*|c^ - theta| >= 1)."""
        if not any(self.v_n):
            return None
        return [o / max(n, 1) for o, n in zip(self.v_out, self.v_n)]


def weight_density(w: torch.Tensor) -> float:
    return float(torch.count_nonzero(w)) / w.numel()


def effective_macs(model, meter: SparsityMeter) -> dict:
    """Per-token MAC counts of a LanguageModel given measured densities."""
    cfg = model.cfg
    gates = 4 if cfg.rnn == "lstm" else 3
    din, dout = meter.input_density(), meter.output_density()
    layers, rnn_eff, rnn_dense, lstm_dense = [], 0.0, 0, 0
    for k, (inp, hid) in enumerate(cfg.layer_sizes()):
        layer = model.rnns[k]
        W, R = layer.weight_ih_l0, layer.weight_hh_l0  # getattr: pruned weights included
        dense_w, dense_r = gates * hid * inp, gates * hid * hid
        wd_w, wd_r = weight_density(W), weight_density(R)
        eff_w = dense_w * din[k] * wd_w
        eff_r = dense_r * dout[k] * wd_r  # R's input is y_{t-1}
        layers.append({"layer": k, "input_size": inp, "hidden_size": hid,
                       "W": {"dense": dense_w, "input_density": din[k],
                             "weight_density": wd_w, "effective": eff_w},
                       "R": {"dense": dense_r, "input_density": dout[k],
                             "weight_density": wd_r, "effective": eff_r}})
        rnn_eff += eff_w + eff_r
        rnn_dense += dense_w + dense_r
        lstm_dense += 4 * hid * (inp + hid)
    V, E = model.decoder_weight.shape
    wd_d = weight_density(model.decoder_weight)
    dec = {"dense": V * E, "input_density": dout[-1], "weight_density": wd_d,
           "effective": V * E * dout[-1] * wd_d}
    return {
        "layers": layers,
        "rnn_effective": rnn_eff,
        "rnn_dense": rnn_dense,
        "rnn_dense_lstm": lstm_dense,  # an LSTM of the same layer sizes, dense
        "reduction_vs_dense": rnn_dense / rnn_eff if rnn_eff else math.inf,
        "reduction_vs_lstm": lstm_dense / rnn_eff if rnn_eff else math.inf,
        "decoder": dec,
        "total_effective": rnn_eff + dec["effective"],
        "total_dense_lstm": lstm_dense + V * E,
    }
