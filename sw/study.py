"""Weight sparsity x activity sparsity study (issue 6; seed paper: Mukherji et al. 2024,
"Weight Sparsity Complements Activity Sparsity in Neuromorphic Language Models").

One command runs the whole experiment from a JSON config:

    python -m sw.study --config configs/study_cpu.json            # CPU scale, offline
    torchrun --standalone --nproc_per_node=8 -m sw.study --config configs/study_full.json

For every corpus, RNN type (LSTM, EGRU) and seed it trains a dense model, then prunes it
iteratively (global unstructured magnitude pruning over all recurrent-layer weights, not the
embedding/decoder) to each target sparsity in turn, fine-tuning after every pruning step; every
stage is evaluated (perplexity, activity sparsity, effective MACs via ``sw.evaluate``). A weight
decay sweep (EGRU) trains further dense models. Then it writes the paper's tables 3/4 and
figures 2-4 (``sw.study_plots``).

Resumability: every stage ("run") writes ``OUT/results/<run id>.json`` atomically as soon as it
is done and its model to ``OUT/ckpt/<run id>.safetensors``; a rerun skips finished runs and
resumes an interrupted dense training from ``sw.train``'s resumable checkpoint. Each result
stores a hash of everything that produced it; a rerun with a changed config refuses to mix
results (use another ``--out``).

Config keys (see configs/study_cpu.json): ``corpora`` (name, data, level, vocab_cap), ``rnns``,
``seeds``, ``model`` / ``model_by_rnn`` (ModelConfig fields), ``train`` / ``train_by_rnn``
(TrainConfig fields), ``prune`` (``sparsities``, ``finetune``: TrainConfig overrides for every
fine-tuning stage, ``continue_data``: stage k continues in the training stream where stage k-1
stopped), ``eval`` (``splits``, ``batch_size``, ``bptt``, ``max_windows``: int or per split),
``wd_sweep`` (``rnn``, ``values``, ``seeds``, ``sparsities``), ``dense_control`` (also fine-tune
each dense model like its pruning chain without pruning), ``out``, ``threads``, ``device``.

Under torchrun every rank walks the same plan; training is data-parallel through ``sw.train``;
pruning masks are computed identically on every rank (same weights); rank 0 evaluates and
writes results.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sw.atomic import atomic_write_text

from .config import ModelConfig, TrainConfig, from_dict, to_dict
from .data import REPO_ROOT

SCHEMA = "egru-study-result"
SCHEMA_VERSION = 1


# --------------------------------------------------------------------------------------------
# config and plan


def _resolve_path(p: str | None) -> str | None:
    """Corpus spec: None / "ptb" / "wikitext-2" stay; a relative folder is tried against the
    working directory, then the repository root (so configs work from anywhere)."""
    if p is None or p in ("ptb", "wikitext-2") or os.path.isabs(p):
        return p
    if Path(p).is_dir():
        return str(Path(p).resolve())
    cand = REPO_ROOT / p
    return str(cand.resolve()) if cand.is_dir() else p


def load_config(path) -> dict:
    cfg = json.loads(Path(path).read_text())
    for key in ("corpora", "rnns", "seeds", "model", "train", "prune"):
        if key not in cfg:
            raise ValueError(f"{path}: study config needs key {key!r}")
    for c in cfg["corpora"]:
        for key in ("name", "data"):
            if key not in c:
                raise ValueError(f"{path}: every corpus needs {key!r}, got {c}")
    sp = cfg["prune"].get("sparsities", [])
    if any(not 0 < s < 1 for s in sp) or list(sp) != sorted(sp):
        raise ValueError(f"{path}: prune.sparsities must be increasing in (0, 1), not {sp}")
    return cfg


def sp_tag(sp: float) -> str:
    return f"sp{sp * 100:g}"


def wd_tag(wd: float) -> str:
    return f"wd{wd:g}"


@dataclass
class Run:
    """One stage of a chain: dense training (sparsity 0) or one prune + fine-tune step."""

    corpus: dict
    rnn: str
    wd: float
    seed: int
    sparsity: float  # target weight sparsity of the recurrent layers; 0 = dense
    parent: Run | None = None
    groups: set = field(default_factory=set)  # "main", "wd_sweep", "control"
    control: int = 0  # dense control: fine-tuned this many times like a pruning chain, unpruned

    @property
    def finetuned(self) -> bool:
        """A stage that starts from its parent and fine-tunes (pruned, or dense control)."""
        return self.sparsity > 0 or self.control > 0

    @property
    def key(self) -> str:
        return f"{self.corpus['name']}/{self.rnn}/{wd_tag(self.wd)}/seed{self.seed}"

    @property
    def id(self) -> str:
        ctl = f"-ft{self.control}" if self.control else ""
        return f"{self.key}/{sp_tag(self.sparsity)}{ctl}"

    @property
    def fname(self) -> str:
        return self.id.replace("/", "__")


def model_config(cfg: dict, run: Run, vocab_size: int) -> ModelConfig:
    d = dict(cfg["model"])
    d.update(cfg.get("model_by_rnn", {}).get(run.rnn, {}))
    d.update(rnn=run.rnn, vocab_size=vocab_size)
    return from_dict(ModelConfig, d)


def train_config(cfg: dict, run: Run, out: Path, finetune: bool) -> TrainConfig:
    d = dict(cfg["train"])
    d.update(cfg.get("train_by_rnn", {}).get(run.rnn, {}))
    if finetune:
        d.update(cfg["prune"].get("finetune", {}))
    c = run.corpus
    d.update(data=_resolve_path(c["data"]), level=c.get("level", "word"),
             vocab_cap=c.get("vocab_cap", d.get("vocab_cap", 10000)), seed=run.seed,
             weight_decay=run.wd, out=str(out / "train" / run.fname))
    return from_dict(TrainConfig, d)


def plan(cfg: dict) -> list[Run]:
    """All runs in execution order (parents before children, seed-major so that a partial
    study holds complete pairs of LSTM/EGRU chains first)."""
    runs: dict[str, Run] = {}
    base_wd = cfg["train"].get("weight_decay", TrainConfig().weight_decay)
    sparsities = cfg["prune"].get("sparsities", [])

    def chain(corpus, rnn, wd, seed, sps, group):
        parent = None
        for sp in [0.0, *sps]:
            r = Run(corpus, rnn, wd, seed, sp, parent)
            r = runs.setdefault(r.id, r)
            r.groups.add(group)
            parent = r

    sweep = cfg.get("wd_sweep") or {}
    for i, seed in enumerate(cfg["seeds"]):
        for corpus in cfg["corpora"]:
            for rnn in cfg["rnns"]:
                wd = cfg.get("train_by_rnn", {}).get(rnn, {}).get("weight_decay", base_wd)
                chain(corpus, rnn, wd, seed, sparsities, "main")
                if cfg.get("dense_control"):
                    # the dense model fine-tuned exactly like the pruning chain, never pruned:
                    # separates the effect of pruning from that of the extra training
                    parent = runs[Run(corpus, rnn, wd, seed, 0.0).id]
                    for k in range(1, len(sparsities) + 1):
                        r = Run(corpus, rnn, wd, seed, 0.0, parent, {"control"}, control=k)
                        runs.setdefault(r.id, r)
                        parent = r
            if sweep and i == 0:  # the sweep after the first seed's main chains
                for s in sweep.get("seeds", [cfg["seeds"][0]]):
                    for wd in sweep["values"]:
                        chain(corpus, sweep.get("rnn", "egru"), wd, s,
                              sweep.get("sparsities", []), "wd_sweep")
    return list(runs.values())


def run_spec(cfg: dict, run: Run) -> dict:
    """Everything that determines a run's result (its hash guards resumption)."""
    spec = {"corpus": run.corpus, "rnn": run.rnn, "wd": run.wd, "seed": run.seed,
            "sparsity": run.sparsity, **({"control": run.control} if run.control else {}),
            "model": {**cfg["model"], **cfg.get("model_by_rnn", {}).get(run.rnn, {})},
            "train": {**cfg["train"], **cfg.get("train_by_rnn", {}).get(run.rnn, {})},
            "eval": cfg.get("eval", {})}
    if run.finetuned:
        spec["prune"] = cfg["prune"]
        spec["parent"] = run_spec(cfg, run.parent)
    return spec


