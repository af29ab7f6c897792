"""Fine-tuning of the accelerator-form model (``sw.quant.EventNet``): masks, QAT, metrics.

    python -m sw.finetune --checkpoint runs/x/pruned.safetensors --out runs/x/qat.safetensors \
        --qat --steps 400 --lr 5e-4

Checkpoints of this module are single safetensors files (no pickle): tensors ``net.<param>``
and ``mask.<param>`` (bool, the pruning masks), and a JSON document under the metadata key
``egru_eventnet`` (format, version, the EventNet config, the vocabulary, the fixed-point format
the model was QAT fine-tuned for (``qat_format``), the corpus, the bank count, history and metrics).
``load_any`` also reads float LM checkpoints of ``sw.train`` and folds them (``from_lm``).

The training loop mirrors ``sw.train`` (AdamW, gradient clipping, truncated BPTT with the
state carried across windows) and re-applies the masks after every optimizer step, so pruned
weights stay exactly zero (their AdamW moments are irrelevant: the weight is re-zeroed).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import math
import struct
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from tqdm import tqdm

from hw.fixedpoint import Format
from sw.atomic import atomic_write_bytes

from .data import Vocab, batchify, get_batch, load_corpus
from .masks import apply_masks
from .quant import EventNet, project_weights_
from .train import descend

FORMAT, VERSION, META_KEY = "egru-eventnet", 1, "egru_eventnet"

__all__ = [
    "Loaded",
    "evaluate",
    "from_lm",
    "load_any",
    "load_data",
    "macs_report",
    "main",
    "save_eventnet",
    "train_steps",
]


@dataclasses.dataclass
class Loaded:
    """A model ready for pruning / QAT / export, with what travels with it."""

    net: EventNet
    vocab: list[str] | None
    level: str | None
    masks: dict[str, torch.Tensor]
    meta: dict            # everything else: format, banks, corpus, history, metrics, ...


def from_lm(lm) -> EventNet:
    """Fold a ``sw.models.lm.LanguageModel`` (EGRU) into an ``EventNet``.

    Layer 0's input matrix becomes ``W_ih0 @ E^T`` (3H, V): the embedding of token j times
    W_ih0 is column j. The decoder stays the embedding (tied) plus ``decoder_bias``.
    """
    cfg = lm.cfg
    if cfg.rnn != "egru" or cfg.variant != "default":
        raise ValueError(f"only the default-variant EGRU can be exported, not "
                         f"rnn={cfg.rnn!r} variant={cfg.variant!r}")
    sizes = [h for _, h in cfg.layer_sizes()]
    net = EventNet(cfg.vocab_size, sizes, kind="lm", gamma=cfg.gamma, s=cfg.s,
                   min_threshold=cfg.min_threshold, dropout=0.0)
    E = lm.encoder.weight.detach()
    with torch.no_grad():
        for k, layer in enumerate(lm.rnns):
            w = layer.weight_ih_l0.detach()
            getattr(net, f"weight_ih_l{k}").copy_(
                (w.double() @ E.double().t()).to(w.dtype) if k == 0 else w)
            for src, dst in (("weight_hh_l0", f"weight_hh_l{k}"), ("bias_ih_l0", f"bias_ih_l{k}"),
                             ("bias_hh_l0", f"bias_hh_l{k}")):
                getattr(net, dst).copy_(getattr(layer, src).detach())
            getattr(net, f"threshold_l{k}").copy_(layer.threshold(0).detach())
        net.embedding.copy_(E)
        net.decoder_bias.copy_(lm.decoder_bias.detach())
    return net


def _digest(tensors: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(name.encode())
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_eventnet(path, net: EventNet, *, vocab=None, level=None, masks=None,
                  meta: dict | None = None) -> Path:
    """Write an EventNet checkpoint atomically (temp file + rename)."""
    tensors = {f"net.{k}": v.detach().cpu().float().contiguous()
               for k, v in net.state_dict().items()}
    for k, m in (masks or {}).items():
        tensors[f"mask.{k}"] = m.detach().cpu().to(torch.bool).contiguous()
    doc = dict(meta or {})
    doc.update(format=FORMAT, version=VERSION, config=net.config(),
               vocab={"level": level, "tokens": vocab} if vocab is not None else None,
               sha256=_digest(tensors))
    blob = st_save(tensors, metadata={META_KEY: json.dumps(doc)})
    path = atomic_write_bytes(path, blob)
    return path


def load_any(path) -> Loaded:
    """An EventNet checkpoint, or a float LM checkpoint of ``sw.train`` (folded)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} not found")
    data = path.read_bytes()
    try:
        (n,) = struct.unpack("<Q", data[:8])
        meta = json.loads(data[8:8 + n]).get("__metadata__", {})
    except Exception as e:
        raise ValueError(f"checkpoint {path} is corrupted or not a safetensors file ({e})") from e
    if META_KEY not in meta:
        from .checkpoint import load_checkpoint, model_from_checkpoint
        tensors, doc = load_checkpoint(path)
        lm = model_from_checkpoint(tensors, doc, path)
        tcfg = doc.get("train_config", {})
        info = {"source": "sw.train", "source_checkpoint": str(path),
                "model_config": doc.get("model_config"), "train_config": tcfg,
                "corpus": tcfg.get("data"), "metrics": doc.get("metrics", {}),
                "progress": doc.get("progress", {})}
        return Loaded(from_lm(lm), doc["vocab"]["tokens"], doc["vocab"]["level"], {}, info)
    doc = json.loads(meta[META_KEY])
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise ValueError(f"checkpoint {path}: unsupported format {doc.get('format')!r} "
                         f"version {doc.get('version')!r}")
    tensors = st_load(data)
    if _digest(tensors) != doc.get("sha256"):
        raise ValueError(f"checkpoint {path} is corrupted: tensor checksum mismatch")
    net = EventNet.from_config(doc["config"])
    net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    masks = {k[5:]: v for k, v in tensors.items() if k.startswith("mask.")}
    voc = doc.get("vocab") or {}
    rest = {k: v for k, v in doc.items()
            if k not in ("config", "vocab", "sha256", "format", "version")}
    return Loaded(net, voc.get("tokens"), voc.get("level"), masks, rest)


