"""Build report: resources and Fmax from nextpnr, cycles per token, throughput.

Written after every build as ``report.json`` and ``report.md`` in the output folder.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np

from sw.atomic import atomic_write_text

__all__ = [
    "cycles_per_token",
    "dense_macs",
    "make_report",
    "parse_nextpnr_report",
    "write_report",
]

#: nextpnr cell types -> report rows, per family.
RESOURCE_ROWS = {
    "ecp5": [("LUT4", "TRELLIS_COMB"), ("FF", "TRELLIS_FF"), ("LUT RAM", "TRELLIS_RAMW"),
             ("DSP (MULT18X18D)", "MULT18X18D"), ("BRAM (DP16KD)", "DP16KD"),
             ("PLL (EHXPLLL)", "EHXPLLL"), ("I/O", "TRELLIS_IO")],
    "ice40": [("LUT4", "ICESTORM_LC"), ("BRAM (SB_RAM40_4K)", "ICESTORM_RAM"),
              ("DSP (SB_MAC16)", "ICESTORM_DSP"), ("SPRAM", "ICESTORM_SPRAM"),
              ("I/O", "SB_IO")],
}


def parse_nextpnr_report(path) -> dict:
    """Utilization, Fmax per clock and the critical path from nextpnr's --report JSON."""
    data = json.loads(Path(path).read_text())
    util = {k: {"used": v.get("used", 0), "available": v.get("available", 0)}
            for k, v in data.get("utilization", {}).items()}
    fmax = {clk: {"achieved_mhz": v.get("achieved"), "constraint_mhz": v.get("constraint")}
            for clk, v in data.get("fmax", {}).items()}
    paths = []
    for cp in data.get("critical_paths", []):
        steps = cp.get("path", [])
        logic = sum(s.get("delay", 0.0) for s in steps if s.get("type") != "routing")
        routing = sum(s.get("delay", 0.0) for s in steps if s.get("type") == "routing")
        start = steps[0]["from"] if steps else {}
        end = steps[-1]["to"] if steps else {}
        paths.append({
            "from": cp.get("from"), "to": cp.get("to"),
            "delay_ns": round(logic + routing, 3), "logic_ns": round(logic, 3),
            "routing_ns": round(routing, 3), "levels": sum(
                1 for s in steps if s.get("type") == "logic"),
            "start": f"{start.get('cell', '?')}.{start.get('port', '?')}",
            "end": f"{end.get('cell', '?')}.{end.get('port', '?')}",
            "cells": [(s["to"].get("cell") or "")[:100] for s in steps
                      if s.get("type") in ("logic", "clk-to-q") and "to" in s][:12],
        })
    return {"utilization": util, "fmax": fmax, "critical_paths": paths,
            "late_blocks": late_blocks(data), "late_from_bram": late_from_bram(data)}


def _period_ns(data: dict) -> float | None:
    """The tightest clock period of nextpnr's report, or None without a constraint."""
    targets = [v.get("constraint") for v in data.get("fmax", {}).values() if v.get("constraint")]
    return 1e3 / max(targets) if targets else None


def _arrival(endpoint: dict) -> float:
    delay = endpoint.get("delay", 0.0)            # nextpnr 0.7+: [min, max] arrival
    return float(max(delay) if isinstance(delay, list) else delay)


#: read-data ports of block RAMs: the ECP5 DP16KD, the iCE40 SB_RAM40_4K
BRAM_READ_PORT = re.compile(r"^(DO[AB]\d+|RDATA_\d+)$")


def late_from_bram(data: dict) -> dict | None:
    """Endpoints whose net comes straight from a block RAM's read data, no logic between
    (``--detailed-timing-report``): how many, how many are late, the latest arrival. Such a
    path is the RAM's clock-to-out and one net: without the DP16KD's output register, which Yosys does not infer, that
    clock-to-out is most of a 125 MHz period (`bench.bench_ebr`). None without data."""
    nets = data.get("detailed_net_timings") or []
    period = _period_ns(data)
    if not nets or period is None:
        return None
    late = total = 0
    worst = 0.0
    for net in nets:
        if not BRAM_READ_PORT.match(str(net.get("port", ""))):
            continue
        for ep in net.get("endpoints", []):
            a = _arrival(ep)
            total += 1
            late += a > period
            worst = max(worst, a)
    return {"endpoints": total, "late": late, "worst_ns": round(worst, 3)}


