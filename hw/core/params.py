"""Hardware parameters derived from a bundle: sizes, widths, memory images, the memory map.

Everything the generator needs is computed here from `hw.bundle.Bundle` alone, so the RTL
components take plain Python numbers and lists and never look at the bundle themselves.

Entry words are re-encoded for the hardware (docs/accelerator.md, "Memories"): a layer entry
becomes ``(g << (ubits + wb)) | (u << wb) | w`` instead of the bundle's ``(u*3+g) << wb | w``,
so that the lane never divides by 3. Decoder entries keep the bundle's encoding. A pointer
table holds one word per column, ``ptr[j] | ptr[j+1] << ptr_bits`` (the bundle keeps the
``columns + 1`` pointers), so that one read port gives a column's entry range.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hw.fixedpoint import bits_for

__all__ = [
    "CoreParams",
    "LayerParams",
    "MatrixImage",
    "ReadoutParams",
    "core_params",
    "memory_map",
    "weight_writes",
    "write_bus",
]


def _pow2(n: int) -> int:
    return 1 << max(0, (max(1, n) - 1).bit_length())


@dataclasses.dataclass
class MatrixImage:
    """Per-bank pointer tables and (hardware-encoded) entry words of one sparse matrix."""

    name: str
    columns: int
    ptr: list            # per bank: list of columns + 1 ints (the bundle's CSC pointers)
    ent: list            # per bank: list of entry words (at least one word)
    ent_depth: int       # entry memory depth (capacity, a power of two >= max entries)
    ptr_bits: int
    ent_bits: int
    nnz: np.ndarray      # (P, columns)

    @property
    def ptr_depth(self) -> int:
        """Words of the hardware pointer table: one per column."""
        return self.columns

    @property
    def ptr_width(self) -> int:
        """A pointer word holds the column's start and end: ``ptr[j] | ptr[j+1] << ptr_bits``."""
        return 2 * self.ptr_bits

    def ptr_words(self, bank: int, ptr_bits: int | None = None) -> list:
        """Bank ``bank``'s pointer table as the hardware holds it (`ptr_width` bits a word):
        one read gives a column's whole entry range. ``ptr_bits``: the field width of the
        accelerator the words are for (default: this image's own)."""
        p, sh = self.ptr[bank], self.ptr_bits if ptr_bits is None else ptr_bits
        return [p[j] | (p[j + 1] << sh) for j in range(self.columns)]


@dataclasses.dataclass
class LayerParams:
    index: int
    hidden: int          # H
    inputs: int          # I
    units: int           # U = ceil(H / P): local units per bank
    ubits: int           # bits of a local unit address
    persistent: bool     # ax keeps its value between steps (delta-encoded dense input)
    w: MatrixImage
    r: MatrixImage
    bx: list             # per bank: 3 lists (r, z, n) of U ints
    bh: list
    theta: list          # per bank: U ints (1 for padding units)


@dataclasses.dataclass
class ReadoutParams:
    vocab: int           # V
    rows: int            # ceil(V / P): local rows per bank
    ubits: int
    w: MatrixImage
    b: list              # per bank: list of rows ints


@dataclasses.dataclass
class CoreParams:
    fmt: object
    banks: int
    kind: str
    layers: list
    readout: ReadoutParams | None
    fifo_depth: int
    sig: list
    tanh: list