def load_data(loaded: Loaded, data: str | None, splits=("train", "valid", "test")):
    """The corpus the model was trained on (or ``data``), with the model's vocabulary."""
    spec = data if data is not None else loaded.meta.get("corpus")
    vocab = Vocab(list(loaded.vocab), loaded.level)
    return load_corpus(spec, loaded.level, vocab=vocab, splits=splits)


def make_optimizer(net: EventNet, lr: float, wd: float) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        (no_decay if "threshold" in name or "bias" in name else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": wd},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr)


def train_steps(net: EventNet, train_data: torch.Tensor, steps: int, *, lr: float = 1e-3,
                wd: float = 0.01, bptt: int = 100, clip: float = 0.25,
                masks: dict | None = None, fmt: Format | None = None, start: int = 0,
                progress: bool = True, desc: str = "fine-tune", after_step=None) -> dict:
    """``steps`` optimizer steps on ``train_data`` (N, B), cosine lr from ``lr`` to lr/10.

    ``fmt``: quantization-aware (the contract's arithmetic in the forward pass).
    ``masks``: re-applied after every step. With ``fmt`` the weights are also projected
    (``sw.quant.project_weights_``: clamped to format W, kept weights never round to 0). ``start``: window offset (continue the stream).
    Returns {"loss": mean training loss of the last 50 steps, "steps", "next": offset}.
    """
    net.train()
    opt = make_optimizer(net, lr, wd)
    if masks:
        apply_masks(net, masks)
    if fmt is not None:
        project_weights_(net, fmt, masks)
    n_win = (train_data.shape[0] - 2) // bptt
    state = net.init_state(train_data.shape[1])
    losses = []
    w = start % n_win
    bar = tqdm(range(steps), desc=desc, disable=not progress, mininterval=2.0,
               file=sys.stderr)
    for step in bar:
        if w == 0:
            state = net.init_state(train_data.shape[1])
        x, y = get_batch(train_data, w * bptt, bptt)
        for g in opt.param_groups:
            g["lr"] = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / max(1, steps))))
        out, state, _ = net(x, state, fmt=fmt)
        state = state.detach()
        loss = F.cross_entropy(out.flatten(0, 1), y.flatten())
        descend(net, opt, loss, clip)
        if masks:
            apply_masks(net, masks)
        if fmt is not None:       # QAT: keep the weights representable (no saturation)
            project_weights_(net, fmt, masks)
        if after_step is not None:
            after_step(step)
        losses.append(loss.item())
        bar.set_postfix(bpc=f"{sum(losses[-50:]) / len(losses[-50:]) / math.log(2):.3f}",
                        refresh=False)
        w = (w + 1) % n_win
    bar.close()
    net.eval()
    tail = losses[-50:] or [float("nan")]
    return {"loss": sum(tail) / len(tail), "steps": steps, "next": w}


