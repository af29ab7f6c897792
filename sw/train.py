"""Train an EGRU / LSTM / GRU language model.

    python -m sw.train --rnn egru --level word --vocab-cap 10000 --out runs/egru
    python -m sw.train --resume runs/egru/last.safetensors          # continue a killed run
    torchrun --nproc_per_node=2 -m sw.train ...                      # data parallel

AdamW, cosine learning rate (optional linear warmup) over ``epochs`` x windows, gradient
clipping, truncated BPTT with the state carried (detached) across windows. ``OUT/last`` is
written every ``--save-every`` steps, at every epoch end and when the run stops; it holds
everything needed to continue bit-identically (weights, AdamW state, carried state, RNG state,
data position). ``OUT/best`` holds the weights with the best validation loss.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import distributed
from .checkpoint import (
    CheckpointError,
    load_checkpoint,
    model_from_checkpoint,
    restore_optimizer,
    save_checkpoint,
    train_config_of,
)
from .config import ModelConfig, TrainConfig, from_dict
from .data import DataError, Vocab, batchify, get_batch, load_corpus, num_windows
from .evaluate import evaluate_lm
from .models.lm import LanguageModel, detach_state, state_from_tensors, state_tensors

CHOICES = {"rnn": ("egru", "lstm", "gru"), "variant": ("default", "seed"),
           "level": ("word", "char"), "schedule": ("steps", "time")}
MODEL_KEYS = [f.name for f in dataclasses.fields(ModelConfig) if f.name != "vocab_size"]
TRAIN_KEYS = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "extra"]


def build_parser() -> argparse.ArgumentParser:
    """One flag per config field (--emb-size for emb_size); defaults come from the configs."""
    p = argparse.ArgumentParser(prog="python -m sw.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    for title, cls, keys in (("model", ModelConfig, MODEL_KEYS),
                             ("training", TrainConfig, TRAIN_KEYS)):
        g = p.add_argument_group(title)
        defaults = cls() if cls is TrainConfig else cls(vocab_size=2)
        for key in keys:
            default = getattr(defaults, key)
            typ = type(default) if default is not None else str
            g.add_argument("--" + key.replace("_", "-"), dest=key, type=typ, default=None,
                           choices=CHOICES.get(key), help=f"default: {default}")
    g = p.add_argument_group("run")
    g.add_argument("--resume", default=None, help="continue from OUT/last.safetensors")
    g.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    g.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")
    g.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    return p


def lr_at(step: int, total: int, cfg: TrainConfig, elapsed: float = 0.0) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    if cfg.schedule == "time":
        frac = max(frac, min(1.0, elapsed / (60 * cfg.max_minutes)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


def make_optimizer(model: LanguageModel, cfg: TrainConfig) -> torch.optim.AdamW:
    # No weight decay on thresholds (it would pull theta to 0) nor on biases.
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if "threshold" in name or "bias" in name else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)


def descend(model, opt, loss, clip: float) -> None:
    """One optimizer step on ``loss``: gradients, their global norm clipped to ``clip``, the
    update, then the model's parameter constraints (``constrain_``: thresholds stay
    positive). The caller re-applies pruning masks after it."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    model.constrain_()


def configs_from_args(args) -> tuple[ModelConfig, TrainConfig, dict | None, dict | None]:
    """Fresh run: configs from the flags. Resume: from the checkpoint, run-control flags may
    override (e.g. --max-minutes); model flags must not contradict the checkpoint."""
    given = {k: v for k, v in vars(args).items() if v is not None}
    if args.resume is None:
        mcfg = ModelConfig(vocab_size=2, **{k: given[k] for k in MODEL_KEYS if k in given})
        tcfg = TrainConfig(**{k: given[k] for k in TRAIN_KEYS if k in given})
        return mcfg, tcfg, None, None
    tensors, doc = load_checkpoint(args.resume)
    mcfg = from_dict(ModelConfig, doc["model_config"])
    for k in MODEL_KEYS:
        if k in given and given[k] != getattr(mcfg, k):
            raise CheckpointError(f"--{k.replace('_', '-')} {given[k]} contradicts checkpoint "
                                  f"{args.resume} ({getattr(mcfg, k)})")
    tcfg = dataclasses.replace(train_config_of(doc),
                               **{k: given[k] for k in TRAIN_KEYS if k in given})
    return mcfg, tcfg, tensors, doc


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        mcfg, tcfg, ck_tensors, ck_doc = configs_from_args(args)
        vocab = Vocab.from_json(ck_doc["vocab"]) if ck_doc else None
        corpus = load_corpus(tcfg.data, tcfg.level, tcfg.vocab_cap, vocab=vocab)
    except (CheckpointError, DataError, ValueError) as e:
        sys.exit(f"error: {e}")
    return train(mcfg, tcfg, corpus, ck_tensors, ck_doc, args)


