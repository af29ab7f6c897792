"""Text generation and scoring with the golden model (sw.generate, sw.tokens)."""

import math

import pytest

from hw.bundle import load_bundle
from sim.random_bundle import random_bundle
from sw.generate import generate_ids, main, score_ids
from sw.golden import Golden
from sw.tokens import detokenize, tokenize


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return load_bundle(random_bundle(tmp_path_factory.mktemp("b") / "b", layers=2, hidden=16,
                                     vocab=12, banks=4, seed=3))


def test_greedy_generation_feeds_back_top1(bundle):
    out = generate_ids(Golden(bundle), [1, 2, 3], 15)
    ref, g = [], Golden(bundle)
    for t in [1, 2]:
        g.step_token(t)
    tok = 3
    for _ in range(15):
        tok = g.step_token(tok).top1
        ref.append(tok)
    assert out == ref


def test_sampling_is_seeded(bundle):
    a = generate_ids(Golden(bundle), [1], 30, temperature=1.0, seed=7)
    b = generate_ids(Golden(bundle), [1], 30, temperature=1.0, seed=7)
    assert a == b and len(a) == 30


def test_score_matches_uniform_bound_shape(bundle):
    nll, acc = score_ids(Golden(bundle), [1, 2, 3, 4, 5, 6])
    assert 0 < nll < 10 * math.log(12) and 0 <= acc <= 1


def test_tokens_round_trip():
    vocab = ["<unk>", "<eos>", "a", "b"]
    assert tokenize("a b\nb z\n", vocab, "word") == [2, 3, 1, 3, 0, 1]
    assert detokenize([2, 3, 1], vocab, "word") == "a b \n"
    assert tokenize("ab?", ["<unk>", "a", "b"], "char") == [1, 2, 0]


def test_cli_generates_and_rejects_bad_bundle(bundle, tmp_path, capsys):
    assert main(["--bundle", str(bundle.path), "--prompt", "A", "--tokens", "5"]) == 0
    assert capsys.readouterr().out.startswith("A")
    assert main(["--bundle", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
