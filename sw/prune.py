"""Iterative magnitude pruning with fine-tuning (the seed paper's method), optionally
bank-balanced for the accelerator's P memory banks.

    python -m sw.prune --checkpoint runs/dense/best.safetensors --target 0.9 \
        --out runs/dense/pruned90.safetensors --banks 8 --rounds 5 --steps 300

From a trained dense model: each round raises the sparsity (``--schedule`` cubic / geometric
/ linear over ``--rounds``, or an explicit ``--sparsities 0.5,0.75,0.9``), recomputes the masks
over all recurrent-layer weights together (input and recurrent matrices of every layer, not the
embedding / tied decoder) and fine-tunes ``--steps`` steps with the masks re-applied after every
optimizer step. ``--banks P`` makes every (bank, column) group keep the same count
(``sw.masks.bank_balanced_masks``); without it pruning is global unstructured.

Layer 0 of the language model is pruned in its *folded* form ``W_ih0 . E^T`` (3H, V), the
matrix the hardware stores (one column per token), so bank balance holds on exactly the
bundle's ``l0.w``. The float model is converted once (``sw.finetune.from_lm``) and all
fine-tuning happens in that form (the decoder stays tied to the embedding).

The output is an EventNet checkpoint (``sw.finetune``) holding the masks; ``--keep-rounds``
also writes ``OUT.s{sparsity}.safetensors`` after every round. A JSON log with the validation
bpc of every round goes to ``OUT.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import torch

from hw.fixedpoint import Format

from .data import batchify
from .finetune import _emb_size, evaluate, load_any, load_data, save_eventnet, train_steps
from .masks import (
    apply_masks,
    bank_balanced_masks,
    global_magnitude_masks,
    mask_sparsity,
    sparsity_report,
    sparsity_schedule,
)

__all__ = ["compute_masks", "main", "prune"]


SCOPES = ("global", "matrix")


def compute_masks(net, sparsity: float, banks: int | None = None, masks=None,
                  scope: str = "global") -> dict:
    """Masks over all recurrent-layer matrices of ``net`` at the given sparsity.

    ``scope="global"``: one magnitude ranking over all matrices together (the seed paper);
    ``scope="matrix"``: every matrix pruned to the same sparsity on its own.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, not {scope!r}")
    weights = {n: getattr(net, n) for n in net.matrix_names()}
    groups = [weights] if scope == "global" else [{n: w} for n, w in weights.items()]
    out = {}
    for g in groups:
        old = {n: masks[n] for n in g} if masks else None
        if banks:
            out.update(bank_balanced_masks(g, sparsity, banks, old))
        else:
            out.update(global_magnitude_masks(g, sparsity, old))
    return out


