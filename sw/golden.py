"""The integer golden model: the network exactly as the accelerator computes it.

Pure numpy int64, no torch, so that the cocotb testbenches can use it as their reference.
Every narrowing step follows docs/fixed_point.md; the accelerator is checked against this
file bit for bit. Accumulation is a sum over events, so its result cannot depend on the
order events arrive in (tests/test_golden.py shuffles them to prove it).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hw.bundle import Bundle
from hw.fixedpoint import make_tables, rshift_round, sat, table_index, wrap

__all__ = ["Golden", "LayerTrace", "StepTrace"]

R, Z, N = 0, 1, 2      # gate order of every 3H matrix: torch.nn.GRU's r, z, n


@dataclasses.dataclass
class LayerTrace:
    """One layer's step: the events it consumed and emitted, and its state afterwards."""

    in_events: list[tuple[int, int]]     # (column, value) added into ax this step
    rec_events: list[tuple[int, int]]    # the layer's own events of the previous step
    ax: np.ndarray                       # (3, H) input-part accumulators, format A
    ah: np.ndarray                       # (3, H) recurrent-part accumulators, format A
    c: np.ndarray                        # (H,) state after the soft reset, format S
    y: np.ndarray                        # (H,) graded events (0 where silent), format S

    @property
    def events(self) -> list[tuple[int, int]]:
        idx = np.nonzero(self.y)[0]
        return [(int(i), int(self.y[i])) for i in idx]


@dataclasses.dataclass
class StepTrace:
    layers: list[LayerTrace]
    logits: np.ndarray | None            # (V,) format A, None without a readout
    top1: int | None


class Golden:
    """Integer reference model of a bundle.

    Parameters
    ----------
    bundle : a `hw.bundle.Bundle` (from `load_bundle`, or built in memory).
    """

    def __init__(self, bundle: Bundle):
        self.b = bundle
        self.fmt = bundle.format
        self.sig, self.tanh = make_tables(self.fmt)
        self.L = bundle.num_layers
        a = bundle.arrays
        self.w = [a[f"l{k}.w"] for k in range(self.L)]
        self.r = [a[f"l{k}.r"] for k in range(self.L)]
        self.bx = [a[f"l{k}.bx"].reshape(3, -1) for k in range(self.L)]
        self.bh = [a[f"l{k}.bh"].reshape(3, -1) for k in range(self.L)]
        self.theta = [a[f"l{k}.theta"] for k in range(self.L)]
        self.readout = bool(bundle.model.get("readout"))
        self.persistent = bundle.model["input_mode"] == "persistent"
        self.delta_threshold = int(bundle.model.get("delta_threshold", 0))
        self.reset()

    def reset(self) -> None:
        """State after RESET: c = 0, no pending events, persistent inputs at their biases."""
        self.c = [np.zeros(len(t), dtype=np.int64) for t in self.theta]
        self.y = [np.zeros(len(t), dtype=np.int64) for t in self.theta]
        self.ax0 = self.bx[0].copy()                         # persistent layer-0 accumulators
        self.xhat = np.zeros(self.b.model["input_size"], dtype=np.int64)

    # -- inputs -------------------------------------------------------------------------
    def step_token(self, token: int) -> StepTrace:
        """One step of a language model with a token: a single event of value 1.0."""
        if self.b.model["kind"] != "lm":
            raise ValueError("step_token needs a language-model bundle")
        if not 0 <= token < self.b.model["input_size"]:
            raise ValueError(f"token {token} out of range 0..{self.b.model['input_size'] - 1}")
        return self.step_events([(int(token), self.fmt.one)])

    def encode_deltas(self, x) -> list[tuple[int, int]]:
        """Delta-encode a dense input vector (format S) against the last sent values."""
        lim = 2 ** (self.fmt.state_bits - 2) - 1       # so that any delta fits S
        x = np.clip(np.asarray(x, dtype=np.int64), -lim, lim)
        d = x - self.xhat
        send = np.abs(d) > self.delta_threshold
        self.xhat = np.where(send, x, self.xhat)
        return [(int(j), int(d[j])) for j in np.nonzero(send)[0]]

    def step_dense(self, x) -> StepTrace:
        """One step of a persistent-input model with a dense input vector (format S)."""
        if not self.persistent:
            raise ValueError("step_dense needs a bundle with input_mode 'persistent'")
        return self.step_events(self.encode_deltas(x))

    # -- the step -----------------------------------------------------------------------
    def _accumulate(self, acc: np.ndarray, m: np.ndarray, events) -> np.ndarray:
        """acc (3, H) += sum over events of v * m[:, j], wrapping like the hardware."""
        if events:
            cols = np.array([j for j, _ in events])
            vals = np.array([v for _, v in events], dtype=np.int64)
            acc = acc + (m[:, cols] @ vals).reshape(3, -1)
        return wrap(acc, self.fmt.acc_bits)

    def _narrow(self, x):
        f = self.fmt
        return sat(rshift_round(x, f.acc_frac - f.pre_frac), f.pre_bits)

    def _pointwise(self, k: int, ax: np.ndarray, ah: np.ndarray):
        f = self.fmt
        pr = self._narrow(ax[R] + ah[R])
        pz = self._narrow(ax[Z] + ah[Z])
        r = self.sig[table_index(pr, f)]
        z = self.sig[table_index(pz, f)]
        hn = self._narrow(ah[N])
        pn = sat(self._narrow(ax[N]) + rshift_round(r * hn, f.gate_frac), f.pre_bits)
        g = self.tanh[table_index(pn, f)]
        ch = sat(g + rshift_round(z * (self.c[k] - g), f.gate_frac), f.state_bits)
        fire = ch > self.theta[k]
        y = np.where(fire, ch, 0)
        c = np.where(fire, ch - self.theta[k], ch)
        return c, y

    def step_events(self, events) -> StepTrace:
        """One step given layer 0's input events [(column, value)], in any order."""
        n_in = self.b.model["input_size"]
        lo, hi = self.fmt.range_of("S")
        for j, v in events:
            if not (0 <= j < n_in and lo <= v <= hi):
                raise ValueError(f"input event ({j}, {v}) out of range")
        traces = []
        in_events = list(events)
        for k in range(self.L):
            rec_events = [(int(i), int(self.y[k][i])) for i in np.nonzero(self.y[k])[0]]
            if k == 0 and self.persistent:
                self.ax0 = self._accumulate(self.ax0, self.w[0], in_events)
                ax = self.ax0
            else:
                ax = self._accumulate(self.bx[k], self.w[k], in_events)
            ah = self._accumulate(self.bh[k], self.r[k], rec_events)
            c, y = self._pointwise(k, ax, ah)
            self.c[k], self.y[k] = c, y
            trace = LayerTrace(in_events, rec_events, ax.copy(), ah.copy(), c.copy(), y.copy())
            traces.append(trace)
            in_events = trace.events
        logits = top1 = None
        if self.readout:
            d = self.b.arrays["dec.w"]
            logits = self.b.arrays["dec.b"].copy()
            if in_events:
                cols = np.array([j for j, _ in in_events])
                vals = np.array([v for _, v in in_events], dtype=np.int64)
                logits = logits + d[:, cols] @ vals
            logits = wrap(logits, self.fmt.acc_bits)
            top1 = int(np.argmax(logits))          # argmax returns the first maximum
        return StepTrace(traces, logits, top1)

    def run_tokens(self, tokens) -> list[StepTrace]:
        return [self.step_token(int(t)) for t in tokens]
