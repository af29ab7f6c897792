"""EGRU training-step time vs torch.nn.GRU and torch.nn.LSTM (forward + backward, same T, B,
I, H), repetitions interleaved in one run so that machine load hits all models alike.

    python -m bench.bench_egru [--T 35 --B 32 --I 256 --H 256 --reps 15 --threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: python bench/bench_egru.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sw.models import EGRU


def step_time(model, x) -> float:
    """One training step without the optimizer: forward, loss, backward."""
    model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    y, _ = model(x)
    y.square().mean().backward()
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.bench_egru", description=__doc__)
    p.add_argument("--T", type=int, default=35)
    p.add_argument("--B", type=int, default=32)
    p.add_argument("--I", type=int, default=256)
    p.add_argument("--H", type=int, default=256)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--unfused", action="store_true", help="also time the plain autograd EGRU")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    models = {
        "egru": EGRU(a.I, a.H, a.layers),
        "nn.GRU": torch.nn.GRU(a.I, a.H, a.layers),
        "nn.LSTM": torch.nn.LSTM(a.I, a.H, a.layers),
    }
    if a.unfused:
        models["egru (autograd loop)"] = EGRU(a.I, a.H, a.layers, fused=False)
    x = torch.randn(a.T, a.B, a.I)
    times = {k: [] for k in models}
    for _ in range(2):  # warm-up
        for m in models.values():
            step_time(m, x)
    for _ in range(a.reps):
        for k, m in models.items():
            times[k].append(step_time(m, x))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"training step (fwd+bwd), T={a.T} B={a.B} I={a.I} H={a.H} layers={a.layers}, "
          f"{a.threads} thread(s), median of {a.reps} interleaved reps")
    for k, v in med.items():
        print(f"  {k:<22} {v * 1e3:8.2f} ms   x{v / med['nn.GRU']:.2f} of nn.GRU   "
              f"x{v / med['nn.LSTM']:.2f} of nn.LSTM")
    return med


if __name__ == "__main__":
    main()
