"""Generate text and score files with the integer golden model of a bundle.

    python -m sw.generate --bundle models/default --prompt "The " --tokens 200
    python -m sw.generate --bundle models/default --score ../shared/data/wt2-proxy/test.txt

Greedy decoding feeds back the top-1 token, which is exactly what the accelerator returns,
so the RTL simulation (sim/cocotb_accel) and a board (sw.host) must produce the same text
token for token. Torch-free.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from pathlib import Path

import numpy as np

from hw.bundle import Bundle, BundleError, load_bundle
from sw.golden import Golden
from sw.tokens import bundle_level, detokenize, log_softmax, tokenize

DEFAULT_BUNDLE = Path(__file__).resolve().parent.parent / "models" / "default"

__all__ = ["encode_prompt", "generate_ids", "load_lm_bundle", "main", "score_ids"]


def load_lm_bundle(path) -> Bundle:
    """A validated language-model bundle with a vocabulary; `BundleError` otherwise."""
    bundle = load_bundle(path)
    if bundle.model["kind"] != "lm" or bundle.vocab is None:
        raise BundleError(f"{path} is not a language-model bundle with a vocab.json")
    return bundle


def encode_prompt(text: str, bundle: Bundle) -> list[int]:
    """Token ids of a prompt; at word level without the ``<eos>`` the user did not type."""
    level = bundle_level(bundle.model)
    ids = tokenize(text, bundle.vocab, level)
    if level == "word" and ids and bundle.vocab[ids[-1]] == "<eos>" and not text.endswith("\n"):
        ids = ids[:-1]                        # splitlines() added it
    return ids


def generate_ids(golden: Golden, prompt: list[int], n: int, *, temperature: float = 0.0,
                 seed: int = 0) -> list[int]:
    """Feed ``prompt`` then ``n`` tokens chosen from the model's own logits.

    ``temperature == 0`` is greedy (the hardware's top-1); otherwise samples from the
    softmax of the integer logits with a seeded generator.
    """
    if not prompt:
        raise ValueError("the prompt must hold at least one token")
    rng = np.random.default_rng(seed)
    scale = float(2 ** golden.fmt.acc_frac)
    out = []
    trace = None
    for t in prompt:
        trace = golden.step_token(t)
    for _ in range(n):
        if temperature > 0:
            p = np.exp(log_softmax(trace.logits, scale * temperature))
            nxt = int(rng.choice(len(p), p=p / p.sum()))
        else:
            nxt = trace.top1
        out.append(nxt)
        trace = golden.step_token(nxt)
    return out


def score_ids(golden: Golden, ids: list[int]) -> tuple[float, float]:
    """Mean negative log-likelihood (nats) and top-1 accuracy of next-token prediction."""
    scale = float(2 ** golden.fmt.acc_frac)
    nll, hits = 0.0, 0
    for cur, nxt in itertools.pairwise(ids):
        trace = golden.step_token(cur)
        nll -= log_softmax(trace.logits, scale)[nxt]
        hits += trace.top1 == nxt
    n = max(1, len(ids) - 1)
    return nll / n, hits / n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sw.generate", description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    ap.add_argument("--prompt", default="The ")
    ap.add_argument("--tokens", type=int, default=200, help="tokens to generate")
    ap.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (top-1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--score", type=Path, metavar="FILE",
                    help="instead of generating, score FILE (bits per char / perplexity)")
    ap.add_argument("--max-tokens", type=int, default=5000, help="tokens of FILE to score")
    args = ap.parse_args(argv)
    if args.tokens < 0 or args.max_tokens < 2:
        ap.error("--tokens must be >= 0 and --max-tokens >= 2")
    try:
        bundle = load_lm_bundle(args.bundle)
    except BundleError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    level = bundle_level(bundle.model)
    golden = Golden(bundle)
    if args.score:
        if not args.score.is_file():
            print(f"error: {args.score} is not a file", file=sys.stderr)
            return 2
        ids = tokenize(args.score.read_text(encoding="utf-8"), bundle.vocab, level)
        ids = ids[:args.max_tokens]
        nll, acc = score_ids(golden, ids)
        unit = f"bpc {nll / math.log(2):.4f}" if level == "char" else f"ppl {math.exp(nll):.2f}"
        print(f"{args.score}: {len(ids)} tokens, {unit}, top-1 accuracy {acc:.4f} "
              "(integer golden model)")
        return 0
    prompt = encode_prompt(args.prompt, bundle)
    if not prompt:
        print("error: the prompt must hold at least one token", file=sys.stderr)
        return 2
    out = generate_ids(golden, prompt, args.tokens, temperature=args.temperature,
                       seed=args.seed)
    sys.stdout.write(args.prompt + detokenize(out, bundle.vocab, level) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
