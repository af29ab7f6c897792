"""The core's own Fmax ceiling: a tiny model through the whole ECP5 build, over several seeds.

On the shipped model (LFE5U-85F) the latest paths mix two causes: logic depth in the RTL,
and routes between blocks that the placer spreads over a large die. A tiny model (one layer
of 6 units, 8 symbols, one bank) has the same RTL blocks, each pipeline stage as deep as in
the shipped model, on a 12F with short routes. What it reaches is a ceiling for the RTL: if
the tiny build does not reach a clock, the shipped model will not either, however it is
placed. Each seed is one full build (`hw.build`, same flow and options as the default
build: classic-ABC synthesis, static placer, router2):

    python -m bench.bench_fmax [--seeds 1 2 3] [--device 12F] [--json FILE] [--keep DIR]
    python -m bench.bench_fmax --layers 2 --hidden 64 --vocab 32 --banks 4 --device 45F

About 2-3 minutes a seed on one core for the tiny model. Prints each seed's Fmax, its latest
path and the blocks with the most late endpoints, then the mean and the spread. A seed that
does not route is named with the reason, and its row is the build's next seed (the flow
retries with seed + 1: `hw.build.pnr`); a routed seed is counted once, and a seed
past the asked ones stands in for a row lost that way. The size
options build a bigger random model instead (the second line: a mid-size model, two layers
like the shipped one, about 70% of the 45F's block RAM).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python bench/bench_fmax.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hw.build.boards import BOARDS
from hw.build.flow import BuildOptions, build
from sim.random_bundle import random_bundle
from sw.atomic import atomic_write_text

#: the tiny model of the suite's bitstream test (tests/test_build.py)
TINY = {"layers": 1, "hidden": 6, "vocab": 8, "banks": 1, "sparsity": 0.5, "seed": 4}


def run_seed(bundle: Path, out: Path, seed: int, device: str, clock: float) -> dict:
    report = build(BuildOptions(board="ulx3s", device=device, bundle=str(bundle),
                                out=str(out), seed=seed, clock_mhz=clock,
                                pnr_opts="--detailed-timing-report"),
                   log=lambda msg: None)
    fmax = min(v["achieved_mhz"] for v in report["fmax"].values())
    path = report["critical_paths"][0] if report["critical_paths"] else {}
    return {"seed": report["nextpnr_seed"], "asked_seed": seed,
            "stopped": report.get("stopped_routes", []), "fmax_mhz": round(fmax, 2),
            "latest_path": {k: path.get(k) for k in
                            ("delay_ns", "levels", "logic_ns", "routing_ns", "start", "end")},
            "late_blocks": report["late_blocks"][:4],
            "lut4": next((r["used"] for r in report["resources"]
                          if r["cell"] == "TRELLIS_COMB"), None)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_fmax", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    for key in ("layers", "hidden", "vocab", "banks"):
        ap.add_argument(f"--{key}", type=int, default=TINY[key],
                        help=f"model size (default {TINY[key]}, the tiny model)")
    ap.add_argument("--device", default="12F", choices=BOARDS["ulx3s"].devices,
                    help="ULX3S device (default 12F)")
    ap.add_argument("--clock", type=float, default=125.0,
                    help="the clock target nextpnr optimizes for (default 125)")
    ap.add_argument("--json", default=None, metavar="FILE", help="also write the rows here")
    ap.add_argument("--keep", default=None, metavar="DIR",
                    help="keep each seed's build folder (reports, nextpnr.json) under DIR")
    args = ap.parse_args(argv)
    small = [k for k in ("layers", "hidden", "vocab", "banks") if getattr(args, k) < 1]
    if small:
        ap.error(f"--{small[0]} must be >= 1, got {getattr(args, small[0])}")

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_fmax_") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        model = dict(TINY, **{k: getattr(args, k) for k in ("layers", "hidden", "vocab",
                                                             "banks")})
        bundle = random_bundle(Path(tmp) / "bundle", **model)
        # A seed that does not route is built with the next one (hw.build.pnr), which may
        # be a seed also asked for: each routed seed is counted once (a second row of it
        # would weigh one draw twice in the mean), and a seed past the asked ones takes the
        # place of the lost row, so the summary is over as many seeds as were asked.
        queue = list(dict.fromkeys(args.seeds))
        routed = set()
        while queue:
            seed = queue.pop(0)
            if seed in routed:
                nxt = max(routed | set(queue) | set(args.seeds)) + 1
                queue.append(nxt)
                print(f"seed {seed}: already routed as an earlier seed's retry; "
                      f"seed {nxt} instead", flush=True)
                continue
            row = run_seed(bundle, work / f"seed{seed}", seed, args.device, args.clock)
            routed.add(row["seed"])
            rows.append(row)
            p = row["latest_path"]
            for why in row["stopped"]:       # the build went on with the next seed
                print(f"stopped, {why}", flush=True)
            print(f"seed {row['seed']}: {row['fmax_mhz']:.2f} MHz, {row['lut4']} LUT4; latest "
                  f"{p['delay_ns']} ns, {p['levels']} levels ({p['logic_ns']} logic + "
                  f"{p['routing_ns']} routing): {p['start']} -> {p['end']}", flush=True)
            for b in row["late_blocks"]:
                print(f"    {b['block']}: {b['late']} late of {b['endpoints']}, "
                      f"latest {b['worst_ns']:.2f} ns")
    fmax = [r["fmax_mhz"] for r in rows]
    summary = {"device": args.device, "model": model, "clock_mhz": args.clock, "rows": rows,
               "mean_mhz": round(statistics.mean(fmax), 2), "min_mhz": min(fmax),
               "max_mhz": max(fmax)}
    print(f"model {model} on {args.device}: mean {summary['mean_mhz']:.2f} MHz over "
          f"{len(rows)} seeds (min {min(fmax):.2f}, max {max(fmax):.2f}); target "
          f"{args.clock:.0f} MHz")
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