def late_blocks(data: dict, top: int = 12) -> list:
    """Where the late endpoints are, from nextpnr's ``detailed_net_timings`` (present with
    ``--pnr-opts=--detailed-timing-report``): per block (a cell's hierarchy to three levels
    below ``design``, lane and bank numbers folded to ``#``) the endpoints whose arrival is
    later than the tightest clock period, and the latest arrival. One critical path names
    one net; this names every part of the design that misses the target. [] without data."""
    nets = data.get("detailed_net_timings") or []
    period = _period_ns(data)
    if not nets or period is None:
        return []
    blocks = {}
    for net in nets:
        for ep in net.get("endpoints", []):
            parts = str(ep.get("cell", "?")).split(".")
            depth = 4 if parts[0] == "design" else 3
            key = re.sub(r"\d+", "#", ".".join(parts[:depth]))
            key = re.sub(r"_(TRELLIS|LUT4|CCU2C|PFUMX|L6MUX|DP16KD|MULT18X18D).*", "", key)
            b = blocks.setdefault(key, {"block": key, "endpoints": 0, "late": 0, "worst_ns": 0.0})
            delay = _arrival(ep)
            b["endpoints"] += 1
            b["late"] += delay > period
            b["worst_ns"] = round(max(b["worst_ns"], delay), 3)
    ranked = sorted(blocks.values(), key=lambda b: (-b["worst_ns"], b["block"]))
    return [b for b in ranked if b["late"]][:top]


def dense_macs(bundle) -> int:
    """MACs of one dense step: 3H(I + H) per layer plus the V x H readout."""
    total = 0
    for layer in bundle.model["layers"]:
        h, i = int(layer["hidden_size"]), int(layer["input_size"])
        total += 3 * h * (i + h)
    if bundle.model.get("readout"):
        total += bundle.vocab_size * int(bundle.model["layers"][-1]["hidden_size"])
    return total


def _activity(bundle, given=None) -> tuple[float, str]:
    if given is not None:
        return float(given), "given with --activity"
    prov = bundle.manifest.get("provenance", {}) or {}
    for key in ("activity", "activity_density"):
        v = _find(prov, key)
        if isinstance(v, (int, float)) and 0 <= v <= 1:
            return float(v), f"provenance {key}"
    v = _find(prov, "activity_sparsity")
    if isinstance(v, (int, float)) and 0 <= v <= 1:
        return 1.0 - float(v), "provenance activity_sparsity"
    return 0.5, "assumed (no activity figure in the bundle)"


def _find(d, key):
    if isinstance(d, dict):
        if key in d:
            return d[key]
        for v in d.values():
            found = _find(v, key)
            if found is not None:
                return found
    return None


def estimate_cycles(bundle, activity=None) -> dict:
    """The cycle bound (DESIGN.md section 4) at an activity density, per token."""
    density, source = _activity(bundle, activity)
    P = int(bundle.banks)
    total, prev_events = 0.0, None
    for k, layer in enumerate(bundle.model["layers"]):
        h = int(layer["hidden_size"])
        w_cost = float(np.mean(bundle.memories[f"l{k}.w"].nnz.max(axis=0)))
        r_cost = float(np.mean(bundle.memories[f"l{k}.r"].nnz.max(axis=0)))
        in_events = 1.0 if (k == 0 and bundle.model.get("kind") == "lm") else (
            prev_events if prev_events is not None else density * int(layer["input_size"]))
        events = density * h
        total += in_events * w_cost + events * r_cost + math.ceil(h / P)
        prev_events = events
    if bundle.model.get("readout"):
        d_cost = float(np.mean(bundle.memories["dec.w"].nnz.max(axis=0)))
        total += prev_events * d_cost + math.ceil(bundle.vocab_size / P) + bundle.vocab_size
    return {"cycles_per_token": total, "source": f"estimate: cycle bound at activity "
            f"density {density:.2f} ({source}); pipeline latencies not included"}


