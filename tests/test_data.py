"""Corpus loading, vocabulary and batching, including the error cases."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from sw import data
from sw.data import DataError, Vocab, batchify, get_batch, load_corpus, num_windows, tokenize


def write(folder, **splits):
    folder.mkdir(exist_ok=True)
    for name, text in splits.items():
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    return folder


def test_word_level_eos_and_unknown(tmp_path):
    d = write(tmp_path / "c", train="a b a\n c a\n", valid="a z\n", test="b\n")
    c = load_corpus(str(d), "word")
    assert c.vocab.tokens[:2] == ["<unk>", "<eos>"]
    assert c.vocab.tokens[2] == "a"  # most frequent first
    assert c.vocab.decode(c.train.tolist()) == ["a", "b", "a", "<eos>", "c", "a", "<eos>"]
    assert c.vocab.decode(c.valid.tolist()) == ["a", "<unk>", "<eos>"]  # z unseen in train


def test_vocab_cap(tmp_path):
    d = write(tmp_path / "c", train="a a a b b c d\n", valid="d\n", test="c\n")
    c = load_corpus(str(d), "word", vocab_cap=4)
    assert c.vocab.tokens == ["<unk>", "<eos>", "a", "b"]
    assert c.valid.tolist() == [0, 1] and c.test.tolist() == [0, 1]
    with pytest.raises(DataError, match="cap 2 leaves no room"):
        load_corpus(str(d), "word", vocab_cap=2)


def test_char_level(tmp_path):
    d = write(tmp_path / "c", train="ab a\nb", valid="a\n", test="q\n")
    c = load_corpus(str(d), "char")
    assert c.vocab.tokens[0] == "<unk>" and "\n" in c.vocab.tokens and " " in c.vocab.tokens
    assert "".join(c.vocab.decode(c.train.tolist())) == "ab a\nb\n"  # final newline added
    assert c.vocab.decode(c.test.tolist()) == ["<unk>", "\n"]


def test_vocab_json_roundtrip_and_checks():
    v = Vocab.build(["x", "y", "x"], "word")
    assert Vocab.from_json(v.to_json()).tokens == v.tokens
    with pytest.raises(DataError, match="duplicate"):
        Vocab(["<unk>", "a", "a"], "word")
    with pytest.raises(DataError, match="start with"):
        Vocab(["a"], "word")


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="not found.*--data DIR"):
        load_corpus(str(tmp_path / "nope"), "word")
    d = write(tmp_path / "c", train="a b\n", valid="a\n")
    with pytest.raises(DataError, match=r"test\.txt not found"):
        load_corpus(str(d), "word")
    write(d, test="   \n\n")
    with pytest.raises(DataError, match=r"test\.txt is empty"):
        load_corpus(str(d), "word")
    with pytest.raises(DataError, match="level"):
        tokenize(d / "train.txt", "byte")


def test_default_folder_env(tmp_path, monkeypatch):
    d = write(tmp_path / "env", train="a\n", valid="a\n", test="a\n")
    monkeypatch.setenv("EGRU_DATA", str(d))
    assert load_corpus(None, "word").path == d
    monkeypatch.delenv("EGRU_DATA")
    assert data.default_data_dir().parts[-3:] == ("shared", "data", "wt2-proxy")


def test_download_offline_names_data_option(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setenv("EGRU_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match="cannot download ptb.*--data DIR"):
        load_corpus("ptb", "word")


def test_download_checksum(tmp_path, monkeypatch):
    class Resp:
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def read(self):
            return b"tampered\n"

    monkeypatch.setenv("EGRU_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda *a, **k: Resp())
    with pytest.raises(DataError, match="does not match"):
        data.download("ptb", ("valid",))
    assert not (tmp_path / "cache" / "ptb" / "valid.txt").exists()


def test_batchify_and_windows():
    src = torch.arange(23)
    b = batchify(src, 4)  # (5, 4): column j is the contiguous stream 5j .. 5j+4
    assert b.shape == (5, 4) and b[:, 1].tolist() == [5, 6, 7, 8, 9]
    x, y = get_batch(b, 0, 3)
    assert torch.equal(y, b[1:4]) and torch.equal(x, b[0:3])
    x, y = get_batch(b, 3, 3)
    assert x.shape[0] == 1 and torch.equal(y, b[4:5])
    assert num_windows(b, 3) == 2
    with pytest.raises(DataError, match="too few"):
        batchify(torch.arange(5), 4)
