"""Command line: ``python -m hw.build --board ulx3s [--device 85F] [--bundle DIR] ...``."""

from __future__ import annotations

import argparse
import shlex
import sys

from .boards import BOARDS, BoardError
from .fit import FitError
from .flow import DEFAULT_SEED, BuildError, BuildOptions, build

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    devices = sorted({d for b in BOARDS.values() for d in b.devices})
    ap = argparse.ArgumentParser(
        prog="python -m hw.build",
        description="Build an FPGA bitstream of the EGRU accelerator for a model bundle "
                    "(fit check, generate, synthesize, place and route, pack, report).")
    ap.add_argument("--board", required=True, choices=sorted(BOARDS),
                    help="target board")
    ap.add_argument("--device", default=None, metavar="DEV",
                    help="FPGA variant of the board (ulx3s: 12F, 25F, 45F, 85F; default "
                         "85F; icebreaker: UP5K). All known: " + ", ".join(devices))
    ap.add_argument("--bundle", default="models/default", metavar="DIR",
                    help="export bundle folder (default: models/default)")
    ap.add_argument("--clock", type=float, default=None, metavar="MHZ",
                    help="sync clock target, made by the ECP5 PLL from the 25 MHz "
                         "oscillator (default 125)")
    ap.add_argument("--out", default=None, metavar="DIR",
                    help="output folder (default build/<board>-<device>)")
    ap.add_argument("--baud", type=int, default=None,
                    help="UART baud rate (default 1000000)")
    ap.add_argument("--program", action="store_true",
                    help="program the board with openFPGALoader after the build")
    ap.add_argument("--strict-timing", action="store_true",
                    help="fail when the achieved Fmax is below the clock target")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED,
                    help=f"nextpnr placement seed (default {DEFAULT_SEED})")
    ap.add_argument("--pnr-tries", type=int, default=3, metavar="N",
                    help="place-and-route runs at most: a route that diverges or stalls "
                         "(router2) is stopped and run again with the next seed (default 3)")
    ap.add_argument("--seeds", type=int, default=1, metavar="N",
                    help="place and route with up to N seeds (--seed, then the next ones) "
                         "and keep the fastest; stops at the first that meets --clock. Each "
                         "seed is a full place and route (default 1)")
    ap.add_argument("--bench", default=None, metavar="JSON",
                    help="benchmark JSON with measured cycles_per_token for the report")
    ap.add_argument("--activity", type=float, default=None, metavar="F",
                    help="fraction of units that fire per step, for the report's cycle "
                         "estimate when no benchmark is given (default: from the bundle, "
                         "else 0.5)")
    ap.add_argument("--synth-opts", default=None, metavar="OPTS",
                    help="options for Yosys synth_<family>, replacing the default flow (ECP5: "
                         "classic-ABC LUT mapping, see docs/build.md)")
    ap.add_argument("--pnr-opts", default="", metavar="OPTS",
                    help="extra nextpnr options, e.g. --pnr-opts=\"--router router2\"")
    ap.add_argument("--bram-outreg", action=argparse.BooleanOptionalAction, default=True,
                    help="ECP5: move the registers after block-RAM reads into the DP16KDs' "
                         "output registers (hw.build.outreg; on by default since round "
                         "sixteen, where it raised the shipped model's Fmax at every seed "
                         "measured, docs/build.md; --no-bram-outreg keeps NOREG)")
    ap.add_argument("--tmg-ripup", action=argparse.BooleanOptionalAction, default=True,
                    help="ECP5: let nextpnr's router2 rip up and reroute arcs that fail "
                         "timing once the route is legal (on by default since round "
                         "seventeen: 115.31 -> 124.92 MHz on the same placement, "
                         "docs/build.md; --no-tmg-ripup routes for congestion alone)")
    ap.add_argument("--floorplan", action="store_true",
                    help="ECP5 85F: pin each lane's block RAMs and multipliers next to each "
                         "other, each part in a slab of its own (hw.build.floorplan; off by "
                         "default: it lowered the shipped model's Fmax, docs/build.md)")
    ap.add_argument("--system-tools", action="store_true",
                    help="prefer yosys/nextpnr on PATH over the YoWASP ones")
    ap.add_argument("--stub-core", action="store_true", help=argparse.SUPPRESS)
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    board = BOARDS[args.board]
    if args.activity is not None and not 0.0 <= args.activity <= 1.0:
        parser().error(f"--activity must be in [0, 1], got {args.activity}")
    if args.device is not None and args.device not in board.devices:
        parser().error(f"board {args.board} has no device {args.device!r}; supported: "
                       f"{', '.join(board.devices)}")
    if args.pnr_tries < 1:
        parser().error(f"--pnr-tries must be >= 1, got {args.pnr_tries}")
    if args.seeds < 1:
        parser().error(f"--seeds must be >= 1, got {args.seeds}")
    try:
        shlex.split(args.pnr_opts)
    except ValueError as exc:
        parser().error(f"--pnr-opts {args.pnr_opts!r} is not a valid option string ({exc}); "
                       f"quote it whole, e.g. --pnr-opts=\"--router router1\"")
    opts = BuildOptions(board=args.board, device=args.device, bundle=args.bundle,
                        clock_mhz=args.clock, out=args.out, baud=args.baud,
                        program=args.program, strict_timing=args.strict_timing,
                        seed=args.seed, pnr_tries=args.pnr_tries, seeds=args.seeds,
                        bench=args.bench, activity=args.activity,
                        prefer_system_tools=args.system_tools, stub_core=args.stub_core,
                        synth_opts=args.synth_opts, pnr_opts=args.pnr_opts,
                        bram_outreg=args.bram_outreg, tmg_ripup=args.tmg_ripup,
                        floorplan=args.floorplan)
    try:
        build(opts)
    except FitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (BuildError, BoardError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
