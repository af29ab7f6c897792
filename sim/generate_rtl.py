"""Greedy text generation from the accelerator's RTL simulation, compared with the golden model.

    python -m sim.generate_rtl [--bundle models/default] [--prompt "The "] [--tokens 100]
                               [--sim icarus|verilator] [--build build/generate_rtl] [--json F]

Generates the bundle's Verilog (without the trace port), compiles it (`sim.runner.build`)
and runs the cocotb module `sim.cocotb_generate.test_generate`: the prompt goes in as
STEP_TOKEN commands and then the RTL's own top-1 is fed back, ``--tokens`` times. Prints the
RTL text, the golden text (`sw.generate.generate_ids`, greedy) and whether they are
identical; exit code 0 if identical, 1 if they differ (or the simulation failed), 2 on bad
input. ``SIM`` / ``WAVES`` as in `sim.runner`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from sim.runner import REPO, TIMESCALE, build, simulator

__all__ = ["build_design", "main", "run_generation"]

TEST_MODULE = "sim.cocotb_generate.test_generate"


def build_design(bundle, build_dir, *, sim: str | None = None, waves: bool | None = None):
    """Verilog without the trace port, compiled for ``sim``; returns the cocotb runner."""
    return build(bundle, build_dir, sim=sim, trace=False, waves=waves)


def run_generation(runner, build_dir, bundle_path, prompt_ids: list[int], ntokens: int, *,
                   run_dir=None, sim: str | None = None, waves: bool | None = None) -> dict:
    """Run the cocotb generation test; return its JSON report (``rtl_ids``, ``golden_ids``,
    ``identical``, cycles, timing) plus ``passed`` and ``log``. Raises RuntimeError if the
    test wrote no report (a crash or timeout)."""
    from cocotb_tools.check_results import get_results

    from sim.runner import waves_enabled
    simulator(sim)
    waves = waves_enabled() if waves is None else waves
    build_dir = Path(build_dir)
    run_dir = Path(run_dir) if run_dir is not None else build_dir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    out = (run_dir / f"generate_{os.getpid()}_{time.monotonic_ns()}.json").resolve()
    env = {
        "GEN_BUNDLE": str(Path(bundle_path).resolve()),
        "GEN_PROMPT_IDS": json.dumps([int(t) for t in prompt_ids]),
        "GEN_TOKENS": str(int(ntokens)),
        "GEN_OUT": str(out),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    t0 = time.perf_counter()
    results = runner.test(test_module=TEST_MODULE, hdl_toplevel="top",
                          hdl_toplevel_lang="verilog", build_dir=build_dir / "sim",
                          test_dir=run_dir, extra_env=env, waves=waves, timescale=TIMESCALE,
                          log_file=run_dir / "test.log")
    wall = time.perf_counter() - t0
    ntests, nfail = get_results(Path(results))
    log = run_dir / "test.log"
    if not out.is_file():
        tail = log.read_text()[-4000:] if log.is_file() else ""
        raise RuntimeError(f"the cocotb generation test wrote no report; log {log}:\n{tail}")
    rep = json.loads(out.read_text())
    rep.update(passed=ntests > 0 and nfail == 0, log=str(log), run_seconds=wall)
    return rep


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.generate_rtl",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--prompt", default="The ")
    ap.add_argument("--tokens", type=int, default=100, help="tokens to generate")
    ap.add_argument("--sim", choices=("icarus", "verilator"), default=None,
                    help="simulator (default: $SIM or icarus)")
    ap.add_argument("--build", type=Path, default=None,
                    help="build folder (default: build/generate_rtl_<sim>)")
    ap.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = ap.parse_args(argv)

    from hw.bundle import BundleError
    from sw.generate import encode_prompt, load_lm_bundle
    from sw.tokens import bundle_level, detokenize
    if args.tokens < 0:
        ap.error("--tokens must be >= 0")
    try:
        bundle = load_lm_bundle(args.bundle)
    except BundleError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    level = bundle_level(bundle.model)
    prompt = encode_prompt(args.prompt, bundle)
    if not prompt:
        print("error: the prompt must hold at least one token", file=sys.stderr)
        return 2
    sim = simulator(args.sim)
    build_dir = args.build or REPO / "build" / f"generate_rtl_{sim}"

    t0 = time.perf_counter()
    runner = build_design(bundle, build_dir, sim=sim)
    t_build = time.perf_counter() - t0
    rep = run_generation(runner, build_dir, args.bundle, prompt, args.tokens, sim=sim)
    rep.update(sim=sim, build_seconds=t_build, prompt=args.prompt)
    if args.json:
        args.json.write_text(json.dumps(rep, indent=1))

    rtl_text = args.prompt + detokenize(rep["rtl_ids"], bundle.vocab, level)
    gold_text = args.prompt + detokenize(rep["golden_ids"], bundle.vocab, level)
    steps = max(1, rep["steps"])
    print(f"--- RTL ({sim}, {len(rep['rtl_ids'])} tokens after a {len(prompt)}-token prompt)")
    print(rtl_text)
    print("--- golden model (sw.generate.generate_ids, greedy)")
    print(gold_text)
    print("---")
    print(f"build {t_build:.1f} s; simulation {rep['sim_seconds']:.1f} s for {rep['steps']} "
          f"steps ({rep['sim_seconds'] / steps:.3f} s/token, "
          f"{rep['cycles'] / steps:.0f} cycles/token); golden {rep['golden_seconds']:.2f} s")
    if rep["identical"] and rep["passed"]:
        print(f"identical: yes ({len(rep['rtl_ids'])} of {len(rep['rtl_ids'])} tokens)")
        return 0
    first = next((i for i, (a, b) in enumerate(zip(rep["rtl_ids"], rep["golden_ids"]))
                  if a != b), None)
    print(f"identical: NO (first difference at generated token {first}; log {rep['log']})")
    return 1


if __name__ == "__main__":
    sys.exit(main())