def _encode_matrix(name, img, banks, ubits, wb, layer: bool) -> MatrixImage:
    mask = (1 << wb) - 1
    ents = []
    for b in range(banks):
        idx = np.asarray(img.index[b], dtype=np.int64)
        val = np.asarray(img.value[b], dtype=np.int64)
        if layer:
            words = ((idx % 3) << (ubits + wb)) | ((idx // 3) << wb) | (val & mask)
        else:
            words = (idx << wb) | (val & mask)
        words = [int(x) for x in words] or [0]
        ents.append(words)
    depth = _pow2(max(len(e) for e in ents))
    if 2 * bits_for(depth + 1) > 32:
        raise ValueError(f"{name}: {depth} entries per bank need pointer words of "
                         f"{2 * bits_for(depth + 1)} bits, more than the 32 a run-time write "
                         "carries; use more banks or more weight sparsity")
    return MatrixImage(
        name=name, columns=img.nnz.shape[1],
        ptr=[[int(x) for x in p] for p in img.ptr], ent=ents, ent_depth=depth,
        ptr_bits=bits_for(depth + 1), ent_bits=wb + ubits + (2 if layer else 0),
        nnz=np.asarray(img.nnz))


def _per_bank(vec, banks, units, pad):
    out = []
    for b in range(banks):
        col = [int(vec[u * banks + b]) if u * banks + b < len(vec) else pad
               for u in range(units)]
        out.append(col)
    return out


def core_params(bundle, *, fifo_depth: int | None = None) -> CoreParams:
    """Derive `CoreParams` from a loaded bundle; raise ValueError for what cannot be built."""
    from hw.fixedpoint import make_tables
    fmt, banks = bundle.format, int(bundle.banks)
    if not 1 <= banks <= 64:
        raise ValueError(f"banks must be in 1..64, got {banks}")
    model = bundle.model
    layers = []
    for k in range(bundle.num_layers):
        h = bundle.hidden(k)
        i = int(model["layers"][k]["input_size"])
        units = -(-h // banks)
        ubits = bits_for(units)
        bx = np.asarray(bundle.arrays[f"l{k}.bx"]).reshape(3, h)
        bh = np.asarray(bundle.arrays[f"l{k}.bh"]).reshape(3, h)
        layers.append(LayerParams(
            index=k, hidden=h, inputs=i, units=units, ubits=ubits,
            persistent=(k == 0 and model["input_mode"] == "persistent"),
            w=_encode_matrix(f"l{k}.w", bundle.memories[f"l{k}.w"], banks, ubits,
                             fmt.weight_bits, True),
            r=_encode_matrix(f"l{k}.r", bundle.memories[f"l{k}.r"], banks, ubits,
                             fmt.weight_bits, True),
            bx=[list(g) for g in zip(*[_per_bank(bx[g], banks, units, 0) for g in range(3)])],
            bh=[list(g) for g in zip(*[_per_bank(bh[g], banks, units, 0) for g in range(3)])],
            theta=_per_bank(bundle.arrays[f"l{k}.theta"], banks, units, 1)))
    readout = None
    if model.get("readout"):
        v = int(model["vocab_size"])
        rows = -(-v // banks)
        ubits = bits_for(rows)
        readout = ReadoutParams(
            vocab=v, rows=rows, ubits=ubits,
            w=_encode_matrix("dec.w", bundle.memories["dec.w"], banks, ubits,
                             fmt.weight_bits, False),
            b=_per_bank(bundle.arrays["dec.b"], banks, rows, 0))
    if fifo_depth is None:
        fifo_depth = max(4, int(model["input_size"]) + 1)
    sig, tanh = make_tables(fmt)
    return CoreParams(fmt=fmt, banks=banks, kind=model["kind"], layers=layers, readout=readout,
                      fifo_depth=fifo_depth, sig=[int(x) for x in sig],
                      tanh=[int(x) for x in tanh])


# -- run-time weight loading -----------------------------------------------------------------

def _names(params: CoreParams):
    """(name, kind, object) in memory-id order."""
    out = []
    for lp in params.layers:
        k = lp.index
        out += [(f"l{k}.w.ptr", "ptr", lp.w), (f"l{k}.w.ent", "ent", lp.w),
                (f"l{k}.r.ptr", "ptr", lp.r), (f"l{k}.r.ent", "ent", lp.r),
                (f"l{k}.bx", "bias", lp), (f"l{k}.bh", "bias", lp),
                (f"l{k}.theta", "theta", lp)]
    if params.readout is not None:
        ro = params.readout
        out += [("dec.w.ptr", "ptr", ro.w), ("dec.w.ent", "ent", ro.w), ("dec.b", "dbias", ro)]
    return out


def mem_ids(params: CoreParams) -> dict:
    """name -> memory id (the ``mem`` field of a w_stream write)."""
    return {name: i for i, (name, _, _) in enumerate(_names(params))}


def memory_map(bundle_or_params) -> list:
    """The run-time writable memories: ordered list of (mem_id, name, bank, depth, width).

    Bias memories (``l{k}.bx``/``l{k}.bh``) are addressed ``(g << ubits) | u`` for gate g
    (0 r, 1 z, 2 n) of local unit u; their depth is reported as ``3 << ubits``.
    """
    params = bundle_or_params if isinstance(bundle_or_params, CoreParams) \
        else core_params(bundle_or_params)
    fmt, out = params.fmt, []
    for mid, (name, kind, obj) in enumerate(_names(params)):
        for b in range(params.banks):
            if kind == "ptr":
                depth, width = obj.ptr_depth, obj.ptr_width
            elif kind == "ent":
                depth, width = obj.ent_depth, obj.ent_bits
            elif kind == "bias":
                depth, width = 3 << obj.ubits, fmt.acc_bits
            elif kind == "theta":
                depth, width = obj.units, fmt.state_bits
            else:
                depth, width = obj.rows, fmt.acc_bits
            out.append((mid, name, b, depth, width))
    return out


def write_bus(params: CoreParams):
    """The layout of the run-time write chain's payload (`hw.core.wport.bus_layout`): the
    host's write narrowed to this accelerator's memory ids, banks, addresses and widths."""
    from .wport import bus_layout
    mmap = memory_map(params)
    return bus_layout(mems=max(m[0] for m in mmap) + 1, banks=params.banks,
                      addr_bits=max(bits_for(m[3]) for m in mmap),
                      data_bits=max(m[4] for m in mmap))


def weight_writes(bundle, *, like=None):
    """Yield (mem, bank, addr, data) that load ``bundle`` into an accelerator.

    ``like`` is the bundle (or `CoreParams`) the accelerator was generated from; the new
    bundle must have the same architecture (layers, sizes, P, formats) and fit its capacity
    (entries per bank <= the entry memory depth). ``data`` is the word as an unsigned 32-bit
    integer (biases are written as their low 32 bits and sign-extended by the hardware).
    """
    new = core_params(bundle)
    ref = new if like is None else (like if isinstance(like, CoreParams) else core_params(like))
    if (ref.banks, ref.fmt, [(lp.hidden, lp.inputs) for lp in ref.layers]) != \
            (new.banks, new.fmt, [(lp.hidden, lp.inputs) for lp in new.layers]):
        raise ValueError("bundle architecture differs from the generated accelerator's")
    if ref.fmt.acc_bits > 32:
        raise ValueError(f"acc_bits={ref.fmt.acc_bits} > 32: biases cannot be loaded at run time")
    yield from memory_words(new, ref)


def memory_words(new: CoreParams, ref: CoreParams | None = None):
    """(mem, bank, addr, word) of every writable memory of ``new`` (words at full width,
    biases as their two's complement in ``acc_bits``); `weight_writes` without its checks."""
    ref = ref or new
    amask = (1 << new.fmt.acc_bits) - 1
    ids = mem_ids(ref)
    refs = {name: obj for name, _, obj in _names(ref)}
    for name, kind, obj in _names(new):
        mid = ids[name]
        for b in range(new.banks):
            if kind == "ptr":      # packed in the generated accelerator's field width
                words = obj.ptr_words(b, refs[name].ptr_bits)
            elif kind == "ent":
                if len(obj.ent[b]) > refs[name].ent_depth:
                    raise ValueError(f"{name} bank {b}: {len(obj.ent[b])} entries exceed the "
                                     f"capacity {refs[name].ent_depth}")
                words = obj.ent[b]
            elif kind == "bias":
                src = obj.bx if name.endswith(".bx") else obj.bh
                for g in range(3):
                    for u in range(obj.units):
                        yield mid, b, (g << obj.ubits) | u, src[b][g][u] & amask
                continue
            elif kind == "theta":
                words = obj.theta[b]
            else:
                words = [x & amask for x in obj.b[b]]
            mask = (1 << refs[name].ptr_width) - 1 if kind == "ptr" else amask
            for addr, word in enumerate(words):
                yield mid, b, addr, int(word) & mask
