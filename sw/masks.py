"""Pruning masks: global unstructured magnitude pruning and its bank-balanced variant.

A mask is a bool tensor shaped like its weight (True = kept). Masks are monotone: a weight
pruned once stays pruned (its score is forced below every kept weight).

Bank-balanced pruning (DESIGN.md section 4): unit ``i`` of a layer lives in bank ``i mod P``
with its three gate rows (rows ``g*H + i``). For every matrix and every input column ``j``,
each bank keeps the same number ``k_j`` of entries, chosen by magnitude within the (bank,
column) group, so all P MAC lanes finish an event together. ``k_j`` comes from one *global*
magnitude threshold: the mean over banks of the count of that column's weights above it
(rounded), capped by the smallest bank. The threshold is found by bisection so that the
overall sparsity over all prunable matrices is as close as possible to the target — this keeps
the seed paper's global allocation (layers and columns with larger weights keep more) while
every column is balanced.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "apply_masks",
    "bank_balanced_masks",
    "bank_nnz",
    "bank_of_rows",
    "global_magnitude_masks",
    "is_bank_balanced",
    "mask_sparsity",
    "sparsity_report",
    "sparsity_schedule",
]


def _scores(weights: dict[str, Tensor], masks: dict[str, Tensor] | None) -> dict[str, Tensor]:
    """|w| with previously pruned entries set to -1 (pruned first, never revived)."""
    out = {}
    for name, w in weights.items():
        s = w.detach().abs().to(torch.float64)
        if masks is not None and name in masks:
            s = torch.where(masks[name], s, torch.full_like(s, -1.0))
        out[name] = s
    return out


def global_magnitude_masks(weights: dict[str, Tensor], sparsity: float,
                           masks: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """Keep the ``round((1 - sparsity) * N)`` largest-magnitude weights over all matrices."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    scores = _scores(weights, masks)
    flat = torch.cat([s.flatten() for s in scores.values()])
    keep = round((1.0 - sparsity) * flat.numel())
    order = torch.argsort(flat, descending=True, stable=True)
    kept = torch.zeros(flat.numel(), dtype=torch.bool)
    kept[order[:keep]] = True
    out, i = {}, 0
    for name, s in scores.items():
        out[name] = kept[i:i + s.numel()].view_as(s).clone()
        i += s.numel()
    return out


