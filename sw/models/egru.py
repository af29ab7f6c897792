"""Event-based GRU (EGRU) layer, as DESIGN.md section 2 and EvNN compute it.

Per layer and step, with input x_t, previous events y_{t-1} and internal state c_{t-1}:

    a = W x_t + b_ih            h = R y_{t-1} + b_hh          rows in gate order r, z, n
    r = sigmoid(a_r + h_r)      z = sigmoid(a_z + h_z)
    n = tanh(a_n + r * h_n)                                   reset gate after the matmul
    c^ = n + z * (c_{t-1} - n)                                = z c + (1 - z) n, one multiply
    o = H(c^ - theta)  (H(0) = 0)
    y_t = o * c^                c_t = c^ - o * theta          graded event, soft reset

Parameters are named and laid out like ``torch.nn.GRU`` (``weight_ih_l{k}`` (3H, I),
``weight_hh_l{k}`` (3H, H), ``bias_ih_l{k}``, ``bias_hh_l{k}``) plus ``threshold_l{k}`` (H,).
``threshold_l{k}`` *is* theta: it is kept positive by projection (``constrain_()`` clamps it to
``min_threshold`` after each optimizer step, and the forward pass uses the clamped value), so
the stored tensor is exactly the threshold the hardware gets.

The default variant runs through a fused autograd Function with a hand-written backward (no
per-op autograd graph inside the time loop), which is what makes it as fast as ``nn.GRU`` on
CPU. ``variant="seed"`` (the seed paper: reset gate before the matmul, reset by subtracting y)
and ``fused=False`` run a plain autograd loop; the tests check both against each other.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class EGRUState(NamedTuple):
    """Recurrent state of a stacked EGRU: internal state and last events of every layer."""

    c: Tensor  # (L, B, H)
    y: Tensor  # (L, B, H)


class LayerTrace(NamedTuple):
    """Per-step internals of one layer, for activity and backward sparsity metrics."""

    x: Tensor  # (T, B, I) the layer's input as seen by W
    y: Tensor  # (T, B, H) events
    v: Tensor | None  # (T, B, H) c^ - theta (None for LSTM/GRU)


def surrogate_grad(v: Tensor, gamma: float, s: float) -> Tensor:
    """Pseudo-derivative of H at v: gamma * max(0, 1 - s*|v|)."""
    return gamma * torch.clamp(1.0 - s * v.abs(), min=0.0)


class _Heaviside(torch.autograd.Function):
    """H(v) = 1 if v > 0 else 0, with the triangular surrogate gradient."""

    @staticmethod
    def forward(ctx, v: Tensor, gamma: float, s: float) -> Tensor:
        ctx.save_for_backward(v)
        ctx.gamma, ctx.s = gamma, s
        return (v > 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (v,) = ctx.saved_tensors
        return grad * surrogate_grad(v, ctx.gamma, ctx.s), None, None


def heaviside_surrogate(v: Tensor, gamma: float = 3.6, s: float = 3.6) -> Tensor:
    """Heaviside step (H(0) = 0) whose backward is gamma * max(0, 1 - s*|v|)."""
    return _Heaviside.apply(v, gamma, s)


def egru_layer_reference(ax, R, b_hh, theta, c, y, gamma, s, variant="default"):
    """One layer over T steps with plain autograd ops. ax = W x + b_ih: (T, B, 3H).

    Returns y_all (T, B, H), c_T (B, H), v_all (T, B, H) with v = c^ - theta.
    """
    H = R.shape[1]
    ys, vs = [], []
    for t in range(ax.shape[0]):
        a_r, a_z, a_n = ax[t].split(H, dim=1)  # (B, H) each
        if variant == "default":
            h_r, h_z, h_n = F.linear(y, R, b_hh).split(H, dim=1)
            r = torch.sigmoid(a_r + h_r)
            z = torch.sigmoid(a_z + h_z)
            n = torch.tanh(a_n + r * h_n)
        else:  # seed paper: r gates y_{t-1} before R_n
            R_r, R_z, R_n = R.split(H, dim=0)
            b_r, b_z, b_n = b_hh.split(H)
            r = torch.sigmoid(a_r + F.linear(y, R_r, b_r))
            z = torch.sigmoid(a_z + F.linear(y, R_z, b_z))
            n = torch.tanh(a_n + F.linear(r * y, R_n, b_n))
        ch = n + z * (c - n)
        v = ch - theta
        o = heaviside_surrogate(v, gamma, s)
        y = o * ch
        c = ch - o * theta if variant == "default" else ch - y
        ys.append(y)
        vs.append(v)
    return torch.stack(ys), c, torch.stack(vs)


class _EGRULayerFn(torch.autograd.Function):
    """Fused default-variant layer: forward loop writes into preallocated buffers, backward
    is hand-written BPTT; the R gradient is one matmul over all steps at the end."""

    @staticmethod
    def forward(ctx, ax, R, b_hh, theta, c0, y0, gamma, s):
        T, B, H3 = ax.shape
        H = H3 // 3
        Rt = R.t()  # (H, 3H)
        y_all = ax.new_empty(T, B, H)
        v_all = ax.new_empty(T, B, H)
        rz_all = ax.new_empty(T, B, 2 * H)
        n_all = ax.new_empty(T, B, H)
        hn_all = ax.new_empty(T, B, H)
        c_all = ax.new_empty(T + 1, B, H)  # c_all[t] = c_{t-1}
        c_all[0] = c0
        y = y0
        for t in range(T):
            h = torch.addmm(b_hh, y, Rt)  # (B, 3H)
            a = ax[t]
            rz = torch.sigmoid(a[:, : 2 * H] + h[:, : 2 * H], out=rz_all[t])  # (B, 2H)
            hn = hn_all[t].copy_(h[:, 2 * H :])
            n = torch.tanh(torch.addcmul(a[:, 2 * H :], rz[:, :H], hn), out=n_all[t])
            c = c_all[t]
            ch = torch.addcmul(n, rz[:, H:], c - n)  # c^
            v = torch.sub(ch, theta, out=v_all[t])
            o = v > 0
            y = torch.mul(ch, o, out=y_all[t])
            torch.where(o, v, ch, out=c_all[t + 1])  # soft reset: c^ - o * theta
        ctx.save_for_backward(R, theta, y0, y_all, v_all, rz_all, n_all, hn_all, c_all)
        ctx.gamma, ctx.s = gamma, s
        ctx.mark_non_differentiable(v_all)
        return y_all, c_all[T].clone(), v_all

    @staticmethod
    def backward(ctx, gy_all, gc_T, _gv):
        R, theta, y0, y_all, v_all, rz_all, n_all, hn_all, c_all = ctx.saved_tensors
        gamma, s = ctx.gamma, ctx.s
        T, B, H = y_all.shape
        if gy_all is None:
            gy_all = torch.zeros_like(y_all)
        dc = torch.zeros_like(y0) if gc_T is None else gc_T
        dy = torch.zeros_like(y0)  # gradient reaching y_t through step t+1's R y_t
        dh_all = y_all.new_empty(T, B, 3 * H)  # d(pre-activations of h), = d(ax) on r, z
        dax = y_all.new_empty(T, B, 3 * H)
        dtheta = torch.zeros_like(y0)
        for t in range(T - 1, -1, -1):
            rz = rz_all[t]
            r, z = rz[:, :H], rz[:, H:]
            n, hn, v = n_all[t], hn_all[t], v_all[t]
            ch = n + z * (c_all[t] - n)  # recomputed exactly as in forward
            o = (v > 0).to(v.dtype)
            gy = dy + gy_all[t]
            # y = o * c^, c = c^ - o * theta, o = H(c^ - theta)
            dv = (gy * ch - dc * theta) * surrogate_grad(v, gamma, s)
            dtheta -= dc * o + dv
            dch = gy * o + dc + dv
            dc = dch * z
            dpn = dch * (1 - z) * (1 - n * n)  # (B, H)
            drz = dh_all[t, :, : 2 * H]
            torch.mul(dpn * hn * r, 1 - r, out=drz[:, :H])
            torch.mul(dch * (c_all[t] - n) * z, 1 - z, out=drz[:, H:])
            torch.mul(dpn, r, out=dh_all[t, :, 2 * H :])
            dax[t, :, : 2 * H] = drz
            dax[t, :, 2 * H :] = dpn
            dy = dh_all[t] @ R  # (B, H)
        y_prev = torch.cat([y0.unsqueeze(0), y_all[:-1]])  # (T, B, H)
        dR = dh_all.reshape(T * B, 3 * H).t() @ y_prev.reshape(T * B, H)  # (3H, H)
        db = dh_all.sum((0, 1))
        return dax, dR, db, dtheta.sum(0), dc, dy, None, None


def egru_layer_fused(ax, R, b_hh, theta, c, y, gamma, s):
    """The default variant of `egru_layer_reference` through the fused Function (same
    arguments and results: ``(y_all, c_T, v_all)``), for callers outside this module."""
    return _EGRULayerFn.apply(ax, R, b_hh, theta, c, y, gamma, s)


class EGRU(nn.Module):
    """Stacked EGRU with the interface of ``torch.nn.GRU``.

    Parameters
    ----------
    input_size, hidden_size, num_layers, bias, dropout, batch_first
        As ``torch.nn.GRU`` (dropout: between layers, training only).
    variant : "default" | "seed"
        "default" is DESIGN.md's form (the hardware's); "seed" is the seed paper's.
    gamma, s : surrogate gradient gamma * max(0, 1 - s*|c^ - theta|) (EvNN LM recipe: 3.6).
    threshold_init, min_threshold : initial theta and its lower bound (kept > 0).
    weight_drop : DropConnect probability on the recurrent weights R (training only).
    fused : use the fused forward/backward for the default variant.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, dropout: float = 0.0, batch_first: bool = False,
                 variant: str = "default", gamma: float = 3.6, s: float = 3.6,
                 threshold_init: float = 0.3, min_threshold: float = 0.01,
                 weight_drop: float = 0.0, fused: bool = True):
        super().__init__()
        if variant not in ("default", "seed"):
            raise ValueError(f"variant must be 'default' or 'seed', not {variant!r}")
        if not (threshold_init > 0 and min_threshold > 0):
            raise ValueError(f"thresholds must be > 0: {threshold_init=}, {min_threshold=}")
        if input_size < 1 or hidden_size < 1 or num_layers < 1:
            raise ValueError(f"bad sizes: {input_size=}, {hidden_size=}, {num_layers=}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.dropout, self.batch_first = bias, dropout, batch_first
        self.variant, self.gamma, self.s = variant, gamma, s
        self.threshold_init, self.min_threshold = threshold_init, min_threshold
        self.weight_drop, self.fused = weight_drop, fused
        H = hidden_size
        for k in range(num_layers):
            isz = input_size if k == 0 else H
            self.register_parameter(f"weight_ih_l{k}", nn.Parameter(torch.empty(3 * H, isz)))
            self.register_parameter(f"weight_hh_l{k}", nn.Parameter(torch.empty(3 * H, H)))
            if bias:
                self.register_parameter(f"bias_ih_l{k}", nn.Parameter(torch.empty(3 * H)))
                self.register_parameter(f"bias_hh_l{k}", nn.Parameter(torch.empty(3 * H)))
            self.register_parameter(f"threshold_l{k}", nn.Parameter(torch.empty(H)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)  # nn.GRU's initialisation
        for name, p in self.named_parameters():
            if name.startswith("threshold"):
                nn.init.constant_(p, self.threshold_init)
            else:
                nn.init.uniform_(p, -bound, bound)

    @torch.no_grad()
    def constrain_(self) -> None:
        """Project thresholds onto [min_threshold, inf); call after every optimizer step."""
        for k in range(self.num_layers):
            getattr(self, f"threshold_l{k}").clamp_(min=self.min_threshold)

    def threshold(self, k: int) -> Tensor:
        """The positive theta of layer k as the forward pass uses it."""
        return getattr(self, f"threshold_l{k}").clamp(min=self.min_threshold)

    def init_state(self, batch: int, device=None, dtype=None) -> EGRUState:
        p = self.weight_hh_l0
        z = torch.zeros(self.num_layers, batch, self.hidden_size,
                        device=device or p.device, dtype=dtype or p.dtype)
        return EGRUState(z, z.clone())

    def forward(self, x: Tensor, state: EGRUState | None = None,
                return_internals: bool = False):
        """x: (T, B, I) (or (B, T, I) if batch_first). Returns (y, state[, traces])."""
        if self.batch_first:
            x = x.transpose(0, 1)
        B = x.shape[1]
        state = self.init_state(B, x.device, x.dtype) if state is None else EGRUState(*state)
        cs, ys, traces = [], [], []
        inp = x
        for k in range(self.num_layers):
            if k > 0 and self.dropout > 0 and self.training:
                inp = F.dropout(inp, self.dropout, True)
            y_all, c_T, v_all = self.layer_forward(k, inp, state.c[k], state.y[k])
            traces.append(LayerTrace(inp, y_all, v_all))
            cs.append(c_T)
            ys.append(y_all[-1])
            inp = y_all
        out = inp.transpose(0, 1) if self.batch_first else inp
        new_state = EGRUState(torch.stack(cs), torch.stack(ys))
        return (out, new_state, traces) if return_internals else (out, new_state)

    def layer_forward(self, k: int, x: Tensor, c0: Tensor, y0: Tensor):
        """Layer k over a sequence x (T, B, I): returns y (T, B, H), c_T (B, H), v (T, B, H)."""
        W = getattr(self, f"weight_ih_l{k}")
        R = getattr(self, f"weight_hh_l{k}")
        b_ih = getattr(self, f"bias_ih_l{k}") if self.bias else None
        b_hh = getattr(self, f"bias_hh_l{k}") if self.bias else R.new_zeros(R.shape[0])
        if self.weight_drop > 0 and self.training:
            R = F.dropout(R, self.weight_drop, True)  # DropConnect on R
        theta = self.threshold(k)
        ax = F.linear(x, W, b_ih)  # (T, B, 3H): all input matmuls in one call
        if self.variant == "default" and self.fused:
            return _EGRULayerFn.apply(ax, R, b_hh, theta, c0, y0, self.gamma, self.s)
        return egru_layer_reference(ax, R, b_hh, theta, c0, y0, self.gamma, self.s,
                                    self.variant)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"variant={self.variant!r}, gamma={self.gamma}, s={self.s}")
