"""Generate the accelerator's Verilog and memory images from a bundle.

    python -m hw.generate --bundle models/default --out build/gen [--trace]

Writes ``top.v`` (memory contents are embedded as initial values), ``mem/*.hex`` (the
hardware-encoded images of every run-time writable memory, one word per line, as loaded
through ``w_stream``), ``memory_map.json`` and ``summary.json``, and prints a summary of
the resources by count.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from pathlib import Path

from sw.atomic import atomic_write_text

__all__ = ["generate", "main", "resource_summary"]

DEFAULT_BUNDLE = "models/default"


def resource_summary(bundle, params) -> dict:
    """Memories and multipliers of the generated core. The memory list is the fit check's
    (`hw.build.fit.memories`), without the board top's own: one list, so the two cannot
    drift apart. ``count`` is copies: banks, or read ports where a memory has two."""
    from hw.build.fit import memories
    mems = [m for m in memories(bundle, params=params)[0] if m.part == "core"]
    mults = params.banks * (3 * len(params.layers) + (params.readout is not None))
    return {"banks": params.banks, "layers": [lp.hidden for lp in params.layers],
            "memories": [{"name": m.name, "count": m.count, "depth": m.depth,
                          "width": m.width} for m in mems],
            "memory_count": sum(m.count for m in mems),
            "memory_bits": sum(m.count * m.depth * m.width for m in mems),
            "multipliers": mults}


_TIME0 = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;$",
                    re.MULTILINE)


_CONST_ALWAYS = re.compile(r"^(\s*)always @\*\n(\s+)([^\n]*=[^\n]*;)$", re.MULTILINE)


def _wrap_const(c, *, dump):
    return (f"{c.group(1)}always @* begin\n{c.group(2)}if ({dump}) begin end\n"
            f"{c.group(2)}{c.group(3)}\n{c.group(1)}end")


def icarus_time0_fix(text: str) -> str:
    """Make Yosys' time-0 evaluation of ``always @*`` blocks happen in Icarus Verilog.

    Yosys triggers every combinational block once at time 0 through a register initialised
    to 0; Icarus applies that initialiser without an event, and blocks without inputs (a
    constant assignment) have no event at all, so such outputs stay X. Under ``ifdef
    EGRU_TIME0`` (sim.runner defines it for Icarus) the register is toggled with ``#0`` once
    all processes wait, and single-statement blocks are made sensitive to it. The logic is
    unchanged; synthesis never sees the ``#0``.
    """
    out = []
    for chunk in re.split(r"(?=^module )", text, flags=re.MULTILINE):
        mo = _TIME0.search(chunk)
        if mo:
            chunk = _CONST_ALWAYS.sub(functools.partial(_wrap_const, dump=mo.group(2)), chunk)
            chunk = _TIME0.sub(
                lambda t: f"{t.group(0)}\n`ifdef EGRU_TIME0\n{t.group(1)}initial #0 "
                          f"{t.group(2)} = 1'b1;\n`endif", chunk)
        out.append(chunk)
    return "".join(out)


def generate(bundle, out_dir, *, trace: bool = False, name: str = "top") -> dict:
    """Write the Verilog and the memory images of ``bundle`` to ``out_dir``; return the
    summary dict."""
    from amaranth.back import verilog

    from hw.core import Accelerator, core_params, memory_map

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    params = core_params(bundle)
    top = Accelerator(params, trace=trace)
    # each file atomically: a run stopped midway leaves whole files (old or new), never a
    # truncated image that a later load or simulation would take for a model
    atomic_write_text(out / f"{name}.v", icarus_time0_fix(verilog.convert(top, name=name)))
    mem_dir = out / "mem"
    mem_dir.mkdir(exist_ok=True)
    from hw.core.params import memory_words
    images: dict[tuple[int, int], dict[int, int]] = {}
    for mid, bank, addr, word in memory_words(params):
        images.setdefault((mid, bank), {})[addr] = word
    mmap = memory_map(params)
    for mid, mname, bank, depth, width in mmap:
        words = images.get((mid, bank), {})
        digits = -(-width // 4)
        mask = (1 << width) - 1
        lines = [f"{words.get(a, 0) & mask:0{digits}x}\n" for a in range(depth)]
        atomic_write_text(mem_dir / f"{mname}.b{bank}.hex", "".join(lines))
    atomic_write_text(out / "memory_map.json", json.dumps(
        [{"mem": mid, "name": n, "bank": b, "depth": d, "width": w}
         for mid, n, b, d, w in mmap], indent=1) + "\n")
    summary = resource_summary(bundle, params)
    summary.update(top=name, trace=trace, acc_bits=params.fmt.acc_bits,
                   state_bits=params.fmt.state_bits)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hw.generate", description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", default=DEFAULT_BUNDLE, help=f"bundle folder ({DEFAULT_BUNDLE})")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--trace", action="store_true", help="add the o_trace port")
    ap.add_argument("--name", default="top", help="Verilog module name")
    args = ap.parse_args(argv)
    from hw.bundle import BundleError, load_bundle
    try:
        bundle = load_bundle(args.bundle)
    except BundleError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    s = generate(bundle, args.out, trace=args.trace, name=args.name)
    print(f"wrote {Path(args.out) / (args.name + '.v')}: P={s['banks']} banks, "
          f"layers {s['layers']}")
    print(f"{'memory':<16}{'count':>6}{'depth':>8}{'width':>7}")
    for mm in s["memories"]:
        print(f"{mm['name']:<16}{mm['count']:>6}{mm['depth']:>8}{mm['width']:>7}")
    print(f"memories: {s['memory_count']} ({s['memory_bits']} bits); "
          f"multipliers: {s['multipliers']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