def prune(net, train_data, sparsities: list[float], *, steps: int, banks: int | None = None,
          lr: float = 1e-3, bptt: int = 100, valid_data=None, eval_windows: int = 0,
          masks=None, progress: bool = True, on_round=None, emb_size=None,
          scope: str = "global") -> tuple[dict, list]:
    """Prune ``net`` in place round by round; returns (final masks, per-round log)."""
    log, pos = [], 0
    for i, s in enumerate(sparsities):
        masks = compute_masks(net, s, banks, masks, scope)
        apply_masks(net, masks)
        entry = {"round": i + 1, "target": s, "sparsity": mask_sparsity(masks)}
        if valid_data is not None:
            entry["valid_before_ft"] = evaluate(net, valid_data, bptt=bptt,
                                                max_windows=eval_windows)["bpc"]
        t0 = time.time()
        stats = train_steps(net, train_data, steps, lr=lr, bptt=bptt, masks=masks,
                            start=pos, progress=progress,
                            desc=f"round {i + 1}/{len(sparsities)} s={s:.3f}")
        pos = stats["next"]
        entry.update(train_loss=stats["loss"], minutes=(time.time() - t0) / 60)
        if valid_data is not None:
            r = evaluate(net, valid_data, bptt=bptt, max_windows=eval_windows,
                         emb_size=emb_size)
            entry.update(valid_bpc=r["bpc"], activity_sparsity=r["activity_sparsity"],
                         mac_reduction=r["macs"]["rnn_reduction"],
                         mac_reduction_with_decoder=r["macs"].get("total_reduction"))
        log.append(entry)
        if progress:
            print(json.dumps(entry), file=sys.stderr, flush=True)
        if on_round is not None:
            on_round(i, s, masks, entry)
    return masks, log


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sw.prune", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="trained model (sw.train or EventNet)")
    ap.add_argument("--out", required=True, help="EventNet checkpoint to write (with masks)")
    ap.add_argument("--target", type=float, default=0.9, help="final overall sparsity")
    ap.add_argument("--banks", type=int, default=0, help="P > 0: bank-balanced pruning")
    ap.add_argument("--scope", default="global", choices=SCOPES,
                    help="global: one magnitude ranking over all matrices (seed paper); "
                         "matrix: the same sparsity in every matrix")
    ap.add_argument("--rounds", type=int, default=5, help="pruning rounds")
    ap.add_argument("--schedule", default="cubic", choices=["cubic", "geometric", "linear"])
    ap.add_argument("--sparsities", default=None,
                    help="explicit comma-separated list (overrides --rounds/--schedule)")
    ap.add_argument("--steps", type=int, default=300, help="fine-tune steps after each round")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--bptt", type=int, default=100)
    ap.add_argument("--dropout", type=float, default=0.1, help="dropout on events")
    ap.add_argument("--data", default=None, help="corpus folder (default: the model's)")
    ap.add_argument("--eval-batch-size", type=int, default=32)
    ap.add_argument("--eval-windows", type=int, default=0, help="0: the whole split")
    ap.add_argument("--keep-rounds", action="store_true", help="save every round's model")
    ap.add_argument("--test", action="store_true", help="evaluate the test split at the end "
                    "(float and post-training quantized, default format)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        sparsities = ([float(s) for s in args.sparsities.split(",")] if args.sparsities else
                      sparsity_schedule(args.target, args.rounds, args.schedule))
        if any(b < a for a, b in itertools.pairwise(sparsities)):
            raise ValueError(f"sparsities must not decrease: {sparsities}")
        loaded = load_any(args.checkpoint)
        corpus = load_data(loaded, args.data)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    net = loaded.net
    net.dropout = args.dropout
    train = batchify(corpus.train, args.batch_size)
    valid = batchify(corpus.valid, args.eval_batch_size)
    emb = _emb_size(loaded)
    progress = not args.no_progress
    base = evaluate(net, valid, bptt=args.bptt, max_windows=args.eval_windows, emb_size=emb)
    print(f"dense: valid bpc {base['bpc']:.4f}, activity sparsity "
          f"{[round(a, 4) for a in base['activity_sparsity']]}", flush=True)
    print(f"schedule: {[round(s, 4) for s in sparsities]}, {args.steps} steps per round, "
          f"{'bank-balanced P=' + str(args.banks) if args.banks else 'unstructured'}, "
          f"{args.scope} magnitude ranking",
          flush=True)
    out = Path(args.out)
    meta = dict(loaded.meta)
    meta["corpus"] = str(corpus.path)
    meta["banks"] = args.banks or None

    done: list[dict] = []

    def on_round(i, s, masks, entry):
        print(f"round {i + 1}: sparsity {entry['sparsity']:.4f}, valid bpc "
              f"{entry['valid_before_ft']:.4f} before / {entry['valid_bpc']:.4f} after "
              f"fine-tuning, MAC reduction x{entry['mac_reduction']:.2f}", flush=True)
        if args.keep_rounds:
            p = out.with_name(f"{out.stem}.s{s:.3f}{out.suffix}")
            hist = list(meta.get("history", [])) + [
                {"step": "prune", "dense_valid_bpc": base["bpc"], "rounds": done + [entry],
                 "args": vars(args)}]
            save_eventnet(p, net, vocab=loaded.vocab, level=loaded.level, masks=masks,
                          meta={**meta, "history": hist,
                                "prune": {"sparsity": s, "round": i + 1}})
        done.append(entry)

    masks, log = prune(net, train, sparsities, steps=args.steps, banks=args.banks or None,
                       lr=args.lr, bptt=args.bptt, valid_data=valid,
                       eval_windows=args.eval_windows, masks=loaded.masks or None,
                       progress=progress, on_round=on_round, emb_size=emb,
                       scope=args.scope)
    weights = {n: getattr(net, n).detach() for n in net.matrix_names()}
    print(sparsity_report(weights, args.banks or None), flush=True)
    result = {"dense_valid_bpc": base["bpc"], "rounds": log, "args": vars(args)}
    if args.test:
        test = batchify(corpus.test, args.eval_batch_size)
        for name, f in (("float", None), ("quant_ptq", Format())):
            r = evaluate(net, test, bptt=args.bptt, fmt=f, max_windows=args.eval_windows,
                         emb_size=emb, progress=progress)
            result[f"test_{name}"] = {k: r[k] for k in ("bpc", "activity_sparsity", "macs")}
            print(f"test {name}: bpc {r['bpc']:.4f}", flush=True)
    meta.setdefault("history", []).append({"step": "prune", **result})
    save_eventnet(out, net, vocab=loaded.vocab, level=loaded.level, masks=masks, meta=meta)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    print(f"wrote {out} (final sparsity {mask_sparsity(masks):.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