def measurement_key(bundle_path) -> dict:
    """What a cycle measurement depends on: the bundle (its manifest, which holds the sha256
    of every file) and the core's RTL generator sources. A saved benchmark is used for a
    build only when both match, so a changed model or core never reports stale figures."""
    core = hashlib.sha256()
    for src in sorted((Path(__file__).resolve().parents[1] / "core").glob("*.py")):
        core.update(src.name.encode() + b"\0" + src.read_bytes())
    manifest = Path(bundle_path) / "manifest.json"
    return {"bundle_manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
            "core_sha256": core.hexdigest()}


BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def _bench_files(bundle, bench, bench_dir=BENCH_DIR):
    if bench is not None:
        return [Path(bench)]
    # bench.bench_accel --json output saved in the repository for this bundle and this core
    key = measurement_key(bundle.path)
    found = []
    for path in sorted(Path(bench_dir).glob("*.json")):
        try:
            data = json.loads(path.read_text())
            if all(data.get(k) == v for k, v in key.items()):
                found.append(path)
        except (ValueError, OSError, TypeError):
            continue
    return found


def cycles_per_token(bundle, bench=None, activity=None, bench_dir=BENCH_DIR) -> dict:
    """Measured cycles per token from a benchmark JSON (``--bench``, or a bench/*.json
    written by ``python -m bench.bench_accel --json`` for this bundle), else the estimate.

    Accepted: bench_accel's ``figures.rows`` (the "total" row's ``measured``), or a key
    ``cycles_per_token`` / ``mean_cycles`` anywhere in the file.
    """
    for path in _bench_files(bundle, bench, bench_dir):
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        rows = (data.get("figures") or {}).get("rows") or []
        for row in rows:
            if row.get("part") == "total" and row.get("measured"):
                return {"cycles_per_token": float(row["measured"]),
                        "source": f"measured in RTL simulation ({path})"}
        for key in ("cycles_per_token", "mean_cycles", "cycles_per_step"):
            v = _find(data, key)
            if isinstance(v, (int, float)) and v > 0:
                return {"cycles_per_token": float(v),
                        "source": f"measured in simulation ({path}, {key})"}
    return estimate_cycles(bundle, activity)


def _floorplan_text(fp: dict) -> str:
    if not fp.get("enabled"):
        return "off (--floorplan turns it on)"
    if fp.get("skipped"):
        return f"none ({fp['skipped']})"
    slabs = ", ".join(f"{p} EBR groups {g0}-{g0 + n - 1}" for p, (g0, n) in fp["parts"].items())
    return f"{fp['pinned']} block RAMs and multipliers pinned lane by lane ({slabs})"