def macs_report(net: EventNet, act_density: list[float], emb_size: int | None = None) -> dict:
    """Effective MACs per token (DESIGN.md section 2) of the accelerator-form model.

    dense = the float LM with the same sizes (layer 0: 3H x E on a dense embedding vector);
    effective = per matrix dense-in-this-form x input density x weight density. Layer 0's
    folded matrix sees one event per token (input density 1/V).
    """
    out, eff_total, dense_total = [], 0.0, 0
    prev_density = None
    for k, h in enumerate(net.hidden_sizes):
        W, R = net.p("weight_ih", k), net.p("weight_hh", k)
        wd_w = float(torch.count_nonzero(W)) / W.numel()
        wd_r = float(torch.count_nonzero(R)) / R.numel()
        if k == 0 and net.kind == "lm":
            dense_w = 3 * h * (emb_size or net.hidden_sizes[-1])
            eff_w = 3 * h * wd_w                      # one column per token
        else:
            dense_w = W.numel()
            eff_w = W.numel() * (prev_density if k else 1.0) * wd_w
        dense_r = R.numel()
        eff_r = R.numel() * act_density[k] * wd_r
        out.append({"layer": k, "W": {"dense": dense_w, "weight_density": wd_w,
                                      "effective": eff_w},
                    "R": {"dense": dense_r, "weight_density": wd_r,
                          "input_density": act_density[k], "effective": eff_r}})
        eff_total += eff_w + eff_r
        dense_total += dense_w + dense_r
        prev_density = act_density[k]
    res = {"layers": out, "rnn_effective": eff_total, "rnn_dense": dense_total,
           "rnn_reduction": dense_total / max(eff_total, 1e-9)}
    if net.readout:
        D = net.embedding
        wd_d = float(torch.count_nonzero(D)) / D.numel()
        eff_d = D.numel() * act_density[-1] * wd_d
        res["decoder"] = {"dense": D.numel(), "input_density": act_density[-1],
                          "effective": eff_d}
        res["total_effective"] = eff_total + eff_d
        res["total_dense"] = dense_total + D.numel()
        res["total_reduction"] = res["total_dense"] / max(res["total_effective"], 1e-9)
    return res


@torch.no_grad()
def evaluate(net: EventNet, data: torch.Tensor, *, bptt: int = 100, fmt: Format | None = None,
             max_windows: int = 0, emb_size: int | None = None, progress: bool = False) -> dict:
    """Loss (nats/token), bpc, activity sparsity per layer and effective MACs on (N, B)."""
    net.eval()
    state = net.init_state(data.shape[1])
    total, count = 0.0, 0
    nz = [0] * net.num_layers
    n = [0] * net.num_layers
    starts = list(range(0, data.shape[0] - 1, bptt))
    if max_windows:
        starts = starts[:max_windows]
    for i in tqdm(starts, desc="evaluate", disable=not progress, mininterval=2.0,
                  file=sys.stderr):
        x, y = get_batch(data, i, bptt)
        out, state, events = net(x, state, fmt=fmt)
        total += F.cross_entropy(out.flatten(0, 1).double(), y.flatten(), reduction="sum").item()
        count += y.numel()
        for k, ev in enumerate(events):
            nz[k] += int(torch.count_nonzero(ev))
            n[k] += ev.numel()
    loss = total / max(count, 1)
    density = [a / max(b, 1) for a, b in zip(nz, n)]
    return {"loss": loss, "bpc": loss / math.log(2), "ppl": math.exp(min(loss, 50)),
            "tokens": count, "activity_sparsity": [1 - d for d in density],
            "macs": macs_report(net, density, emb_size)}


