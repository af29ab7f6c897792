"""The export bundle (docs/bundle_format.md): writer, reader and validator.

Torch-free: `sw.export` turns a trained model into integer arrays and calls `write_bundle`;
everything in `hw` (and the golden model) starts from `load_bundle`. Both sides go through
the same packing code, and the reader re-derives every memory image from the dense arrays,
so a bundle whose files disagree with each other is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .fixedpoint import FIXED_POINT_VERSION, Format, FormatError, bits_for, make_tables

BUNDLE_VERSION = 1

__all__ = [
    "BUNDLE_VERSION",
    "BankImage",
    "Bundle",
    "BundleError",
    "load_bundle",
    "matrix_names",
    "pack_matrix",
    "write_bundle",
]


class BundleError(ValueError):
    """A bundle that cannot be used; the message names the file and the problem."""


@dataclasses.dataclass
class BankImage:
    """One matrix's block-RAM images: per bank a pointer table and an entry list."""

    ptr: list[np.ndarray]       # per bank: (columns + 1,) addresses
    ent: list[np.ndarray]       # per bank: (entries,) packed words (index << vb | value)
    index: list[np.ndarray]     # per bank: local indices of the entries (unpacked)
    value: list[np.ndarray]     # per bank: signed values of the entries (unpacked)
    nnz: np.ndarray             # (P, columns)
    index_bits: int
    value_bits: int
    ptr_bits: int

    @property
    def balanced(self) -> bool:
        return bool(np.all(self.nnz == self.nnz[:1]))

    @property
    def max_entries(self) -> int:
        return int(max(len(e) for e in self.index))


@dataclasses.dataclass
class Bundle:
    """A validated bundle in memory.

    Members
    -------
    path : the folder it was read from (None when built in memory).
    format : the fixed-point `Format`.
    model : the manifest's model section (kind, layers, vocab_size, input_mode, ...).
    banks : P, the number of memory banks / MAC lanes.
    arrays : name -> int64 numpy array (see docs/bundle_format.md).
    memories : matrix name -> `BankImage`.
    vocab : token strings (language models) or None.
    manifest : the raw manifest.
    """

    path: Path | None
    format: Format
    model: dict
    banks: int
    arrays: dict[str, np.ndarray]
    memories: dict[str, BankImage]
    vocab: list[str] | None
    manifest: dict

    @property
    def layers(self) -> list[dict]:
        return self.model["layers"]

    @property
    def num_layers(self) -> int:
        return len(self.model["layers"])

    @property
    def vocab_size(self) -> int:
        return int(self.model.get("vocab_size", 0))

    def hidden(self, layer: int) -> int:
        return int(self.model["layers"][layer]["hidden_size"])


def matrix_names(model: dict) -> list[str]:
    names = []
    for layer in range(len(model["layers"])):
        names += [f"l{layer}.w", f"l{layer}.r"]
    if model.get("readout"):
        names.append("dec.w")
    return names