def make_report(*, bundle, board, device, fit, pnr: dict | None, clock: dict, stages: dict,
                bench=None, baud: int, out_dir, tools: dict, bitstream,
                activity=None, routed=None, pnr_options: str | None = None,
                bram_outreg: dict | None = None, floorplan: dict | None = None) -> dict:
    fam = device.family
    rows = []
    util = (pnr or {}).get("utilization", {})
    for label, cell in RESOURCE_ROWS[fam]:
        if cell in util:
            u = util[cell]
            rows.append({"resource": label, "cell": cell, "used": u["used"],
                         "available": u["available"],
                         "percent": round(100 * u["used"] / u["available"], 1)
                         if u["available"] else None})
    fmax = (pnr or {}).get("fmax", {})
    achieved = min((v["achieved_mhz"] for v in fmax.values() if v["achieved_mhz"]),
                   default=None)
    run_mhz = clock["mhz"] if achieved is None else min(clock["mhz"], achieved)
    cyc = cycles_per_token(bundle, bench, activity)
    tps = run_mhz * 1e6 / cyc["cycles_per_token"] if cyc["cycles_per_token"] else None
    macs = dense_macs(bundle)
    # Link bound: a STEP request amortized over many tokens (2 bytes a token) and one
    # 7-byte response (SYNC, CMD, LEN, status, top1, CRC) per token, 10 bits per byte.
    link_tps = baud / (10 * 7)
    report = {
        "board": board.name, "device": device.part, "bundle": str(bundle.path),
        "model": {"layers": [int(x["hidden_size"]) for x in bundle.model["layers"]],
                  "vocab": bundle.vocab_size, "banks": int(bundle.banks),
                  "format": {k: getattr(bundle.format, k) for k in
                             ("weight_bits", "state_bits", "acc_bits")}},
        "clock": clock, "fmax": fmax,
        "timing_met": None if achieved is None else achieved >= clock["mhz"],
        "resources": rows, "fit_estimate": fit.as_dict() if fit else None,
        "critical_paths": (pnr or {}).get("critical_paths", [])[:3],
        "late_blocks": (pnr or {}).get("late_blocks", []),
        "late_from_bram": (pnr or {}).get("late_from_bram"),
        # hw.build.outreg: block-RAM read ports whose register became the DP16KD's own
        "bram_outreg": bram_outreg,
        "floorplan": floorplan,
        "cycles_per_token": cyc,
        "throughput": {
            "clock_mhz": run_mhz, "tokens_per_s": tps,
            "dense_macs_per_token": macs,
            "effective_gops_dense_equivalent": (2 * macs * tps / 1e9) if tps else None,
            "uart_baud": baud, "uart_bound_tokens_per_s": link_tps,
        },
        "stages_s": stages, "tools": tools,
        "nextpnr_options": pnr_options,
        "nextpnr_seed": (routed or {}).get("seed"),
        "stopped_routes": (routed or {}).get("stopped", []),
        # hw.build.pnr.run_seed_sweep: every routed seed's Fmax (empty: one seed)
        "seed_sweep": (routed or {}).get("sweep", []),
        "bitstream": str(bitstream) if bitstream else None,
    }
    return report


def _limit_text(report) -> str:
    paths = report["critical_paths"]
    if not paths:
        return "no critical path reported"
    p = paths[0]
    where = sorted({re.sub(r"[\[$].*", "", c or "").rsplit(".", 1)[0]
                    for c in p["cells"] if c} - {""})[:6]     # ($nextpnr_... cells: no name)
    share = p["routing_ns"] / p["delay_ns"] if p["delay_ns"] else 0
    return (f"{p['delay_ns']:.2f} ns from {p['start']} to {p['end']}: {p['levels']} logic "
            f"levels, {p['logic_ns']:.2f} ns logic + {p['routing_ns']:.2f} ns routing "
            f"({share:.0%} routing); through {', '.join(where) or '?'}")


def _outreg_text(o: dict) -> str:
    if not o.get("enabled"):
        return "not used (--no-bram-outreg)"
    from .outreg import left_text

    return (f"{o['absorbed']} of {o['read_ports']} read ports use the DP16KD's output "
            f"register ({o['flip_flops']} flip-flops absorbed, `hw.build.outreg`); "
            f"left: {left_text(o['left'])}")


