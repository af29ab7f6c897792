"""Text <-> token ids for bundles, without torch.

The same rules as `sw.data`: word level splits on whitespace and ends every line with
``<eos>``; char level keeps every character, newlines included. Unknown tokens map to
``<unk>``. Used by the golden-model generator and by the board host, so that text reaches
the hardware exactly as it reached the model in training.
"""

from __future__ import annotations

import math

import numpy as np

UNK, EOS = "<unk>", "<eos>"

__all__ = ["EOS", "UNK", "bundle_level", "detokenize", "log_softmax", "tokenize"]


def bundle_level(model: dict) -> str:
    level = model.get("tokens", "char")
    if level not in ("char", "word"):
        raise ValueError(f"bundle model.tokens is {level!r}; expected 'char' or 'word'")
    return level


def tokenize(text: str, vocab: list[str], level: str) -> list[int]:
    index = {tok: i for i, tok in enumerate(vocab)}
    unk = index.get(UNK, 0)
    if level == "word":
        toks = [t for line in text.splitlines() for t in (*line.split(), EOS)]
    else:
        toks = list(text)
    return [index.get(t, unk) for t in toks]


def detokenize(ids, vocab: list[str], level: str) -> str:
    if level == "word":
        return " ".join("\n" if vocab[i] == EOS else vocab[i] for i in ids)
    return "".join(vocab[i] for i in ids)


def log_softmax(logits, scale: float) -> np.ndarray:
    """Log-probabilities of integer logits in accumulator format (value = int / scale)."""
    x = np.asarray(logits, dtype=np.float64) / scale
    m = x.max()
    return x - (m + math.log(np.exp(x - m).sum()))
