"""Data-parallel helpers: ``torchrun --nproc_per_node=N -m sw.train ...`` (gloo on CPU,
nccl on GPU). Without torchrun everything degrades to a single process."""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: str | None = None) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if world == 1:
        return Dist(0, 1, torch.device(device or ("cuda" if use_cuda else "cpu")))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), dev)


def gather_stack(t: torch.Tensor, d: Dist) -> torch.Tensor:
    """(...) on every rank -> (world, ...) on every rank (same shape on all ranks)."""
    if not d.enabled:
        return t.unsqueeze(0)
    wide = t.to(d.device, torch.int64 if t.dtype == torch.uint8 else t.dtype)  # gloo: no uint8
    parts = [torch.empty_like(wide) for _ in range(d.world)]
    dist.all_gather(parts, wide.contiguous())
    return torch.stack(parts).to("cpu", t.dtype)


def any_rank(flag: bool, d: Dist) -> bool:
    """True if flag is set on any rank (so that all ranks stop at the same step)."""
    if not d.enabled:
        return flag
    t = torch.tensor([int(flag)], device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def max_all(values: list[float], d: Dist) -> list[float]:
    """Element-wise maximum over ranks (stop flags, elapsed time: all ranks agree)."""
    if not d.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def cleanup(d: Dist) -> None:
    """Tear the process group down on all ranks together. Without the barrier a rank that
    finishes first (the others still writing checkpoints) destroys its gloo pairs under a
    peer's feet, and gloo's worker threads abort the process ("terminate called without an
    active exception"). Callers drop their DDP wrappers first: a live Reducer keeps the
    group alive until interpreter shutdown, where the same abort happens."""
    if d.enabled and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