def train(mcfg, tcfg, corpus, ck_tensors, ck_doc, args) -> dict:
    d = distributed.setup(args.device)
    out = Path(tcfg.out)
    mcfg = dataclasses.replace(mcfg, vocab_size=len(corpus.vocab))
    torch.manual_seed(tcfg.seed)  # identical initial weights on every rank
    model = (model_from_checkpoint(ck_tensors, ck_doc, args.resume) if ck_doc
             else LanguageModel(mcfg)).to(d.device)
    opt = make_optimizer(model, tcfg)
    if ck_doc:
        restore_optimizer(opt, ck_tensors, ck_doc, args.resume)
    if tcfg.batch_size % d.world:
        sys.exit(f"error: --batch-size {tcfg.batch_size} not divisible by {d.world} ranks")
    share = tcfg.batch_size // d.world  # each rank trains its own columns of the batch
    train_data = batchify(corpus.train, tcfg.batch_size)[:, d.rank * share:(d.rank + 1) * share]
    train_data = train_data.to(d.device)
    valid_data = batchify(corpus.valid, tcfg.eval_batch_size).to(d.device)
    n_win = num_windows(train_data, tcfg.bptt)
    total = tcfg.epochs * n_win
    prog = {"epoch": 0, "batch": 0, "step": 0, "elapsed": 0.0, "best_val": math.inf,
            "windows_per_epoch": n_win, "total_steps": total}
    torch.manual_seed(tcfg.seed + 1000 * (d.rank + 1))  # dropout masks differ across ranks
    state = model.init_state(share)
    if ck_doc:
        prog.update(ck_doc["progress"])
        st = {k[len("train."):]: v[d.rank] for k, v in ck_tensors.items()
              if k.startswith("train.state.")}
        state = [tuple(t.to(d.device) for t in s) for s in state_from_tensors(st, mcfg.num_layers)]
        torch.set_rng_state(ck_tensors["train.rng"][d.rank])
        if "train.cuda_rng" in ck_tensors and d.device.type == "cuda":
            torch.cuda.set_rng_state(ck_tensors["train.cuda_rng"][d.rank])
    raw = model
    if d.enabled:
        model = torch.nn.parallel.DistributedDataParallel(model)
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        print(f"{mcfg.rnn}: {sum(p.numel() for p in raw.parameters())} parameters, "
              f"vocab {len(corpus.vocab)} ({tcfg.level}), corpus {corpus.path}, "
              f"{n_win} windows/epoch x {tcfg.epochs} epochs, {d.world} rank(s)", flush=True)

    def save(name: str, with_train: bool, metrics=None):
        tensors = {}
        if with_train:  # every rank contributes its carried state and RNG state
            for k, v in state_tensors(state).items():
                tensors[k] = distributed.gather_stack(v, d)
            tensors["rng"] = distributed.gather_stack(torch.get_rng_state(), d)
            if d.device.type == "cuda":
                tensors["cuda_rng"] = distributed.gather_stack(torch.cuda.get_rng_state(), d)
        if d.main:
            save_checkpoint(out / f"{name}.safetensors", raw, tcfg, corpus.vocab,
                            opt if with_train else None, dict(prog), tensors, metrics)

    def validate() -> dict:
        res = evaluate_lm(raw, valid_data, tcfg.bptt, tcfg.level)
        res = {k: v for k, v in res.items() if k != "macs"}
        res.update(epoch=prog["epoch"], step=prog["step"], elapsed=prog["elapsed"])
        if d.main:
            print(json.dumps({"valid": res}), flush=True)
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps(res) + "\n")
        if res["loss"] < prog["best_val"]:
            prog["best_val"] = res["loss"]
            save("best", False, {"valid": res})
        return res

    t0 = time.time() - prog["elapsed"]
    ema_loss, ema_sp, stop = None, None, False
    while prog["epoch"] < tcfg.epochs and not stop:
        if prog["batch"] == 0:
            state = raw.init_state(share)
        bar = tqdm(range(prog["batch"], n_win), desc=f"epoch {prog['epoch'] + 1}",
                   initial=prog["batch"], total=n_win, mininterval=2.0,
                   disable=not d.main or args.no_progress, file=sys.stderr)
        model.train()
        for b in bar:
            x, y = get_batch(train_data, b * tcfg.bptt, tcfg.bptt)
            for g in opt.param_groups:
                g["lr"] = lr_at(prog["step"], total, tcfg, prog["elapsed"])
            logits, state, traces = model(x, state, return_internals=True)
            state = detach_state(state)
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
            descend(raw, opt, loss, tcfg.clip)
            prog["step"] += 1
            prog["batch"] = b + 1
            with torch.no_grad():
                sp = sum(1 - float(torch.count_nonzero(t.y)) / t.y.numel() for t in traces)
            sp /= len(traces)
            lv = loss.item()
            ema_loss = lv if ema_loss is None else 0.98 * ema_loss + 0.02 * lv
            ema_sp = sp if ema_sp is None else 0.98 * ema_sp + 0.02 * sp
            score = ({"bpc": f"{ema_loss / math.log(2):.3f}"} if tcfg.level == "char"
                     else {"ppl": f"{math.exp(min(ema_loss, 50)):.1f}"})
            bar.set_postfix(loss=f"{ema_loss:.3f}", **score, sparsity=f"{ema_sp:.3f}",
                            refresh=False)
            # Ranks agree on the clock (rank-local clocks would give rank-local learning
            # rates under --schedule time) and on when to stop.
            flag = bool(tcfg.max_steps and prog["step"] >= tcfg.max_steps)
            flag, prog["elapsed"] = distributed.max_all([float(flag), time.time() - t0], d)
            stop = bool(flag) or bool(tcfg.max_minutes
                                      and prog["elapsed"] >= 60 * tcfg.max_minutes)
            if stop or prog["step"] % tcfg.save_every == 0:
                save("last", True)
            if stop:
                break
        bar.close()
        if prog["batch"] >= n_win:
            prog["epoch"] += 1
            prog["batch"] = 0
            validate()
            save("last", True)
    final = validate() if stop else None
    if d.main:
        reason = "stopped by budget" if stop else "finished"
        print(f"{reason} after {prog['step']} steps, {prog['elapsed'] / 60:.1f} min; best "
              f"valid loss {prog['best_val']:.4f}; checkpoints in {out}", flush=True)
    del model  # the DDP wrapper holds the process group; see distributed.cleanup
    distributed.cleanup(d)
    return {"progress": prog, "final_valid": final, "model": raw}


if __name__ == "__main__":
    main()
