"""Scenarios for the accelerator testbench: the command sequence and the golden expectation.

A scenario (a JSON-able dict) says what to feed the accelerator:

- ``tokens``: a list of token ids (language models), or ``text`` + ``ntok``: a text file
  tokenized with the bundle's vocab.json;
- ``dense``: ``{"steps": n, "amp": a, "hold": p}`` random dense inputs (persistent models,
  delta-encoded by the golden model's encoder; ``hold`` = probability an input keeps its
  value), or ``events``: a list of per-step event lists for transient non-LM models;
- ``resets``: step numbers before which a RESET is sent;
- ``gap``: probability of an idle cycle before each command; ``bp``: probability that the
  testbench holds ``o_stream.ready`` / ``o_trace.ready`` low in a cycle;
- ``emit_logits`` (default 1), ``seed``.
"""

from __future__ import annotations

import numpy as np

from sw.golden import Golden

__all__ = ["expand", "tokenize_text"]


def tokenize_text(bundle, path, ntok: int) -> list[int]:
    """Tokenize a text file with the bundle's vocab (char: each char; word: whitespace words
    and ``<eos>`` per line); unknown -> ``<unk>`` if present, else skipped."""
    vocab = bundle.vocab or []
    index = {s: i for i, s in enumerate(vocab)}
    unk = index.get("<unk>")
    word = bundle.model.get("tokens") == "word"
    out: list[int] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            pieces = (line.split() + ["<eos>"]) if word else list(line)
            for p in pieces:
                i = index.get(p, unk)
                if i is not None:
                    out.append(i)
                    if len(out) >= ntok:
                        return out
    return out


def expand(bundle, scenario: dict):
    """Return (steps, expected): steps are ('token', t) / ('events', [(j, v)]) / ('reset',);
    expected[k] is the golden `StepTrace` of the k-th non-reset step."""
    rng = np.random.default_rng(scenario.get("seed", 0))
    g = Golden(bundle)
    fmt = bundle.format
    raw: list = []
    if "text" in scenario:
        raw = [("token", t) for t in tokenize_text(bundle, scenario["text"], scenario["ntok"])]
    elif "tokens" in scenario:
        raw = [("token", int(t)) for t in scenario["tokens"]]
    elif "dense" in scenario:
        d = scenario["dense"]
        n_in = bundle.model["input_size"]
        amp = int(d.get("amp", fmt.one))
        x = np.zeros(n_in, dtype=np.int64)
        for _ in range(d["steps"]):
            new = rng.integers(-amp, amp + 1, size=n_in)
            keep = rng.random(n_in) < d.get("hold", 0.5)
            x = np.where(keep, x, new)
            raw.append(("dense", x.copy()))
    elif "events" in scenario:
        raw = [("events", [(int(j), int(v)) for j, v in evs]) for evs in scenario["events"]]
    resets = set(scenario.get("resets", []))
    steps, expected = [], []
    for k, s in enumerate(raw):
        if k in resets:
            steps.append(("reset",))
            g.reset()
        if s[0] == "token":
            expected.append(g.step_token(s[1]))
            steps.append(s)
        elif s[0] == "dense":
            evs = g.encode_deltas(s[1])
            expected.append(g.step_events(evs))
            steps.append(("events", evs))
        else:
            expected.append(g.step_events(s[1]))
            steps.append(s)
    return steps, expected
