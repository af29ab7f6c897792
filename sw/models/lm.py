"""Language model: embedding -> stacked recurrent layers -> decoder tied to the embedding.

Regularisation follows AWD-LSTM (and the EGRU papers' LM recipes): whole-word dropout on the
embedding matrix, locked (variational) dropout on the embedding output, between layers and
before the decoder, and DropConnect on the recurrent weights R.

Parameter names (what the exporter reads): ``encoder.weight`` (V, E) is the embedding *and* the
decoder weight (tied); ``decoder_bias`` (V,); layer k is ``rnns.{k}`` with torch.nn.GRU /
LSTM names ``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0`` and, for the
EGRU, ``threshold_l0``.

State: a list with one tuple of (1, B, H) tensors per layer: EGRU (c, y), LSTM (h, c), GRU (h,).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig
from .egru import EGRU, EGRUState, LayerTrace


def locked_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Variational dropout: one mask per sequence, shared over time. x: (T, B, F)."""
    if not training or p == 0:
        return x
    mask = x.new_empty(1, x.shape[1], x.shape[2]).bernoulli_(1 - p) / (1 - p)  # (1, B, F)
    return x * mask


def embedding_dropout(weight: Tensor, p: float, training: bool) -> Tensor:
    """Drop whole words: zero entire rows of the embedding matrix (V, E)."""
    if not training or p == 0:
        return weight
    mask = weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p) / (1 - p)  # (V, 1)
    return weight * mask


class LanguageModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2, not {cfg.vocab_size}")
        self.cfg = cfg
        self.encoder = nn.Embedding(cfg.vocab_size, cfg.emb_size)
        self.rnns = nn.ModuleList()
        for inp, hid in cfg.layer_sizes():
            if cfg.rnn == "egru":
                layer = EGRU(inp, hid, variant=cfg.variant, gamma=cfg.gamma, s=cfg.s,
                             threshold_init=cfg.threshold_init,
                             min_threshold=cfg.min_threshold, weight_drop=cfg.weight_drop)
            elif cfg.rnn == "lstm":
                layer = nn.LSTM(inp, hid)
            else:
                layer = nn.GRU(inp, hid)
            self.rnns.append(layer)
        self.decoder_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)

    @property
    def decoder_weight(self) -> Tensor:
        return self.encoder.weight  # tied: (V, E)

    def init_state(self, batch: int) -> list[tuple[Tensor, ...]]:
        p = self.encoder.weight
        state = []
        for _, hid in self.cfg.layer_sizes():
            z = p.new_zeros(1, batch, hid)
            n = 1 if self.cfg.rnn == "gru" else 2
            state.append(tuple(z.clone() for _ in range(n)))
        return state

    @torch.no_grad()
    def constrain_(self) -> None:
        """Keep EGRU thresholds positive; call after every optimizer step."""
        for layer in self.rnns:
            if isinstance(layer, EGRU):
                layer.constrain_()

    def _run_layer(self, k: int, x: Tensor, st: tuple[Tensor, ...]):
        """One layer over x (T, B, I). Returns y (T, B, H), new state tuple, v or None."""
        layer = self.rnns[k]
        if isinstance(layer, EGRU):
            y, c_T, v = layer.layer_forward(0, x, st[0][0], st[1][0])
            return y, (c_T.unsqueeze(0), y[-1:].clone()), v
        hx = (st[0], st[1]) if self.cfg.rnn == "lstm" else st[0]
        if self.training and self.cfg.weight_drop > 0:
            # DropConnect on R for the torch RNNs: call them with a masked weight_hh.
            R = F.dropout(layer.weight_hh_l0, self.cfg.weight_drop, True)
            y, new = torch.func.functional_call(layer, {"weight_hh_l0": R}, (x, hx))
        else:
            y, new = layer(x, hx)
        return y, (tuple(new) if self.cfg.rnn == "lstm" else (new,)), None

    @staticmethod
    def step_sparsity(traces: list[LayerTrace]) -> Tensor:
        """Activity sparsity per layer and step: fraction of zero y entries, (L, T)."""
        return torch.stack([(t.y == 0).float().mean(dim=(1, 2)) for t in traces])

    def forward(self, tokens: Tensor, state=None, return_internals: bool = False):
        """tokens (T, B) -> logits (T, B, V), new state[, per-layer LayerTrace list]."""
        cfg = self.cfg
        if state is None:
            state = self.init_state(tokens.shape[1])
        weight = embedding_dropout(self.encoder.weight, cfg.dropout_emb, self.training)
        x = locked_dropout(F.embedding(tokens, weight), cfg.dropout_in, self.training)  # (T,B,E)
        new_state, traces = [], []
        for k in range(cfg.num_layers):
            y, st, v = self._run_layer(k, x, state[k])
            traces.append(LayerTrace(x, y, v))
            new_state.append(st)
            p = cfg.dropout_hid if k < cfg.num_layers - 1 else cfg.dropout_out
            x = locked_dropout(y, p, self.training)
        logits = F.linear(x, self.decoder_weight, self.decoder_bias)  # (T, B, V)
        return (logits, new_state, traces) if return_internals else (logits, new_state)


def detach_state(state):
    return [tuple(t.detach() for t in st) for st in state]


def state_tensors(state) -> dict[str, Tensor]:
    """Flatten a state for checkpoints: {"state.{k}.{i}": (1, B, H)}."""
    return {f"state.{k}.{i}": t.contiguous() for k, st in enumerate(state)
            for i, t in enumerate(st)}


def state_from_tensors(tensors: dict[str, Tensor], num_layers: int):
    state = []
    for k in range(num_layers):
        st, i = [], 0
        while f"state.{k}.{i}" in tensors:
            st.append(tensors[f"state.{k}.{i}"])
            i += 1
        state.append(tuple(st))
    return state


def build_model(cfg: ModelConfig) -> LanguageModel:
    return LanguageModel(cfg)


__all__ = ["EGRUState", "LanguageModel", "build_model", "detach_state", "locked_dropout"]
