"""Random but valid bundles for testing the accelerator over its parameter space.

Torch-free: weights are drawn directly as integers, so every corner of the fixed-point
format (saturation, all-silent and all-firing steps, 0..99% sparsity) is reachable without
training anything.
"""

from __future__ import annotations

import numpy as np

from hw.bundle import write_bundle
from hw.fixedpoint import Format

__all__ = ["random_bundle"]

THETA_MODES = ("random", "silent", "firing")


def _sparse(rng, shape, density, wmax, scale, balanced_banks=None):
    w = rng.integers(-wmax, wmax + 1, size=shape)
    w = np.round(w * scale).astype(np.int64)
    if balanced_banks is None:
        keep = rng.random(shape) < density
    else:
        # Same count per (bank, column): all MAC lanes finish an event together.
        rows, cols = shape
        hidden = rows // 3
        keep = np.zeros(shape, dtype=bool)
        unit = np.arange(rows) % hidden
        for b in range(balanced_banks):
            rows_b = np.nonzero(unit % balanced_banks == b)[0]
            k = round(density * len(rows_b))
            for j in range(cols):
                keep[rng.choice(rows_b, size=k, replace=False), j] = True
    w = np.where(keep, w, 0)
    if balanced_banks is None and density > 0:
        w[(w == 0) & keep] = 1                   # a kept weight is a stored entry
    return w


def random_bundle(out_dir, *, layers: int = 1, hidden=16, vocab: int = 20, banks: int = 4,
                  sparsity: float = 0.5, seed: int = 0, fmt: Format | None = None,
                  kind: str = "lm", input_size: int | None = None,
                  input_mode: str = "transient", delta_threshold: int = 0,
                  theta: str = "random", saturate: bool = False, balanced: bool = False,
                  weight_scale: float = 0.5, overwrite: bool = False):
    """Write a random bundle to ``out_dir`` and return its path.

    Parameters
    ----------
    hidden : an int (every layer) or a list of per-layer sizes.
    sparsity : fraction of zero weights in every matrix, 0 .. 1.
    theta : 'random' thresholds, 'silent' (no unit ever fires) or 'firing' (every unit
        fires at every step: thresholds of 1 and biases that drive c^ to +1).
    saturate : full-scale weights and biases, so pre-activations and states saturate.
    balanced : bank-balanced sparsity (hidden sizes must be multiples of ``banks``).
    """
    if theta not in THETA_MODES:
        raise ValueError(f"theta must be one of {THETA_MODES}, got {theta!r}")
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    fmt = fmt or Format()
    rng = np.random.default_rng(seed)
    sizes = [hidden] * layers if isinstance(hidden, int) else list(hidden)
    if balanced and any(h % banks for h in sizes):
        raise ValueError(f"balanced bundles need hidden sizes divisible by banks={banks}")
    n_in = vocab if kind == "lm" else (input_size or vocab)
    wmax = fmt.weight_max
    scale = 1.0 if saturate else weight_scale
    density = 1.0 - sparsity
    acc_lo, acc_hi = fmt.range_of("A")
    one_acc = 2 ** fmt.acc_frac                      # 1.0 in accumulator format
    arrays, model_layers = {}, []
    prev = n_in
    for k, h in enumerate(sizes):
        bb = banks if balanced else None
        arrays[f"l{k}.w"] = _sparse(rng, (3 * h, prev), density, wmax, scale, bb)
        arrays[f"l{k}.r"] = _sparse(rng, (3 * h, h), density, wmax, scale, bb)
        bias_mag = (8 if saturate else 1) * one_acc
        bx = rng.integers(-bias_mag, bias_mag + 1, size=3 * h)
        bh = rng.integers(-bias_mag, bias_mag + 1, size=3 * h)
        if theta == "random":
            th = rng.integers(1, fmt.one, size=h)
        elif theta == "silent":
            th = np.full(h, fmt.state_max)
        else:
            th = np.ones(h, dtype=np.int64)
            bx[h:2 * h] = -16 * one_acc          # z -> 0: c^ follows the candidate
            bx[2 * h:] = 16 * one_acc            # n -> tanh(+big) = 1.0
            arrays[f"l{k}.w"] //= 64             # keep inputs from undoing the biases
            arrays[f"l{k}.r"] //= 64
        arrays[f"l{k}.bx"] = np.clip(bx, acc_lo, acc_hi)
        arrays[f"l{k}.bh"] = np.clip(bh, acc_lo, acc_hi)
        arrays[f"l{k}.theta"] = th
        model_layers.append({"input_size": prev, "hidden_size": h})
        prev = h
    readout = kind == "lm"
    if readout:
        arrays["dec.w"] = _sparse(rng, (vocab, prev), max(density, 0.5), wmax, scale)
        arrays["dec.b"] = rng.integers(-one_acc, one_acc + 1, size=vocab)
    model = {"kind": kind, "input_size": n_in, "input_mode": input_mode,
             "delta_threshold": delta_threshold, "layers": model_layers, "readout": readout}
    if kind == "lm":
        model.update(vocab_size=vocab, tokens="char")
    vocab_strings = [chr(0x41 + i % 26) + str(i // 26) for i in range(vocab)] if readout else None
    return write_bundle(out_dir, fmt=fmt, model=model, banks=banks, arrays=arrays,
                        vocab=vocab_strings, overwrite=overwrite,
                        provenance={"generator": "sim.random_bundle", "seed": seed,
                                    "sparsity": sparsity, "theta": theta,
                                    "saturate": saturate, "balanced": balanced})