def bank_of_rows(rows: int, banks: int) -> Tensor:
    """Bank of each row of a (3H, C) layer matrix: unit i = row % H -> bank i % P."""
    if rows % 3:
        raise ValueError(f"a layer matrix has 3H rows, got {rows}")
    return (torch.arange(rows) % (rows // 3)) % banks


def _grouped(score: Tensor, banks: int) -> Tensor:
    """(3H, C) -> (P, rows_per_bank_max, C), padded with -inf where a bank has fewer rows."""
    rows, cols = score.shape
    bank = bank_of_rows(rows, banks)
    per = [torch.nonzero(bank == b).flatten() for b in range(banks)]
    n = max(len(p) for p in per)
    g = torch.full((banks, n, cols), float("-inf"), dtype=score.dtype)
    for b, idx in enumerate(per):
        g[b, :len(idx)] = score[idx]
    return g, per


def _balanced_counts(scores: dict[str, Tensor], thr: float, banks: int) -> dict[str, Tensor]:
    counts = {}
    for name, s in scores.items():
        g, per = _grouped(s, banks)
        above = (g > thr).sum(dim=1).to(torch.float64)          # (P, C)
        cap = min(len(p) for p in per)
        counts[name] = torch.clamp(torch.floor(above.mean(0) + 0.5), max=cap).long()   # (C,)
    return counts


def bank_balanced_masks(weights: dict[str, Tensor], sparsity: float, banks: int,
                        masks: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """Masks with the same non-zero count in every bank of every column (see module doc)."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    if banks < 1:
        raise ValueError(f"banks must be >= 1, got {banks}")
    for name, w in weights.items():
        if w.dim() != 2 or w.shape[0] % 3 or w.shape[0] // 3 < banks:
            raise ValueError(f"{name}: shape {tuple(w.shape)} is not a (3H, C) layer matrix "
                             f"with H >= banks = {banks}")
    scores = _scores(weights, masks)
    total = sum(s.numel() for s in scores.values())
    target = (1.0 - sparsity) * total

    def kept(thr):
        c = _balanced_counts(scores, thr, banks)
        return sum(int(c[n].sum()) * banks for n in c), c

    lo, hi = -1.0, float(max(s.max() for s in scores.values())) + 1.0   # kept(lo) is max
    best = None
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        n, c = kept(mid)
        if best is None or abs(n - target) < abs(best[0] - target):
            best = (n, c)
        if n > target:
            lo = mid
        else:
            hi = mid
    counts = best[1]
    out = {}
    for name, s in scores.items():
        g, per = _grouped(s, banks)                     # (P, n, C)
        order = torch.argsort(g, dim=1, descending=True, stable=True)
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(g.shape[1]).view(1, -1, 1).expand_as(order))
        keep_g = rank < counts[name].view(1, 1, -1)     # top k_j of each (bank, column)
        m = torch.zeros(s.shape, dtype=torch.bool)
        for b, idx in enumerate(per):
            m[idx] = keep_g[b, :len(idx)]
        out[name] = m
    return out


@torch.no_grad()
def apply_masks(module, masks: dict[str, Tensor]) -> None:
    """Zero the pruned weights of ``module`` in place (parameter name -> mask)."""
    params = dict(module.named_parameters())
    for name, m in masks.items():
        p = params[name]
        p.mul_(m.to(device=p.device, dtype=p.dtype))


def mask_sparsity(masks: dict[str, Tensor]) -> float:
    n = sum(m.numel() for m in masks.values())
    return 1.0 - sum(int(m.sum()) for m in masks.values()) / max(n, 1)


def bank_nnz(w: Tensor, banks: int) -> Tensor:
    """(P, C) non-zero counts of a (3H, C) layer matrix per bank and column."""
    bank = bank_of_rows(w.shape[0], banks)
    nz = (w != 0)
    return torch.stack([nz[bank == b].sum(0) for b in range(banks)])


def is_bank_balanced(w: Tensor, banks: int) -> bool:
    n = bank_nnz(w, banks)
    return bool((n == n[:1]).all())


def sparsity_schedule(target: float, steps: int, kind: str = "cubic",
                      start: float = 0.0) -> list[float]:
    """Sparsities of ``steps`` pruning rounds ending at ``target``.

    ``cubic``: Zhu & Gupta's s_t = target + (start - target) (1 - t/n)^3 (big steps first);
    ``geometric``: the kept fraction shrinks by a constant factor each round;
    ``linear``: equal steps.
    """
    if not 0.0 <= start <= target < 1.0 or steps < 1:
        raise ValueError(f"bad schedule: {start=} {target=} {steps=}")
    out = []
    for t in range(1, steps + 1):
        f = t / steps
        if kind == "cubic":
            s = target + (start - target) * (1.0 - f) ** 3
        elif kind == "geometric":
            s = 1.0 - (1.0 - start) * ((1.0 - target) / (1.0 - start)) ** f
        elif kind == "linear":
            s = start + (target - start) * f
        else:
            raise ValueError(f"schedule kind must be cubic, geometric or linear, not {kind!r}")
        out.append(float(s))
    out[-1] = float(target)
    return out


def sparsity_report(weights: dict[str, Tensor], banks: int | None = None) -> str:
    """A table of sparsity per matrix and, with ``banks``, non-zeros per bank."""
    lines = [f"{'matrix':<14} {'shape':>11} {'nnz':>8} {'sparsity':>9}"
             + ("  per-bank nnz (min..max over banks)  max/col  balanced" if banks else "")]
    tot, nz_tot = 0, 0
    for name, w in weights.items():
        nz = int(torch.count_nonzero(w))
        tot += w.numel()
        nz_tot += nz
        line = (f"{name:<14} {tuple(w.shape)!s:>11} {nz:>8} "
                f"{1 - nz / w.numel():>9.4f}")
        if banks:
            bn = bank_nnz(w, banks)
            per_bank = bn.sum(1)
            line += (f"  {int(per_bank.min()):>6}..{int(per_bank.max()):<6}"
                     f"{'':>22}{int(bn.max(0).values.max()):>5}  "
                     f"{'yes' if is_bank_balanced(w, banks) else 'NO'}")
        lines.append(line)
    lines.append(f"{'total':<14} {'':>11} {nz_tot:>8} {1 - nz_tot / max(tot, 1):>9.4f}")
    return "\n".join(lines)


@torch.no_grad()
def cycle_bound(net, tokens: Tensor, banks: int, fmt=None) -> dict:
    """DESIGN.md section 4's cycle bound of the layers on a token sequence, per step.

    Per step and layer: sum over the step's events (j) of max over banks of nnz(bank, j) (input
    matrix for the layer's input events, recurrent matrix for its own events of the previous
    step) + ceil(H / P) for the pointwise pass. ``ideal`` replaces the max by ceil(nnz(j) / P)
    (the same non-zeros perfectly spread); ``bound / ideal`` is the cost of imbalance.
    """
    if net.kind != "lm":
        raise ValueError("cycle_bound needs a language model (token input)")
    _, _, events = net(tokens.view(-1, 1), fmt=fmt)            # per layer (T, 1, H)
    res = {"bound": 0.0, "ideal": 0.0, "events": 0}
    T = tokens.numel()
    for k, h in enumerate(net.hidden_sizes):
        costs = []
        for name in (f"weight_ih_l{k}", f"weight_hh_l{k}"):
            n = bank_nnz(getattr(net, name).detach(), banks)    # (P, C)
            costs.append((n.max(0).values.double(), torch.ceil(n.sum(0) / banks).double()))
        (w_max, w_ideal), (r_max, r_ideal) = costs
        y = events[k][:, 0] != 0                                # (T, H)
        if k == 0:
            x_idx = [tokens[t:t + 1] for t in range(T)]
        else:
            x_idx = [torch.nonzero(events[k - 1][t, 0]).flatten() for t in range(T)]
        for t in range(T):
            rec = torch.nonzero(y[t - 1]).flatten() if t else torch.zeros(0, dtype=torch.long)
            pw = -(-h // banks)
            res["bound"] += float(w_max[x_idx[t]].sum() + r_max[rec].sum()) + pw
            res["ideal"] += float(w_ideal[x_idx[t]].sum() + r_ideal[rec].sum()) + pw
            res["events"] += len(x_idx[t]) + len(rec)
    res = {k: v / T for k, v in res.items()}
    res["imbalance"] = res["bound"] / max(res["ideal"], 1e-9)
    return res
