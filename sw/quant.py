"""Quantization-aware EGRU: the float model that computes the fixed-point contract.

``EventNet`` is the network as the accelerator sees it:

- a language model (``kind="lm"``) whose layer-0 input matrix is the *folded* token matrix
  ``weight_ih_l0 = W_ih . E^T`` (3H, V): a token is one event that fetches one column, and
  bank balance (DESIGN.md section 4) is imposed on exactly the matrix the hardware stores;
  the decoder is the embedding ``E`` (V, H_last), tied as in the float LM, plus a bias;
- or a plain stacked EGRU (``kind="rnn"``) with a dense real-valued input that is
  delta-encoded (persistent input, docs/fixed_point.md section 3).

Its parameters carry ``torch.nn.GRU`` names (``weight_ih_l{k}``, ``weight_hh_l{k}``,
``bias_ih_l{k}``, ``bias_hh_l{k}``, gate order r, z, n) plus ``threshold_l{k}``, and for a
language model ``embedding`` (V, D) and ``decoder_bias`` (V,).

``forward(..., fmt=None)`` is the float model (the fused EGRU layer of ``sw.models.egru``);
``forward(..., fmt=Format(...))`` runs docs/fixed_point.md step by step on float tensors holding
``integer * 2**-f`` values: fake quantization with straight-through gradients, the same
narrowings (round half up, saturation), table look-ups by the same index rule with the
gradient of the exact sigmoid / tanh. In float64 it equals ``sw.golden`` bit for bit
(tests/test_golden.py); in float32 (training) it is within float rounding of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hw.fixedpoint import Format, make_tables
from sw.models.egru import egru_layer_fused, heaviside_surrogate

__all__ = [
    "EventNet",
    "NetState",
    "QTables",
    "StepRecord",
    "delta_encode",
    "fake_quant",
    "project_weights_",
    "round_to",
    "sat_to",
    "table_lookup",
]


# --- the contract's primitives on float tensors ----------------------------------------------

def _ste(x: Tensor, q: Tensor) -> Tensor:
    """Forward q, backward identity (straight-through)."""
    return x + (q - x).detach()


def round_to(x: Tensor, frac: int) -> Tensor:
    """floor(x * 2**frac + 0.5) / 2**frac (round half up), straight-through gradient."""
    s = float(2 ** frac)
    return _ste(x, torch.floor(x * s + 0.5) / s)


def sat_to(x: Tensor, bits: int, frac: int) -> Tensor:
    """Clamp to the range of Q(bits, frac); the gradient is zero where it clamps."""
    s = float(2 ** frac)
    return torch.clamp(x, -(2 ** (bits - 1)) / s, (2 ** (bits - 1) - 1) / s)


def fake_quant(x: Tensor, bits: int, frac: int) -> Tensor:
    """The export rule sat(floor(x * 2**frac + 0.5), bits) / 2**frac, fully straight-through
    (weights that saturate keep their gradient, so they can come back into range)."""
    s = float(2 ** frac)
    q = torch.clamp(torch.floor(x * s + 0.5), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1) / s
    return _ste(x, q)


@dataclass
class QTables:
    """The sigmoid (G) and tanh (S) tables as float values, and the index scale."""

    sig: Tensor
    tanh: Tensor
    scale: float   # idx = floor(p * scale) + N/2, i.e. (p_int >> table_shift) + N/2
    n: int

    @classmethod
    def of(cls, fmt: Format, dtype=torch.float64, device=None) -> QTables:
        sig, tanh = make_tables(fmt)
        return cls(torch.tensor(sig / 2.0 ** fmt.gate_frac, dtype=dtype, device=device),
                   torch.tensor(tanh / 2.0 ** fmt.state_frac, dtype=dtype, device=device),
                   float(2 ** (fmt.table_bits - 1 - fmt.table_range_log2)), fmt.table_size)


def table_lookup(p: Tensor, table: Tensor, fn, tabs: QTables) -> Tensor:
    """table[idx(p)] forward, d fn(p) / dp backward. ``p`` holds format-P values."""
    idx = (torch.floor(p.detach() * tabs.scale) + tabs.n // 2).clamp(0, tabs.n - 1).long()
    exact = fn(p)
    return exact + (table[idx] - exact).detach()


def delta_encode(x: Tensor, threshold: float, xhat0: Tensor | None = None):
    """Delta Networks' encoder on a dense input (T, B, I): returns the values the network
    sees (xhat, (T, B, I)), the final xhat, and the fraction of inputs sent as events.

    An input is re-sent when it moved by more than ``threshold`` since it was last sent;
    ``threshold = 0`` sends every change, so ``xhat == x`` (exact).
    """
    xhat = torch.zeros_like(x[0]) if xhat0 is None else xhat0
    out, sent = [], 0
    for t in range(x.shape[0]):
        send = (x[t] - xhat).abs() > threshold
        xhat = torch.where(send, x[t], xhat)
        sent += int(send.sum())
        out.append(xhat)
    return torch.stack(out), xhat, sent / max(1, x.numel())


# --- the model ---------------------------------------------------------------------------------

class NetState:
    """Recurrent state per layer: c and y (B, H); xhat (B, I) of a persistent input."""

    def __init__(self, c: list[Tensor], y: list[Tensor], xhat: Tensor | None = None):
        self.c, self.y, self.xhat = c, y, xhat

    def detach(self) -> NetState:
        return NetState([c.detach() for c in self.c], [y.detach() for y in self.y],
                        None if self.xhat is None else self.xhat.detach())


@dataclass
class StepRecord:
    """Per layer, all steps: input-part and recurrent-part accumulators (T, B, 3H), c and y
    after the step (T, B, H). Values in real units (integer * 2**-f)."""

    ax: Tensor
    ah: Tensor
    c: Tensor
    y: Tensor


class EventNet(nn.Module):
    """Stacked EGRU in the accelerator's form (see the module docstring).

    Parameters
    ----------
    input_size : V (tokens) for ``kind="lm"``, I (dense features) for ``kind="rnn"``.
    hidden_sizes : per layer; for an LM the last equals the embedding size (tied decoder).
    kind : "lm" | "rnn".
    emb_size : D of the embedding / decoder (LM only; must equal hidden_sizes[-1]).
    gamma, s : surrogate gradient of the Heaviside step.
    min_threshold : thresholds are projected onto [min_threshold, inf).
    dropout : dropout on every layer's events in training (float and QAT alike).
    delta_threshold : persistent input: changes of at most this size are not sent.
    """

    def __init__(self, input_size: int, hidden_sizes: list[int], kind: str = "lm",
                 gamma: float = 3.6, s: float = 3.6, min_threshold: float = 0.01,
                 threshold_init: float = 0.3, dropout: float = 0.0,
                 delta_threshold: float = 0.0, readout: bool | None = None):
        super().__init__()
        if kind not in ("lm", "rnn"):
            raise ValueError(f"kind must be 'lm' or 'rnn', not {kind!r}")
        if not hidden_sizes or min(hidden_sizes) < 1 or input_size < 1:
            raise ValueError(f"bad sizes: {input_size=}, {hidden_sizes=}")
        self.kind, self.input_size = kind, int(input_size)
        self.hidden_sizes = [int(h) for h in hidden_sizes]
        self.gamma, self.s, self.min_threshold = float(gamma), float(s), float(min_threshold)
        self.dropout, self.delta_threshold = float(dropout), float(delta_threshold)
        self.readout = (kind == "lm") if readout is None else bool(readout)
        if kind == "lm" and not self.readout:
            raise ValueError("a language model needs its readout")
        prev = self.input_size
        for k, h in enumerate(self.hidden_sizes):
            bound = 1.0 / math.sqrt(h)
            for name, shape in ((f"weight_ih_l{k}", (3 * h, prev)),
                                (f"weight_hh_l{k}", (3 * h, h)),
                                (f"bias_ih_l{k}", (3 * h,)), (f"bias_hh_l{k}", (3 * h,))):
                self.register_parameter(name, nn.Parameter(torch.empty(shape).uniform_(
                    -bound, bound)))
            self.register_parameter(f"threshold_l{k}",
                                    nn.Parameter(torch.full((h,), float(threshold_init))))
            prev = h
        if self.readout:
            vocab = self.input_size if kind == "lm" else None
            if vocab is None:
                raise ValueError("a readout is only supported for language models")
            self.embedding = nn.Parameter(torch.empty(vocab, prev).uniform_(-0.1, 0.1))
            self.decoder_bias = nn.Parameter(torch.zeros(vocab))

    # -- bookkeeping ---------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.hidden_sizes)

    def config(self) -> dict:
        """Everything needed to rebuild the module (saved in checkpoints)."""
        return {"input_size": self.input_size, "hidden_sizes": self.hidden_sizes,
                "kind": self.kind, "gamma": self.gamma, "s": self.s,
                "min_threshold": self.min_threshold, "dropout": self.dropout,
                "delta_threshold": self.delta_threshold, "readout": self.readout}

    @classmethod
    def from_config(cls, cfg: dict) -> EventNet:
        return cls(**cfg)

    def p(self, name: str, k: int) -> Tensor:
        return getattr(self, f"{name}_l{k}")

    def theta(self, k: int) -> Tensor:
        return self.p("threshold", k).clamp(min=self.min_threshold)

    @torch.no_grad()
    def constrain_(self) -> None:
        """Project thresholds onto [min_threshold, inf); call after every optimizer step."""
        for k in range(self.num_layers):
            self.p("threshold", k).clamp_(min=self.min_threshold)

    def matrix_names(self) -> list[str]:
        """The prunable matrices: input and recurrent weights of every layer."""
        return [f"{m}_l{k}" for k in range(self.num_layers) for m in ("weight_ih", "weight_hh")]

    def init_state(self, batch: int, dtype=None, device=None) -> NetState:
        ref = self.weight_hh_l0
        dtype, device = dtype or ref.dtype, device or ref.device
        zeros = [torch.zeros(batch, h, dtype=dtype, device=device) for h in self.hidden_sizes]
        xhat = None
        if self.kind == "rnn":
            xhat = torch.zeros(batch, self.input_size, dtype=dtype, device=device)
        return NetState(zeros, [z.clone() for z in zeros], xhat)

    # -- forward ------------------------------------------------------------------------------
    def forward(self, inp: Tensor, state: NetState | None = None, fmt: Format | None = None,
                record: bool = False):
        """inp: tokens (T, B) long (LM) or dense input (T, B, I) (rnn).

        Returns (out, state, records): logits (T, B, V) for an LM (the last layer's events
        (T, B, H) otherwise), the new state, and per-layer ``StepRecord`` s when ``record``
        (quantized mode only) else per-layer event tensors (T, B, H).
        """
        B = inp.shape[1]
        ref = self.weight_hh_l0
        if state is None:
            state = self.init_state(B, ref.dtype, ref.device)
        if fmt is None:
            return self._forward_float(inp, state)
        return self._forward_quant(inp, state, fmt, record)

    def _dropout(self, y: Tensor) -> Tensor:
        return F.dropout(y, self.dropout, True) if self.dropout > 0 and self.training else y

    def _forward_float(self, inp: Tensor, state: NetState):
        w0, b0 = self.weight_ih_l0, self.bias_ih_l0
        new_xhat = state.xhat
        if self.kind == "lm":
            ax = F.embedding(inp, w0.t()) + b0                      # (T, B, 3H): one column
        else:
            xs, new_xhat, _ = delta_encode(inp.to(w0.dtype), self.delta_threshold, state.xhat)
            ax = F.linear(xs, w0, b0)                                # (T, B, 3H)
        cs, ys, events = [], [], []
        x = None
        for k in range(self.num_layers):
            if k > 0:
                ax = F.linear(x, self.p("weight_ih", k), self.p("bias_ih", k))
            args = (ax, self.p("weight_hh", k), self.p("bias_hh", k), self.theta(k),
                    state.c[k], state.y[k], self.gamma, self.s)
            # the float path trains through the fused forward/backward of sw.models.egru
            y_all, c_T, _ = egru_layer_fused(*args)
            cs.append(c_T)
            ys.append(y_all[-1])
            events.append(y_all)
            x = self._dropout(y_all)
        out = F.linear(x, self.embedding, self.decoder_bias) if self.readout else x
        return out, NetState(cs, ys, new_xhat), events

    def quantized_params(self, fmt: Format) -> dict[str, Tensor]:
        """Every parameter as the bundle holds it (float view of the integers)."""
        wb, wf, ab, af = fmt.weight_bits, fmt.weight_frac, fmt.acc_bits, fmt.acc_frac
        q = {}
        for k in range(self.num_layers):
            q[f"l{k}.w"] = fake_quant(self.p("weight_ih", k), wb, wf)
            q[f"l{k}.r"] = fake_quant(self.p("weight_hh", k), wb, wf)
            q[f"l{k}.bx"] = fake_quant(self.p("bias_ih", k), ab, af)
            q[f"l{k}.bh"] = fake_quant(self.p("bias_hh", k), ab, af)
            # theta >= 1 LSB (contract); the float model keeps it >= min_threshold anyway
            th = fake_quant(self.theta(k), fmt.state_bits, fmt.state_frac)
            q[f"l{k}.theta"] = torch.clamp(th, min=2.0 ** -fmt.state_frac)
        if self.readout:
            q["dec.w"] = fake_quant(self.embedding, wb, wf)
            q["dec.b"] = fake_quant(self.decoder_bias, ab, af)
        return q

    def _forward_quant(self, inp: Tensor, state: NetState, fmt: Format, record: bool):
        q = self.quantized_params(fmt)
        dtype = q["l0.w"].dtype
        tabs = QTables.of(fmt, dtype, q["l0.w"].device)
        sf = fmt.state_frac
        new_xhat = state.xhat
        if self.kind == "lm":
            ax = F.embedding(inp, q["l0.w"].t()) + q["l0.bx"]        # token event of value 1.0
        else:
            # Persistent input: the encoder clamps x to sb-1 bits of magnitude (so every delta
            # fits S); the accumulators hold bx + W . xhat, which is what the sum of the sent
            # deltas is (exactly, as no wrap can happen).
            lim = (2 ** (fmt.state_bits - 2) - 1) / 2.0 ** sf
            xq = torch.clamp(round_to(inp.to(dtype), sf), -lim, lim)
            thr = math.floor(self.delta_threshold * 2 ** sf + 0.5) / 2.0 ** sf   # format S
            xs, new_xhat, _ = delta_encode(xq, thr, state.xhat)
            ax = F.linear(xs, q["l0.w"]) + q["l0.bx"]
        cs, ys, recs = [], [], []
        x = None
        for k in range(self.num_layers):
            if k > 0:
                ax = F.linear(x, q[f"l{k}.w"]) + q[f"l{k}.bx"]      # (T, B, 3H)
            y_all, c_T, rec = quant_layer(ax, q[f"l{k}.r"], q[f"l{k}.bh"], q[f"l{k}.theta"],
                                          state.c[k], state.y[k], fmt, tabs,
                                          self.gamma, self.s, record)
            cs.append(c_T)
            ys.append(y_all[-1])
            recs.append(rec if record else y_all)
            x = self._dropout(y_all)
        out = F.linear(x, q["dec.w"]) + q["dec.b"] if self.readout else x
        return out, NetState(cs, ys, new_xhat), recs


def quant_layer(ax: Tensor, R: Tensor, bh: Tensor, theta: Tensor, c: Tensor, y: Tensor,
                fmt: Format, tabs: QTables, gamma: float, s: float, record: bool = False):
    """One layer over T steps in the contract's arithmetic (docs/fixed_point.md section 4).

    ax (T, B, 3H): input-part accumulators (format A values); R, bh, theta already quantized;
    c, y (B, H) the state. Returns y_all (T, B, H), c_T and a ``StepRecord`` (or None).
    """
    H = R.shape[1]
    pb, pf, sb, sf = fmt.pre_bits, fmt.pre_frac, fmt.state_bits, fmt.state_frac

    def narrow(v):                                   # A -> P: sat(rshift_round(v, af-pf), pb)
        return sat_to(round_to(v, pf), pb, pf)

    ys, rec_ah, rec_c = [], [], []
    for t in range(ax.shape[0]):
        ah = F.linear(y, R) + bh                     # (B, 3H) = bh + events of step t-1
        a_r, a_z, a_n = ax[t].split(H, dim=-1)
        h_r, h_z, h_n = ah.split(H, dim=-1)
        r = table_lookup(narrow(a_r + h_r), tabs.sig, torch.sigmoid, tabs)      # G
        z = table_lookup(narrow(a_z + h_z), tabs.sig, torch.sigmoid, tabs)      # G
        pn = sat_to(narrow(a_n) + round_to(r * narrow(h_n), pf), pb, pf)        # P
        g = table_lookup(pn, tabs.tanh, torch.tanh, tabs)                       # S
        ch = sat_to(g + round_to(z * (c - g), sf), sb, sf)                      # S: c^
        o = heaviside_surrogate(ch - theta, gamma, s)                           # strict >
        y = o * ch
        c = ch - o * theta
        ys.append(y)
        if record:
            rec_ah.append(ah)
            rec_c.append(c)
    y_all = torch.stack(ys)
    rec = None
    if record:
        rec = StepRecord(ax, torch.stack(rec_ah), torch.stack(rec_c), y_all)
    return y_all, c, rec


@torch.no_grad()
def project_weights_(net: EventNet, fmt: Format, masks: dict[str, Tensor] | None = None) -> dict:
    """Make the float weights exactly representable the way the bundle needs them.

    - every weight matrix (and the decoder) is clamped to the range of format W, so nothing
      saturates at export and the float model is what the hardware computes;
    - with ``masks``, a kept weight that would round to 0 is set to +-1 LSB, so the non-zero
      pattern (and with it the bank balance of the pruning) survives quantization.

    Idempotent; called before and after every QAT step and by the exporter.
    Returns the number of weights changed: {"clamped": n, "bumped": n}.
    """
    lsb = 2.0 ** -fmt.weight_frac
    lo, hi = -(2 ** (fmt.weight_bits - 1)) * lsb, (2 ** (fmt.weight_bits - 1) - 1) * lsb
    names = net.matrix_names() + (["embedding"] if net.readout else [])
    clamped = bumped = 0
    for name in names:
        w = getattr(net, name)
        out = (w < lo) | (w > hi)
        clamped += int(out.sum())
        w.clamp_(lo, hi)
        if masks and name in masks:
            m = masks[name].to(w.device)
            zero = m & (torch.floor(w / lsb + 0.5) == 0)
            bumped += int(zero.sum())
            w.copy_(torch.where(zero, torch.where(w < 0, -lsb, lsb), w))
    return {"clamped": clamped, "bumped": bumped}