def spec_hash(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# files




def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")


def result_path(out: Path, run: Run) -> Path:
    return out / "results" / f"{run.fname}.json"


def ckpt_path(out: Path, run: Run) -> Path:
    return out / "ckpt" / f"{run.fname}.safetensors"


class StaleResultError(RuntimeError):
    pass


def load_result(out: Path, run: Run, h: str) -> dict | None:
    p = result_path(out, run)
    if not p.is_file():
        return None
    try:
        res = json.loads(p.read_text())
    except json.JSONDecodeError:
        return None  # cannot happen with atomic writes, but never trust a file blindly
    if res.get("spec_hash") != h:
        raise StaleResultError(
            f"{p} was produced by a different study config (spec hash {res.get('spec_hash')} "
            f"!= {h}); write to another --out or delete {out} to start over")
    return res


def log(msg: str) -> None:
    print(f"[study {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# pruning (DESIGN.md section 3: global unstructured magnitude over all recurrent weights)


def prunable(model) -> dict[str, torch.Tensor]:
    """The recurrent-layer weight matrices W and R of every layer (not biases, thresholds,
    embedding or decoder), by parameter name."""
    return {n: p for n, p in model.named_parameters()
            if n.startswith("rnns.") and ".weight_" in n}


@torch.no_grad()
def global_magnitude_masks(model, sparsity: float) -> dict[str, torch.Tensor]:
    """Masks keeping the largest-|w| (1 - sparsity) fraction of all prunable weights together
    (``sw.masks.global_magnitude_masks``). Weights already at zero count as pruned before, so
    iterating keeps earlier masks nested inside later ones."""
    params = prunable(model)
    prev = {n: p.detach() != 0 for n, p in params.items()}
    try:
        from .masks import global_magnitude_masks as shared_masks
    except ImportError:  # pragma: no cover - sw.masks is part of the package
        shared_masks = None
    if shared_masks is not None:
        return shared_masks({n: p.detach().cpu() for n, p in params.items()}, sparsity,
                            {n: m.cpu() for n, m in prev.items()})
    flat = torch.cat([torch.where(prev[n], p.detach().abs(), -1.0).flatten()
                      for n, p in params.items()])
    k = round(sparsity * flat.numel())  # number of weights to remove
    order = torch.argsort(flat, stable=True)
    keep = torch.ones_like(flat, dtype=torch.bool)
    keep[order[:k]] = False
    masks, i = {}, 0
    for n, p in params.items():
        masks[n] = keep[i: i + p.numel()].view_as(p)
        i += p.numel()
    return masks


@torch.no_grad()
def apply_masks(model, masks: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    for n, m in masks.items():
        params[n].mul_(m.to(device=params[n].device, dtype=params[n].dtype))


def weight_sparsity(model) -> float:
    params = prunable(model)
    n = sum(p.numel() for p in params.values())
    z = sum(int((p == 0).sum()) for p in params.values())
    return z / n



# --------------------------------------------------------------------------------------------
# stages


def _train_args(cfg: dict, resume: Path | None):
    return argparse.Namespace(resume=str(resume) if resume else None, device=cfg.get("device"),
                              no_progress=not cfg.get("progress_bars", False), threads=0)


def train_dense(cfg: dict, run: Run, out: Path, corpus) -> Path:
    """Dense training through sw.train (resumes its OUT/last checkpoint). Returns the
    checkpoint the chain continues from (sw.train's best-validation weights)."""
    from .checkpoint import load_checkpoint
    from .train import train

    tcfg = train_config(cfg, run, out, finetune=False)
    mcfg = model_config(cfg, run, len(corpus.vocab))
    last = Path(tcfg.out) / "last.safetensors"
    ck_tensors = ck_doc = None
    if last.is_file():
        ck_tensors, ck_doc = load_checkpoint(last)
        p = ck_doc["progress"]
        log(f"{run.id}: resuming sw.train from {last} (epoch {p['epoch']}, step {p['step']})")
    from unittest import mock

    from . import distributed

    # Under torchrun the study owns one process group for all its runs: sw.train would tear it
    # down when it returns (re-creating groups back to back races on the rendezvous store), so
    # its cleanup is a no-op here. sw.train writes checkpoints on rank 0 only: the other ranks
    # wait at the barrier until they are on disk.
    with mock.patch.object(distributed, "cleanup", lambda d: None):
        train(mcfg, tcfg, corpus, ck_tensors, ck_doc, _train_args(cfg, last if ck_doc else None))
    distributed.barrier(distributed.setup(cfg.get("device")))
    return Path(tcfg.out) / "best.safetensors"


def finetune(cfg: dict, run: Run, out: Path, corpus, model, masks, d) -> dict:
    """Fine-tune a pruned model with its masks held (weights re-masked after every step).
    Short by design, so an interrupted fine-tune restarts from its parent's checkpoint."""
    import torch.nn.functional as F

    from .data import batchify, get_batch, num_windows
    from .models.lm import detach_state
    from .train import descend, lr_at, make_optimizer

    tcfg = train_config(cfg, run, out, finetune=True)
    share = tcfg.batch_size // d.world
    data = batchify(corpus.train, tcfg.batch_size)[:, d.rank * share:(d.rank + 1) * share]
    data = data.to(d.device)
    n_win = num_windows(data, tcfg.bptt)
    total = tcfg.max_steps or tcfg.epochs * n_win
    torch.manual_seed(tcfg.seed + 7919 + 1000 * d.rank + int(run.sparsity * 1e4) + run.control)
    raw = model.to(d.device)
    opt = make_optimizer(raw, tcfg)
    net = torch.nn.parallel.DistributedDataParallel(raw) if d.enabled else raw
    masks = {n: m.to(d.device) for n, m in masks.items()}
    # Where in the training stream this fine-tune starts. "continue_data": stage k of a chain
    # (pruning step k, or dense control k) continues where stage k-1 stopped, so a chain of
    # short fine-tunes walks the whole corpus instead of re-reading its first windows.
    b0 = 0
    if cfg["prune"].get("continue_data"):
        sps = cfg["prune"].get("sparsities", [])
        k = run.control if run.control else sps.index(run.sparsity) + 1
        b0 = ((k - 1) * total) % n_win
    state, b, t0, losses = raw.init_state(share), b0, time.time(), []
    net.train()
    for step in range(total):
        if b >= n_win:
            state, b = raw.init_state(share), 0
        x, y = get_batch(data, b * tcfg.bptt, tcfg.bptt)
        b += 1
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, tcfg)
        logits, state = net(x, state)
        state = detach_state(state)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        descend(raw, opt, loss, tcfg.clip)
        apply_masks(raw, masks)
        losses.append(loss.item())
    tail = losses[-max(1, len(losses) // 10):]
    return {"steps": total, "first_window": b0, "seconds": time.time() - t0,
            "train_loss_end": sum(tail) / len(tail), "lr": tcfg.lr}


def evaluate(cfg: dict, model, corpus, level: str) -> dict:
    from .data import batchify
    from .evaluate import evaluate_lm

    ev = cfg.get("eval", {})
    bptt = ev.get("bptt", cfg["train"].get("bptt", TrainConfig().bptt))
    out = {}
    for split in ev.get("splits", ["valid", "test"]):
        data = batchify(getattr(corpus, split), ev.get("batch_size", 10))
        data = data.to(next(model.parameters()).device)
        mw = ev.get("max_windows", 0)  # an int, or {"valid": N, "test": M}
        mw = mw.get(split, 0) if isinstance(mw, dict) else mw
        res = evaluate_lm(model, data, bptt, level, mw)
        out[split] = res
    return out


def execute(cfg: dict, run: Run, out: Path, corpora: dict, d) -> dict:
    """Run one stage and return its result document (caller writes it)."""
    from .checkpoint import load_model, save_checkpoint
    from .data import load_corpus

    cname = run.corpus["name"]
    if cname not in corpora:
        c = run.corpus
        corpora[cname] = load_corpus(_resolve_path(c["data"]), c.get("level", "word"),
                                     c.get("vocab_cap", cfg["train"].get("vocab_cap", 10000)))
    corpus = corpora[cname]
    t0 = time.time()
    info: dict = {}
    if not run.finetuned:
        ck = train_dense(cfg, run, out, corpus)
        model, _, _ = load_model(ck, d.device)
        info["train_log"] = str(Path(ck).parent / "log.jsonl")
    else:
        parent_ck = ckpt_path(out, run.parent)
        model, _, _ = load_model(parent_ck, "cpu")
        # a dense control keeps every weight: no masks
        masks = global_magnitude_masks(model, run.sparsity) if run.sparsity > 0 else {}
        apply_masks(model, masks)
        info["after_prune"] = {"weight_sparsity": weight_sparsity(model)}
        if cfg.get("eval", {}).get("before_finetune", True) and d.main:
            # before fine-tuning: how much pruning alone costs (valid split)
            res0 = evaluate({**cfg, "eval": {**cfg.get("eval", {}), "splits": ["valid"]}},
                            model.to(d.device), corpus, corpus.vocab.level)
            info["after_prune"]["valid_ppl"] = res0["valid"].get("ppl")
            info["after_prune"]["activity_sparsity"] = res0["valid"]["activity_sparsity"]
        info["finetune"] = finetune(cfg, run, out, corpus, model, masks, d)
        model.eval()
    if d.main:
        tcfg = train_config(cfg, run, out, finetune=run.finetuned)
        save_checkpoint(ckpt_path(out, run), model, tcfg, corpus.vocab,
                        metrics={"study_run": run.id})
    res = evaluate(cfg, model, corpus, corpus.vocab.level)
    return {"schema": SCHEMA, "version": SCHEMA_VERSION, "id": run.id,
            "corpus": cname, "corpus_path": str(corpus.path), "level": corpus.vocab.level,
            "vocab_size": len(corpus.vocab), "rnn": run.rnn, "weight_decay": run.wd,
            "seed": run.seed, "target_sparsity": run.sparsity, "control": run.control,
            "weight_sparsity": weight_sparsity(model), "groups": sorted(run.groups),
            "parent": run.parent.id if run.parent else None,
            "model_config": to_dict(model.cfg), "eval": res, "info": info,
            "seconds": time.time() - t0, "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                        time.gmtime()),
            "torch": torch.__version__}


# --------------------------------------------------------------------------------------------
# driver


def run_study(cfg: dict, out: Path, only: str | None = None, max_runs: int = 0) -> list[dict]:
    """Execute every unfinished run of the plan; returns all result documents (rank 0)."""
    from . import distributed

    runs = plan(cfg)
    if only:
        runs = [r for r in runs if only in r.id]
    corpora: dict = {}
    done, executed = [], 0
    for run in runs:
        h = spec_hash(run_spec(cfg, run))
        res = load_result(out, run, h)
        if res is not None:
            done.append(res)
            continue
        if run.parent is not None and load_result(out, run.parent, spec_hash(
                run_spec(cfg, run.parent))) is None:
            log(f"{run.id}: skipped, parent {run.parent.id} has no result")
            continue
        if max_runs and executed >= max_runs:
            log(f"stopping after {executed} runs (--max-runs)")
            break
        d = distributed.setup(cfg.get("device"))
        log(f"{run.id}: start ({len(done)} of {len(runs)} runs done)")
        res = execute(cfg, run, out, corpora, d)
        res["spec_hash"] = h
        if d.main:
            atomic_write_json(result_path(out, run), res)
            t = res["eval"].get("test", res["eval"].get("valid", {}))
            log(f"{run.id}: done in {res['seconds'] / 60:.1f} min: ppl {t.get('ppl', 0):.2f}, "
                f"activity sparsity {sum(t['activity_sparsity']) / len(t['activity_sparsity']):.3f}, "
                f"weight sparsity {res['weight_sparsity']:.3f}, "
                f"MACs/token {t['macs']['rnn_effective']:.0f}")
        distributed.barrier(d)
        done.append(res)
        executed += 1
    return done


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m sw.study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="study config JSON (configs/study_*.json)")
    p.add_argument("--out", default=None, help="output folder (default: the config's out)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: the config's threads, else torch's)")
    p.add_argument("--report-only", action="store_true",
                   help="only (re)write tables and plots from the results present")
    p.add_argument("--list", action="store_true", help="print the plan and the status of "
                   "every run, then exit")
    p.add_argument("--only", default=None, help="run only runs whose id contains this text")
    p.add_argument("--max-runs", type=int, default=0, help="stop after N new runs")
    p.add_argument("--publish", default=None,
                   help="copy the report (tables, plots, data) into this folder as well")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = load_config(args.config)
    out = Path(args.out or cfg.get("out", "runs/study"))
    threads = args.threads if args.threads is not None else cfg.get("threads")
    if threads:
        torch.set_num_threads(threads)
    if args.list:
        for run in plan(cfg):
            try:
                st = "done" if load_result(out, run, spec_hash(run_spec(cfg, run))) else "todo"
            except StaleResultError:
                st = "STALE"
            print(f"{st:5} {run.id:45} {','.join(sorted(run.groups))}")
        return 0
    rank = int(os.environ.get("RANK", "0"))
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "study_config.json", cfg)
    try:
        if not args.report_only:
            run_study(cfg, out, args.only, args.max_runs)
    except StaleResultError as e:
        sys.exit(f"error: {e}")
    finally:
        from . import distributed

        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            distributed.cleanup(distributed.setup(cfg.get("device")))
    if rank == 0:
        from .study_plots import make_report

        files = make_report(cfg, out, publish=args.publish)
        log(f"report: {', '.join(str(f) for f in files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
