"""Evaluate a language-model checkpoint: perplexity (bits per char for char level), activity
and backward sparsity per layer, and effective MACs per token.

    python -m sw.evaluate --checkpoint runs/egru/best.safetensors [--split test] [--json P]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, unwrap
from .config import TrainConfig, from_dict
from .data import DataError, Vocab, batchify, get_batch, load_corpus
from .metrics import SparsityMeter, effective_macs


@torch.no_grad()
def evaluate_lm(model, data: torch.Tensor, bptt: int, level: str = "word",
                max_windows: int = 0) -> dict:
    """Loss and sparsity of ``model`` over ``data`` (N, B), state carried across windows."""
    model = unwrap(model)
    was_training = model.training
    model.eval()
    cfg = model.cfg
    meter = SparsityMeter(cfg.num_layers, cfg.s if cfg.rnn == "egru" else None)
    state = model.init_state(data.shape[1])
    total, count = 0.0, 0
    for w, i in enumerate(range(0, data.shape[0] - 1, bptt)):
        if max_windows and w >= max_windows:
            break
        x, y = get_batch(data, i, bptt)
        logits, state, traces = model(x, state, return_internals=True)
        total += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item()
        count += y.numel()
        meter.update(traces)
    model.train(was_training)
    loss = total / max(count, 1)
    res = {"loss": loss, "tokens": count,
           "activity_sparsity": meter.activity_sparsity(),
           "backward_sparsity": meter.backward_sparsity(),
           "macs": effective_macs(model, meter)}
    if level == "char":
        res["bpc"] = loss / math.log(2)
    else:
        res["ppl"] = math.exp(min(loss, 50))
    return res


def format_table(res: dict, title: str) -> str:
    m = res["macs"]
    score = f"bpc {res['bpc']:.4f}" if "bpc" in res else f"ppl {res['ppl']:.2f}"
    lines = [f"{title}: loss {res['loss']:.4f}, {score} over {res['tokens']} tokens", "",
             ("layer  I x H        activity_sparsity  backward_sparsity  "
              "MACs W (eff/dense)     MACs R (eff/dense)")]
    bwd = res["backward_sparsity"]
    for k, L in enumerate(m["layers"]):
        b = f"{bwd[k]:.4f}" if bwd else "n/a"
        lines.append(
            f"{k:<6} {L['input_size']:>4} x {L['hidden_size']:<6} "
            f"{res['activity_sparsity'][k]:>17.4f}  {b:>17}  "
            f"{L['W']['effective']:>10.0f}/{L['W']['dense']:<10} "
            f"{L['R']['effective']:>10.0f}/{L['R']['dense']:<10}")
    d = m["decoder"]
    lines += ["",
              (f"recurrent layers: {m['rnn_effective']:.0f} effective MACs/token; dense "
               f"{m['rnn_dense']} (x{m['reduction_vs_dense']:.2f}); dense LSTM of the same "
               f"sizes {m['rnn_dense_lstm']} (x{m['reduction_vs_lstm']:.2f})"),
              (f"decoder (separate): {d['effective']:.0f} effective / {d['dense']} dense "
               f"(input density {d['input_density']:.4f})"),
              (f"total incl. decoder: {m['total_effective']:.0f} effective vs "
               f"{m['total_dense_lstm']} dense LSTM")]
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m sw.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a .safetensors checkpoint")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--data", default=None,
                   help="corpus folder or ptb/wikitext-2 (default: the training corpus)")
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--bptt", type=int, default=None, help="default: the training value")
    p.add_argument("--max-windows", type=int, default=0, help="evaluate only the first N")
    p.add_argument("--json", default=None, help="write the results as JSON here")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        tensors, doc = load_checkpoint(args.checkpoint)
        model = model_from_checkpoint(tensors, doc, args.checkpoint)
        vocab = Vocab.from_json(doc["vocab"])
        tcfg = from_dict(TrainConfig, doc["train_config"])
        data_spec = args.data if args.data is not None else tcfg.data
        corpus = load_corpus(data_spec, vocab.level, vocab=vocab, splits=(args.split,))
    except (CheckpointError, DataError) as e:
        sys.exit(f"error: {e}")
    data = batchify(getattr(corpus, args.split), args.batch_size)
    res = evaluate_lm(model, data, args.bptt or tcfg.bptt, vocab.level, args.max_windows)
    res.update({"checkpoint": str(args.checkpoint), "split": args.split,
                "corpus": str(corpus.path), "level": vocab.level,
                "model_config": doc["model_config"], "progress": doc.get("progress", {})})
    print(format_table(res, f"{Path(args.checkpoint).name} on {corpus.path} [{args.split}]"))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