def write_report(report: dict, out_dir) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    jpath = out_dir / "report.json"
    atomic_write_text(jpath, json.dumps(report, indent=2, default=str))
    r = report
    t = r["throughput"]
    lines = [f"# Build report: {r['board']} {r['device']}", "",
             (f"Bundle `{r['bundle']}`: layers {r['model']['layers']}, vocab "
              f"{r['model']['vocab']}, P = {r['model']['banks']} banks, format "
              f"{r['model']['format']}."), "",
             "## Resources (nextpnr)", "", "| resource | used | available | % |",
             "|---|---:|---:|---:|"]
    for row in r["resources"]:
        lines.append(f"| {row['resource']} | {row['used']} | {row['available']} | "
                     f"{row['percent']} |")
    if r["fit_estimate"]:
        f = r["fit_estimate"]
        lines += ["", (f"Fit-check estimate: {f['bram']['used']} {f['bram']['name']}, "
                       f"{f['dsp']['used']} {f['dsp']['name']}, ~{f['luts']['used']} LUT4.")]
    lines += ["", "## Clock", "",
              f"Target {r['clock']['mhz']:.3f} MHz ({r['clock']['source']})."]
    for clk, v in r["fmax"].items():
        lines.append(f"- `{clk}`: Fmax {v['achieved_mhz']:.2f} MHz "
                     f"(constraint {v['constraint_mhz']:.2f} MHz)")
    met = r["timing_met"]
    lines.append(f"- timing {'met' if met else 'NOT met' if met is not None else 'unknown'}")
    lines.append(f"- what limits Fmax: {_limit_text(r)}")
    if r.get("bram_outreg"):
        lines.append(f"- block-RAM output registers: {_outreg_text(r['bram_outreg'])}")
    if r.get("floorplan"):
        lines.append(f"- floorplan: {_floorplan_text(r['floorplan'])}")
    if r.get("late_blocks"):
        lines += ["", ("Late endpoints by block (arrival later than the target period; "
                       "`--detailed-timing-report`):"), "",
                  "| block | late / endpoints | latest arrival |", "|---|---:|---:|"]
        lines += [f"| `{b['block']}` | {b['late']} / {b['endpoints']} | {b['worst_ns']:.2f} ns |"
                  for b in r["late_blocks"]]
        bram = r.get("late_from_bram")
        if bram and bram["late"]:
            lines += ["", (f"Of the {bram['endpoints']} endpoints fed straight from a block "
                           f"RAM's read data (no logic between), {bram['late']} are late (latest "
                           f"{bram['worst_ns']:.2f} ns): such a path begins with the RAM's "
                           "clock-to-out, 5.83 ns from a read port whose output register is "
                           "unused (`python -m bench.bench_ebr`; the block-RAM output "
                           "registers line above says how many are).")]
    c = r["cycles_per_token"]
    lines += ["", "## Throughput", "",
              f"- cycles per token: {c['cycles_per_token']:.1f} ({c['source']})",
              f"- at {t['clock_mhz']:.2f} MHz: "
              + (f"{t['tokens_per_s']:.0f} tokens/s, "
                 f"{t['effective_gops_dense_equivalent']:.3f} GOp/s dense-equivalent "
                 f"({t['dense_macs_per_token']} dense MACs per token, 2 Op per MAC)"
                 if t["tokens_per_s"] else "n/a"),
              (f"- UART at {t['uart_baud']} baud bounds a token stream to "
               f"~{t['uart_bound_tokens_per_s']:.0f} tokens/s (7-byte response per token)"),
              "", "## Build stages", ""]
    for stage, secs in r["stages_s"].items():
        lines.append(f"- {stage}: {secs:.1f} s")
    if r.get("nextpnr_options"):
        lines.append(f"- nextpnr options: `{r['nextpnr_options']}`")
    if r.get("nextpnr_seed") is not None:
        lines.append(f"- nextpnr seed: {r['nextpnr_seed']}")
    if r.get("seed_sweep"):
        lines.append("- seeds routed (the fastest kept; each run's files in `seeds/`): "
                     + ", ".join(f"{s['seed']}: " + (f"{s['fmax_mhz']:.2f} MHz"
                                                     if s["fmax_mhz"] is not None else "?")
                                 for s in r["seed_sweep"]))
    lines += [f"- stopped, {why}" for why in r.get("stopped_routes", [])]
    lines += ["", f"Bitstream: `{r['bitstream']}`", ""]
    mpath = out_dir / "report.md"
    atomic_write_text(mpath, "\n".join(lines))
    return jpath, mpath
