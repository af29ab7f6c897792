"""Shared fixtures (keep minimal)."""

from __future__ import annotations

import random

import pytest


@pytest.fixture
def tiny_corpus(tmp_path):
    """A small word corpus folder (train/valid/test) that a tiny LM learns in a few dozen
    steps: lines drawn from 5 templates of 5 distinct words each (so after a template's first
    word the rest is determined by the previous word)."""
    rng = random.Random(0)
    templates = [[f"w{5 * t + i}" for i in range(5)] for t in range(5)]
    folder = tmp_path / "corpus"
    folder.mkdir()
    for split, n in (("train", 300), ("valid", 40), ("test", 40)):
        lines = [" ".join(rng.choice(templates)) for _ in range(n)]
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder
