"""Benchmark of the accelerator RTL: measured cycles vs the event cycle bound, vs dense.

    python -m bench.bench_accel [--bundle models/default] [--tokens 200] [--sim both]

Runs the cocotb testbench (bit-exact against sw.golden while it measures) on the bundle with
tokens of real text (wt2-proxy test split, tokenized with the bundle's vocab) or, for a
non-LM bundle, random dense inputs; reads the accelerator's per-layer cycle/event/MAC
counters after every step and prints per layer and in total:

- measured cycles per token;
- the event cycle bound (DESIGN.md section 4): per layer, the sum over the step's events of
  the maximum over banks of nnz(bank, column) plus ceil(H/P); for the readout, the same over
  the decoder plus ceil(V/P) (one row of P logits per cycle in the top-1 scan);
- measured / bound (target <= 1.10);
- dense cycles on the same P lanes (every column of W and R, 3*ceil(H/P) rows per bank; a
  token is one column either way), the speed-up dense / measured, the theoretical
  effective-MAC reduction dense MACs / effective MACs, and their ratio (target >= 0.9);
- simulation speed (tokens/s) for each simulator run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hw.build.report import measurement_key
from sw.atomic import atomic_write_text
from sw.data import default_data_dir

TEXT = str(default_data_dir() / "test.txt")   # the wt2-proxy test split ($EGRU_DATA)


def bounds(bundle, expected):
    """Per step and part (layers, readout): (bound cycles, dense cycles, eff MACs, dense MACs)."""
    P = bundle.banks
    mem = bundle.memories
    maxnnz = {m: mem[m].nnz.max(axis=0) for m in mem}
    lm = bundle.model["kind"] == "lm"
    out = []
    for st in expected:
        parts = []
        for k, lt in enumerate(st.layers):
            H = bundle.hidden(k)
            U = -(-H // P)
            I = int(bundle.model["layers"][k]["input_size"])
            b = sum(int(maxnnz[f"l{k}.w"][j]) for j, _ in lt.in_events)
            b += sum(int(maxnnz[f"l{k}.r"][j]) for j, _ in lt.rec_events)
            eff = sum(int(mem[f"l{k}.w"].nnz[:, j].sum()) for j, _ in lt.in_events)
            eff += sum(int(mem[f"l{k}.r"].nnz[:, j].sum()) for j, _ in lt.rec_events)
            cols = (1 if (k == 0 and lm) else I) + H
            parts.append((b + U, cols * 3 * U + U, eff, cols * 3 * H))
        if st.logits is not None:
            V = bundle.vocab_size
            H = bundle.hidden(bundle.num_layers - 1)
            R = -(-V // P)
            last = st.layers[-1].events
            b = sum(int(maxnnz["dec.w"][j]) for j, _ in last)
            eff = sum(int(mem["dec.w"].nnz[:, j].sum()) for j, _ in last)
            parts.append((b + R, H * R + R, eff, H * V))
        out.append(parts)
    return out


def run(bundle_path, tokens, sim, build_root, emit_logits=0):
    from hw.bundle import load_bundle
    from sim.runner import build, run_scenario
    bundle = load_bundle(bundle_path)
    bdir = Path(build_root) / sim
    t0 = time.perf_counter()
    runner = build(bundle, bdir, sim=sim, cxx_opt="-O2")
    t_build = time.perf_counter() - t0
    if bundle.model["kind"] == "lm":
        scen = {"text": TEXT, "ntok": tokens, "seed": 1, "emit_logits": emit_logits}
    else:
        scen = {"dense": {"steps": tokens, "hold": 0.8}, "seed": 1}
    rep = run_scenario(runner, bdir, bundle_path, scen, sim=sim)
    rep["build_seconds"] = t_build
    return bundle, scen, rep


def report(bundle, scen, rep):
    from sim.cocotb_accel.scenario import expand
    _, expected = expand(bundle, scen)
    b = bounds(bundle, expected)
    n = len(expected)
    nparts = len(b[0])
    names = [f"layer{k}" for k in range(bundle.num_layers)] + \
        (["readout"] if nparts > bundle.num_layers else [])
    # the counters' part index L is the readout (or the no-readout acknowledgement)
    idx = list(range(bundle.num_layers)) + ([bundle.num_layers] if len(names) > bundle.num_layers
                                           else [])
    meas = np.array([[p["parts"][i]["cycles"] for i in idx] for p in rep["perf"]], float)
    total_meas = np.array([p["last_cycles"] for p in rep["perf"]], float)
    arr = np.array(b, float)                          # (steps, parts, 4)
    rows = []
    print(f"{'part':<10}{'cycles/tok':>12}{'bound':>10}{'meas/bound':>12}{'dense':>10}"
          f"{'speed-up':>10}{'MAC red.':>10}{'ratio':>8}")
    for i, name in enumerate(names):
        m, bd, dn = meas[:, i].mean(), arr[:, i, 0].mean(), arr[:, i, 1].mean()
        eff, dmac = arr[:, i, 2].sum(), arr[:, i, 3].sum()
        red = dmac / max(eff, 1)
        rows.append((name, m, bd, m / bd, dn, dn / m, red, (dn / m) / red))
    m, bd, dn = total_meas.mean(), arr[:, :, 0].sum(1).mean(), arr[:, :, 1].sum(1).mean()
    eff, dmac = arr[:, :, 2].sum(), arr[:, :, 3].sum()
    red = dmac / max(eff, 1)
    rows.append(("total", m, bd, m / bd, dn, dn / m, red, (dn / m) / red))
    for r in rows:
        print(f"{r[0]:<10}{r[1]:>12.1f}{r[2]:>10.1f}{r[3]:>12.3f}{r[4]:>10.1f}{r[5]:>10.2f}"
              f"{r[6]:>10.2f}{r[7]:>8.3f}")
    return {"steps": n, "rows": [dict(zip(("part", "measured", "bound", "meas_over_bound",
                                          "dense", "speedup", "mac_reduction",
                                          "speedup_over_reduction"), r)) for r in rows]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_accel")
    ap.add_argument("--bundle", default="models/default")
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--icarus-tokens", type=int, default=None,
                    help="tokens for the Icarus speed run (default: --tokens)")
    ap.add_argument("--sim", default="verilator", choices=("icarus", "verilator", "both"))
    ap.add_argument("--build", default=None, help="build folder (default: a temporary one)")
    ap.add_argument("--json", default=None, help="also write the figures as JSON here")
    args = ap.parse_args(argv)
    if not Path(TEXT).is_file():
        ap.error(f"no test text at {TEXT}: set EGRU_DATA to a folder with the wt2-proxy "
                 f"test.txt")
    root = args.build or tempfile.mkdtemp(prefix="bench_accel_")
    sims = ["verilator", "icarus"] if args.sim == "both" else [args.sim]
    out = {"bundle": str(args.bundle), **measurement_key(args.bundle), "sims": {}}
    for i, sim in enumerate(sims):
        ntok = args.tokens if (sim != "icarus" or args.icarus_tokens is None) \
            else args.icarus_tokens
        bundle, scen, rep = run(args.bundle, ntok, sim, root)
        tps = rep["steps"] / rep["sim_seconds"]
        print(f"[{sim}] {rep['steps']} tokens bit-exact; simulation {tps:.1f} tokens/s "
              f"({rep['cycles'] / rep['sim_seconds']:.0f} cycles/s), build "
              f"{rep['build_seconds']:.0f} s")
        out["sims"][sim] = {"tokens": rep["steps"], "tokens_per_s": tps,
                            "cycles_per_s": rep["cycles"] / rep["sim_seconds"],
                            "build_seconds": rep["build_seconds"]}
        if i == 0:
            out["figures"] = report(bundle, scen, rep)
    if args.json:
        atomic_write_text(args.json, json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