def _local_rows(name: str, rows: int, banks: int) -> int:
    if name == "dec.w":
        return -(-rows // banks)
    return 3 * -(-(rows // 3) // banks)


def pack_matrix(name: str, matrix: np.ndarray, banks: int, value_bits: int) -> BankImage:
    """Split a dense integer matrix into per-bank compressed sparse columns.

    Layer matrices (3H rows, gate-major like torch.nn.GRU): row ``g*H + i`` goes to bank
    ``i % P`` at local index ``(i // P) * 3 + g``. The decoder: row ``k`` to bank ``k % P`` at
    local index ``k // P``.
    """
    rows, cols = matrix.shape
    r = np.arange(rows)
    if name == "dec.w":
        bank_of, local_of = r % banks, r // banks
    else:
        if rows % 3:
            raise BundleError(f"{name}: a layer matrix needs 3H rows, got {rows}")
        hidden = rows // 3
        gate, unit = r // hidden, r % hidden
        bank_of, local_of = unit % banks, (unit // banks) * 3 + gate
    index_bits = bits_for(_local_rows(name, rows, banks))
    mask = (1 << value_bits) - 1
    ptrs, ents, idxs, vals = [], [], [], []
    nnz = np.zeros((banks, cols), dtype=np.int64)
    for b in range(banks):
        sel = np.nonzero(bank_of == b)[0]
        order = sel[np.argsort(local_of[sel], kind="stable")]     # increasing local index
        sub = matrix[order, :]                                    # (rows_b, cols)
        nz_rows, nz_cols = np.nonzero(sub.T)                      # column-major walk
        nnz[b] = np.count_nonzero(sub, axis=0)
        index = local_of[order][nz_cols]
        value = sub.T[nz_rows, nz_cols]
        ptrs.append(np.concatenate([[0], np.cumsum(nnz[b])]).astype(np.int64))
        idxs.append(index.astype(np.int64))
        vals.append(value.astype(np.int64))
        ents.append((index.astype(np.int64) << value_bits) | (value.astype(np.int64) & mask))
    ptr_bits = bits_for(int(nnz.sum(axis=1).max()) + 1)
    return BankImage(ptrs, ents, idxs, vals, nnz, index_bits, value_bits, ptr_bits)


def _hex_lines(words: np.ndarray, bits: int) -> str:
    digits = -(-bits // 4)
    words = words if len(words) else np.zeros(1, dtype=np.int64)    # no empty memories
    return "".join(f"{int(w):0{digits}x}\n" for w in words)


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a, dtype=np.int64), allow_pickle=False)
    return buf.getvalue()


def _expected_shapes(model: dict) -> dict[str, tuple]:
    shapes = {}
    for k, layer in enumerate(model["layers"]):
        i, h = int(layer["input_size"]), int(layer["hidden_size"])
        shapes.update({f"l{k}.w": (3 * h, i), f"l{k}.r": (3 * h, h), f"l{k}.bx": (3 * h,),
                       f"l{k}.bh": (3 * h,), f"l{k}.theta": (h,)})
    if model.get("readout"):
        v, h = int(model["vocab_size"]), int(model["layers"][-1]["hidden_size"])
        shapes.update({"dec.w": (v, h), "dec.b": (v,)})
    return shapes


def _check_model(model: dict) -> None:
    try:
        layers = model["layers"]
        if not layers:
            raise BundleError("model has no layers")
        if model["kind"] not in ("lm", "rnn"):
            raise BundleError(f"model kind {model['kind']!r} is not 'lm' or 'rnn'")
        if model["input_mode"] not in ("transient", "persistent"):
            raise BundleError(f"input_mode {model['input_mode']!r} is not transient/persistent")
        if model["kind"] == "lm" and (model["input_mode"] != "transient" or not model["readout"]):
            raise BundleError("a language model needs transient (token) input and a readout")
        if int(layers[0]["input_size"]) != int(model["input_size"]):
            raise BundleError("layers[0].input_size differs from model.input_size")
        for k in range(1, len(layers)):
            if int(layers[k]["input_size"]) != int(layers[k - 1]["hidden_size"]):
                raise BundleError(f"layer {k} input_size differs from layer {k - 1} hidden_size")
        for layer in layers:
            if not 1 <= int(layer["hidden_size"]) <= 65535:
                raise BundleError(f"hidden_size {layer['hidden_size']} out of range")
    except KeyError as e:
        raise BundleError(f"manifest model section lacks key {e}") from None


def _check_ranges(arrays: dict, fmt: Format, model: dict) -> None:
    kinds = {"w": "W", "r": "W", "bx": "A", "bh": "A", "theta": "S"}
    for name, a in arrays.items():
        if name.endswith(".nnz"):
            continue
        kind = "W" if name == "dec.w" else "A" if name == "dec.b" else kinds[name.split(".")[1]]
        lo, hi = fmt.range_of(kind)
        if a.size and (a.min() < lo or a.max() > hi):
            raise BundleError(f"array {name}: values outside format {kind} range [{lo}, {hi}]")
        if name.endswith(".theta") and a.size and a.min() < 1:
            raise BundleError(f"array {name}: thresholds must be >= 1 (got {int(a.min())})")


def _check_no_wrap(arrays: dict, fmt: Format, model: dict) -> None:
    """The exporter's proof that accumulators never wrap (fixed_point.md section 3)."""
    limit = 2 ** (fmt.acc_bits - 1) - 1
    vmax = 2 ** (fmt.state_bits - 1)
    token = model["kind"] == "lm"
    pairs = []
    for k in range(len(model["layers"])):
        pairs += [(f"l{k}.w", f"l{k}.bx", fmt.one if (k == 0 and token) else vmax),
                  (f"l{k}.r", f"l{k}.bh", vmax)]
    if model.get("readout"):
        pairs.append(("dec.w", "dec.b", vmax))
    for m, b, v in pairs:
        bound = np.abs(arrays[b]) + v * np.abs(arrays[m]).sum(axis=1)
        if bound.max() > limit:
            row = int(np.argmax(bound))
            raise BundleError(
                f"{m}: row {row} could overflow the {fmt.acc_bits}-bit accumulator "
                f"(worst case {int(bound.max())} > {limit}); use wider acc_bits, fewer or "
                f"smaller weights, or a smaller state range")


def write_bundle(out_dir, *, fmt: Format, model: dict, banks: int, arrays: dict,
                 vocab: list[str] | None = None, provenance: dict | None = None,
                 overwrite: bool = False) -> Path:
    """Write a complete bundle atomically and return its path.

    ``arrays`` holds the dense integer arrays named as in docs/bundle_format.md (without the
    ``.nnz`` arrays, which are derived). Everything is validated before anything is written.
    """
    out = Path(out_dir)
    if not isinstance(banks, int) or banks < 1:
        raise BundleError(f"banks must be a positive int, got {banks!r}")
    model = dict(model)
    model.setdefault("delta_threshold", 0)
    _check_model(model)
    shapes = _expected_shapes(model)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    for name, shape in shapes.items():
        if name not in arrays:
            raise BundleError(f"array {name} missing")
        a = arrays[name]
        if not np.issubdtype(a.dtype, np.integer):
            raise BundleError(f"array {name} must be integer, got {a.dtype}")
        if a.shape != shape:
            raise BundleError(f"array {name} has shape {a.shape}, expected {shape}")
    extra = set(arrays) - set(shapes)
    if extra:
        raise BundleError(f"unknown arrays {sorted(extra)}")
    arrays = {k: v.astype(np.int64) for k, v in arrays.items()}
    _check_ranges(arrays, fmt, model)
    _check_no_wrap(arrays, fmt, model)
    if model["kind"] == "lm" and vocab is not None and len(vocab) != int(model["vocab_size"]):
        raise BundleError(f"vocab has {len(vocab)} entries, model.vocab_size is "
                          f"{model['vocab_size']}")

    files: dict[str, bytes] = {}
    manifest_arrays, memories = {}, {}
    for name, a in arrays.items():
        files[f"arrays/{name}.npy"] = _npy_bytes(a)
        manifest_arrays[name] = {"file": f"arrays/{name}.npy", "dtype": "int64",
                                 "shape": list(a.shape)}
    sig, tanh = make_tables(fmt)
    files["tables/sigmoid.hex"] = _hex_lines(sig, fmt.gate_bits).encode()
    files["tables/tanh.hex"] = _hex_lines(tanh & ((1 << fmt.state_bits) - 1),
                                          fmt.state_bits).encode()
    for name in matrix_names(model):
        img = pack_matrix(name, arrays[name], banks, fmt.weight_bits)
        files[f"arrays/{name}.nnz.npy"] = _npy_bytes(img.nnz)
        bank_files = []
        for b in range(banks):
            p, e = f"mem/{name}.b{b}.ptr.hex", f"mem/{name}.b{b}.ent.hex"
            files[p] = _hex_lines(img.ptr[b], img.ptr_bits).encode()
            files[e] = _hex_lines(img.ent[b], img.index_bits + img.value_bits).encode()
            bank_files.append({"ptr": p, "ent": e, "entries": len(img.ent[b])})
        memories[name] = {"bank_files": bank_files, "ptr_bits": img.ptr_bits,
                          "index_bits": img.index_bits, "value_bits": img.value_bits,
                          "nnz": f"arrays/{name}.nnz.npy", "balanced": img.balanced}
    if vocab is not None:
        files["vocab.json"] = json.dumps(list(vocab), ensure_ascii=False).encode()
    manifest = {
        "bundle_version": BUNDLE_VERSION,
        "fixed_point_version": FIXED_POINT_VERSION,
        "format": fmt.to_dict(),
        "model": model,
        "banks": banks,
        "arrays": manifest_arrays,
        "memories": memories,
        "files": {k: hashlib.sha256(v).hexdigest() for k, v in sorted(files.items())},
        "provenance": provenance or {},
    }
    files["manifest.json"] = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    return _atomic_write_dir(out, files, overwrite)


def _atomic_write_dir(out: Path, files: dict[str, bytes], overwrite: bool) -> Path:
    if out.exists() and not overwrite:
        raise BundleError(f"{out} exists; pass overwrite=True (--force) to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        # The manifest goes last: a folder without it is never taken for a bundle.
        for rel in sorted(files, key=lambda k: k == "manifest.json"):
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as f:
                f.write(files[rel])
                f.flush()
                os.fsync(f.fileno())
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _read_hex(path: Path, bits: int) -> np.ndarray:
    words = []
    for n, line in enumerate(path.read_text().split(), 1):
        try:
            words.append(int(line, 16))
        except ValueError:
            raise BundleError(f"{path}: line {n} is not a hex word: {line[:20]!r}") from None
    a = np.array(words, dtype=np.int64)
    if a.size and a.max() >= 2 ** bits:
        raise BundleError(f"{path}: word wider than {bits} bits")
    return a


def load_bundle(path) -> Bundle:
    """Read and validate a bundle folder; raise `BundleError` naming any problem."""
    root = Path(path)
    mpath = root / "manifest.json"
    if not root.is_dir():
        raise BundleError(f"bundle folder {root} does not exist "
                          "(export one with `python -m sw.export`)")
    if not mpath.is_file():
        raise BundleError(f"{mpath} is missing: not a bundle, or an interrupted export")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{mpath}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{mpath}: manifest must be a JSON object")
    for key, want in (("bundle_version", BUNDLE_VERSION),
                      ("fixed_point_version", FIXED_POINT_VERSION)):
        if manifest.get(key) != want:
            raise BundleError(f"{mpath}: {key} is {manifest.get(key)!r}, this reader supports "
                              f"{want}; re-export the bundle with this version of the tools")
    try:
        fmt = Format.from_dict(manifest["format"])
        model, banks = manifest["model"], manifest["banks"]
        listed = manifest["files"]
        array_entries = manifest["arrays"]
    except (KeyError, TypeError, FormatError) as e:
        raise BundleError(f"{mpath}: bad or missing section: {e}") from None
    _check_model(model)
    if not isinstance(banks, int) or banks < 1:
        raise BundleError(f"{mpath}: banks must be a positive integer, got {banks!r}")

    for rel, digest in listed.items():
        fpath = root / rel
        if not fpath.resolve().is_relative_to(root.resolve()):
            raise BundleError(f"{mpath}: file {rel!r} lies outside the bundle")
        if not fpath.is_file():
            raise BundleError(f"{fpath}: listed in the manifest but missing")
        if hashlib.sha256(fpath.read_bytes()).hexdigest() != digest:
            raise BundleError(f"{fpath}: checksum mismatch (file changed or truncated)")

    shapes = _expected_shapes(model)
    arrays = {}
    for name, shape in shapes.items():
        entry = array_entries.get(name)
        if entry is None or entry.get("file") not in listed:
            raise BundleError(f"{mpath}: array {name} missing or not checksummed")
        try:
            a = np.load(root / entry["file"], allow_pickle=False)
        except ValueError as e:
            raise BundleError(f"{root / entry['file']}: unreadable array ({e})") from None
        if a.dtype != np.int64 or a.shape != shape:
            raise BundleError(f"{root / entry['file']}: dtype {a.dtype} shape {a.shape}, "
                              f"expected int64 {shape}")
        arrays[name] = a
    _check_ranges(arrays, fmt, model)
    _check_no_wrap(arrays, fmt, model)

    sig, tanh = make_tables(fmt)
    for rel, table, bits in (("tables/sigmoid.hex", sig, fmt.gate_bits),
                             ("tables/tanh.hex", tanh, fmt.state_bits)):
        if rel not in listed:
            raise BundleError(f"{mpath}: {rel} not listed")
        got = _read_hex(root / rel, bits)
        if not np.array_equal(got, table & ((1 << bits) - 1)):
            raise BundleError(f"{root / rel}: table differs from the contract's table")

    memories = {}
    for name in matrix_names(model):
        img = pack_matrix(name, arrays[name], banks, fmt.weight_bits)
        meta = manifest.get("memories", {}).get(name)
        if meta is None or len(meta.get("bank_files", [])) != banks:
            raise BundleError(f"{mpath}: memory images of {name} missing for {banks} banks")
        for b, bf in enumerate(meta["bank_files"]):
            for kind, want, bits in (("ptr", img.ptr[b], img.ptr_bits),
                                     ("ent", img.ent[b], img.index_bits + img.value_bits)):
                if bf[kind] not in listed:
                    raise BundleError(f"{mpath}: {bf[kind]} not checksummed")
                got = _read_hex(root / bf[kind], bits)
                want = want if len(want) else np.zeros(1, dtype=np.int64)
                if not np.array_equal(got, want):
                    raise BundleError(f"{root / bf[kind]}: memory image disagrees with "
                                      f"arrays/{name}.npy")
        memories[name] = img

    vocab = None
    if "vocab.json" in listed:
        vocab = json.loads((root / "vocab.json").read_text())
        if model["kind"] == "lm" and len(vocab) != int(model["vocab_size"]):
            raise BundleError(f"{root / 'vocab.json'}: {len(vocab)} tokens, "
                              f"model.vocab_size is {model['vocab_size']}")
    return Bundle(root, fmt, model, banks, arrays, memories, vocab, manifest)
