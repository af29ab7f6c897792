"""Export a trained (pruned, QAT fine-tuned) model as a bundle (docs/bundle_format.md).

    python -m sw.export --checkpoint runs/x/qat.safetensors --out models/default --banks 8

The checkpoint may be an ``EventNet`` checkpoint written by ``sw.prune`` / ``sw.finetune``
(layer 0 already folded) or a float LM checkpoint of ``sw.train`` (folded here). Every
quantity is quantized by the contract's rule ``floor(x * 2**f + 0.5)``; weights (and biases,
fixed_point.md section 3) saturate and the count is reported; thresholds and any other value
that does not fit its format are refused, as are NaN / inf. ``hw.bundle.write_bundle`` then
validates everything (ranges, the accumulator no-wrap bound) and writes atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from hw.bundle import BundleError, write_bundle
from hw.fixedpoint import Format, FormatError, quantize

from .quant import EventNet, project_weights_

__all__ = ["ExportError", "export_arrays", "export_bundle", "main"]


class ExportError(ValueError):
    """A model that cannot be exported; the message names the tensor and the problem."""


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy()


def export_arrays(net: EventNet, fmt: Format) -> tuple[dict[str, np.ndarray], dict]:
    """The bundle's integer arrays of ``net`` and a report (saturation counts per array).

    Equal to ``net.quantized_params(fmt)`` times the binary-point scales (tests check it).
    """
    wb, wf, ab, af = fmt.weight_bits, fmt.weight_frac, fmt.acc_bits, fmt.acc_frac
    src = {}
    for k in range(net.num_layers):
        src[f"l{k}.w"] = (f"weight_ih_l{k}", "W")
        src[f"l{k}.r"] = (f"weight_hh_l{k}", "W")
        src[f"l{k}.bx"] = (f"bias_ih_l{k}", "A")
        src[f"l{k}.bh"] = (f"bias_hh_l{k}", "A")
        src[f"l{k}.theta"] = (f"threshold_l{k}", "S")
    if net.readout:
        src["dec.w"] = ("embedding", "W")
        src["dec.b"] = ("decoder_bias", "A")
    arrays, saturated = {}, {}
    for name, (param, kind) in src.items():
        t = getattr(net, param)
        if name.endswith(".theta"):
            t = net.theta(int(name[1:name.index(".")]))
        x = _np(t)
        if not np.all(np.isfinite(x)):
            bad = int((~np.isfinite(x)).sum())
            raise ExportError(f"{param}: {bad} NaN/inf values; the model cannot be exported "
                              "(training diverged?)")
        bits, frac = {"W": (wb, wf), "A": (ab, af), "S": (fmt.state_bits, fmt.state_frac)}[kind]
        if kind == "S":                      # thresholds: refuse what does not fit
            try:
                q = quantize(x, bits, frac, saturate=False)
            except ValueError as e:
                raise ExportError(f"{param}: thresholds do not fit format S "
                                  f"Q({bits},{frac}): {e}") from None
            q = np.maximum(q, 1)             # >= 1 LSB, as sw.quant computes it
        else:                                # weights and biases saturate (the contract)
            raw = np.floor(x * 2.0 ** frac + 0.5)
            q = quantize(x, bits, frac, saturate=True)
            n = int((raw != q).sum())
            if n:
                saturated[name] = n
        arrays[name] = q.astype(np.int64)
    report = {"saturated": saturated,
              "saturated_total": int(sum(saturated.values())),
              "weights_total": int(sum(a.size for n, a in arrays.items()
                                       if n.endswith((".w", ".r"))))}
    return arrays, report


def export_bundle(net: EventNet, out, *, fmt: Format | None = None, banks: int = 8,
                  vocab: list[str] | None = None, tokens: str = "char",
                  provenance: dict | None = None, overwrite: bool = False):
    """Quantize ``net`` and write the bundle to ``out`` atomically; returns (path, report)."""
    fmt = fmt or Format()
    arrays, report = export_arrays(net, fmt)
    layers, prev = [], net.input_size
    for h in net.hidden_sizes:
        layers.append({"input_size": prev, "hidden_size": h})
        prev = h
    model = {"kind": net.kind, "input_size": net.input_size,
             "input_mode": "transient" if net.kind == "lm" else "persistent",
             "layers": layers, "readout": net.readout}
    if net.kind == "lm":
        model.update(vocab_size=net.input_size, tokens=tokens)
    else:
        model["delta_threshold"] = int(quantize(net.delta_threshold, fmt.state_bits,
                                                fmt.state_frac, saturate=False))
    prov = dict(provenance or {})
    prov["export"] = {"saturated_weights": report["saturated"],
                      "saturated_total": report["saturated_total"]}
    try:
        path = write_bundle(out, fmt=fmt, model=model, banks=banks, arrays=arrays,
                            vocab=vocab, provenance=prov, overwrite=overwrite)
    except BundleError as e:
        raise ExportError(f"cannot write bundle {out}: {e}") from e
    return path, report


def _format_from_args(args) -> Format:
    keys = ("weight_bits", "weight_frac", "state_bits", "state_frac", "acc_bits", "pre_bits",
            "pre_frac", "gate_bits", "gate_frac", "table_bits", "table_range_log2")
    d = Format().to_dict()
    if args.format_json:
        d.update(json.loads(Path(args.format_json).read_text()))
    for key in keys:
        v = getattr(args, key)
        if v is not None:
            d[key] = v
    return Format.from_dict(d)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sw.export", description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True,
                    help="EventNet checkpoint (sw.prune / sw.finetune) or float LM (sw.train)")
    ap.add_argument("--out", required=True, help="bundle folder to write (atomically)")
    ap.add_argument("--banks", type=int, default=8, help="P, memory banks / MAC lanes")
    ap.add_argument("--force", action="store_true", help="replace an existing bundle")
    ap.add_argument("--format-json", help="JSON file with fixed-point format keys")
    ap.add_argument("--no-project", action="store_true",
                    help="do not project weights first (sw.quant.project_weights_): weights "
                         "beyond format W then saturate, and kept weights may round to 0")
    for key in ("weight_bits", "weight_frac", "state_bits", "state_frac", "acc_bits",
                "pre_bits", "pre_frac", "gate_bits", "gate_frac", "table_bits",
                "table_range_log2"):
        ap.add_argument("--" + key.replace("_", "-"), type=int, default=None,
                        help=f"fixed-point format: {key} (default {getattr(Format(), key)})")
    args = ap.parse_args(argv)
    from .finetune import load_any
    try:
        fmt = _format_from_args(args)
        loaded = load_any(args.checkpoint)
        net = loaded.net.double().eval()
        saved_fmt = loaded.meta.get("qat_format")
        if saved_fmt and Format.from_dict(saved_fmt) != fmt:
            print(f"warning: the model was QAT fine-tuned for format {saved_fmt}, "
                  f"exporting with {fmt.to_dict()}", file=sys.stderr)
        proj = {"clamped": 0, "bumped": 0}
        if not args.no_project:
            proj = project_weights_(net, fmt, loaded.masks)
            print(f"projected weights onto format W: {proj['clamped']} clamped to its range, "
                  f"{proj['bumped']} kept weights raised to 1 LSB (QAT fine-tuned models: 0)")
        prov = {"checkpoint": str(args.checkpoint), "source": loaded.meta,
                "projection": proj}
        path, report = export_bundle(net, args.out, fmt=fmt, banks=args.banks,
                                     vocab=loaded.vocab, tokens=loaded.level or "char",
                                     provenance=prov, overwrite=args.force)
    except (ExportError, FormatError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    size = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
    print(f"wrote {path} ({size / 1024:.0f} KiB); saturated weights: "
          f"{report['saturated_total']} of {report['weights_total']} "
          f"{report['saturated'] or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