def _emb_size(loaded: Loaded) -> int | None:
    mc = loaded.meta.get("model_config") or {}
    return mc.get("emb_size")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sw.finetune", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="EventNet or sw.train checkpoint")
    ap.add_argument("--out", default=None, help="EventNet checkpoint to write")
    ap.add_argument("--eval-only", action="store_true",
                    help="no training: evaluate float and quantized (--qat format) and exit")
    ap.add_argument("--json", default=None, help="write the metrics as JSON here")
    ap.add_argument("--cycles", type=int, default=0, metavar="N",
                    help="with --banks: DESIGN.md's cycle bound per step on the first N "
                         "characters of the eval split (quantized model)")
    ap.add_argument("--banks", type=int, default=8, help="P for --cycles")
    ap.add_argument("--float64", action="store_true",
                    help="evaluate in float64: the quantized results are then exactly the "
                         "golden model's (float32 is within float rounding of it)")
    ap.add_argument("--data", default=None, help="corpus folder (default: the model's)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--bptt", type=int, default=100)
    ap.add_argument("--clip", type=float, default=0.25)
    ap.add_argument("--dropout", type=float, default=None, help="dropout on events")
    ap.add_argument("--qat", action="store_true", help="quantization-aware (fixed_point.md)")
    ap.add_argument("--format-json", default=None, help="fixed-point format (default: Format())")
    ap.add_argument("--eval-batch-size", type=int, default=32)
    ap.add_argument("--eval-windows", type=int, default=0, help="0: the whole split")
    ap.add_argument("--eval-split", default="test", choices=["valid", "test"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if not args.eval_only and not args.out:
        ap.error("--out is required unless --eval-only")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    loaded = load_any(args.checkpoint)
    fmt = None
    if args.qat:
        fmt = Format.from_dict(json.loads(Path(args.format_json).read_text())) \
            if args.format_json else Format()
    net = loaded.net
    if args.dropout is not None:
        net.dropout = args.dropout
    corpus = load_data(loaded, args.data)
    train = batchify(corpus.train, args.batch_size)
    ev = batchify(getattr(corpus, args.eval_split), args.eval_batch_size)
    emb = _emb_size(loaded)
    t0 = time.time()
    stats = None
    eval_net = net
    if not args.eval_only:
        stats = train_steps(net, train, args.steps, lr=args.lr, wd=args.weight_decay,
                            bptt=args.bptt, clip=args.clip, masks=loaded.masks, fmt=fmt,
                            progress=not args.no_progress, desc="QAT" if fmt else "fine-tune")
    res = {"train": stats, "minutes": (time.time() - t0) / 60}
    for name, f in (("float", None), ("quant", fmt or Format())):
        if args.float64 and eval_net is net:
            eval_net = copy.deepcopy(net).double()
        r = evaluate(eval_net, ev, bptt=args.bptt, fmt=f, max_windows=args.eval_windows,
                     emb_size=emb, progress=not args.no_progress)
        res[f"{args.eval_split}_{name}"] = r
        print(f"{args.eval_split} {name}: bpc {r['bpc']:.4f}, activity sparsity "
              f"{[round(a, 4) for a in r['activity_sparsity']]}, effective MAC reduction "
              f"x{r['macs']['rnn_reduction']:.2f} (recurrent layers), "
              f"x{r['macs'].get('total_reduction', 0):.2f} (with decoder)", flush=True)
    if args.cycles:
        from .masks import cycle_bound
        toks = getattr(corpus, args.eval_split)[:args.cycles]
        cb = cycle_bound(net, toks, args.banks, fmt or Format())
        res["cycles"] = {"banks": args.banks, "tokens": int(toks.numel()), **cb}
        print(f"cycle bound per step (P={args.banks}, first {toks.numel()} chars): "
              f"{cb['bound']:.1f} cycles for {cb['events']:.1f} events; perfectly balanced "
              f"{cb['ideal']:.1f}; imbalance x{cb['imbalance']:.3f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"checkpoint": str(args.checkpoint), **res},
                                              indent=1))
    if args.eval_only:
        return 0
    meta = dict(loaded.meta)
    meta.setdefault("history", []).append({"step": "finetune", "args": vars(args),
                                           "train": stats})
    meta["corpus"] = str(corpus.path)
    if fmt is not None:
        meta["qat_format"] = fmt.to_dict()
    meta["metrics"] = {k: v for k, v in res.items() if k != "train"}
    save_eventnet(args.out, net, vocab=loaded.vocab, level=loaded.level, masks=loaded.masks,
                  meta=meta)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
