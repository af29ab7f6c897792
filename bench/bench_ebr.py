"""Block-RAM read timing on the ECP5: the project's memories against the DP16KD's output register.

Every memory of the core is read through `hw.core.ram.SyncRead`, which Yosys maps onto a
DP16KD in ``REGMODE = NOREG``: the read data leaves the block RAM a full clock-to-out after
the edge. The primitive has an output register (``OUTREG``, one cycle more latency) whose
clock-to-out is short, but Yosys does not infer it (its memory mapper has no rule for it,
YosysHQ/yosys#5814); an explicit DP16KD instance gets it, and so does a netlist whose
register after the read `hw.build.outreg` moved into the primitive. This bench places and
routes four one-memory designs with the build's tools, router and placer and prints what
nextpnr reports for each. Each reads one memory into a register without reset (as the core
does after most reads), then into the output register ``q``:

- ``syncread``: `hw.core.ram` + `SyncRead` (1024 x 18), as the core does;
- ``noreg``: an explicit DP16KD, ``NOREG``;
- ``outreg``: an explicit DP16KD, ``OUTREG`` (one cycle more latency than the others);
- ``absorbed``: ``syncread`` after `hw.build.outreg` (the register after the read is now the
  DP16KD's output register: the same latency as ``syncread``).

    python -m bench.bench_ebr [--speed 6] [--json FILE]

Takes about 20 s (four small place-and-route runs).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python bench/bench_ebr.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from amaranth.hdl import ClockSignal, Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.build.flow import ECP5_PLACER, ECP5_ROUTER
from hw.build.outreg import absorb_file
from hw.build.toolchain import resolve
from hw.core.ram import SyncRead, ram
from sim.yosys_stat import yosys_stat
from sw.atomic import atomic_write_text

DEPTH, WIDTH, ABITS = 1024, 18, 10
KINDS = ("syncread", "noreg", "outreg", "absorbed")


class _Probe(wiring.Component):
    """One 1024 x 18 memory: a write port, a read port, a register without reset after the
    read data, then ``q``. ``absorbed`` elaborates as ``syncread`` (the pass comes later)."""

    def __init__(self, kind: str):
        self.kind = kind
        super().__init__({"rd_addr": In(ABITS), "wr_addr": In(ABITS), "wr_data": In(WIDTH),
                          "wr_en": In(1), "q": Out(WIDTH)})

    def elaborate(self, platform):
        m = Module()
        data = Signal(WIDTH)
        if self.kind in ("syncread", "absorbed"):
            m.submodules.mem = mem = ram(shape=WIDTH, depth=DEPTH)
            wp = mem.write_port()
            rd = SyncRead(m, mem, name="rd")
            m.d.comb += [wp.addr.eq(self.wr_addr), wp.data.eq(self.wr_data),
                         wp.en.eq(self.wr_en), rd.addr.eq(self.rd_addr), data.eq(rd.data)]
        else:
            # DP16KD in 1K x 18 mode: address bits 4..13 select the word (ADx0..3 unused)
            ports = {"i_CLKA": ClockSignal("sync"), "i_CLKB": ClockSignal("sync"),
                     "i_CEA": 1, "i_CEB": 1, "i_OCEA": 1, "i_OCEB": 1,
                     "i_WEA": self.wr_en, "i_WEB": 0, "i_RSTA": 0, "i_RSTB": 0}
            for k in range(3):
                ports[f"i_CSA{k}"] = ports[f"i_CSB{k}"] = 0
            for k in range(14):
                ports[f"i_ADA{k}"] = self.wr_addr[k - 4] if k >= 4 else 0
                ports[f"i_ADB{k}"] = self.rd_addr[k - 4] if k >= 4 else 0
            for k in range(WIDTH):
                ports[f"i_DIA{k}"] = self.wr_data[k]
                ports[f"o_DOB{k}"] = data[k]
            m.submodules.ram = Instance(
                "DP16KD", p_DATA_WIDTH_A=WIDTH, p_DATA_WIDTH_B=WIDTH, p_REGMODE_A="NOREG",
                p_REGMODE_B="OUTREG" if self.kind == "outreg" else "NOREG", **ports)
        stage = Signal(WIDTH, reset_less=True)
        m.d.sync += [stage.eq(data), self.q.eq(stage)]
        return m


def _critical(log: str) -> dict:
    """The first step (clock-to-out of the source) and the total of nextpnr's critical path."""
    block = log.rsplit("Critical path report for clock", 1)[1].split("\n\n", 1)[0]
    first = re.search(r"clk-to-q\s+([\d.]+)\s+([\d.]+)\s+Source (\S+)", block)
    total = re.findall(r"(?:setup|logic|routing)\s+[\d.]+\s+([\d.]+)", block)
    fmax = re.findall(r"Max frequency for clock '[^']+': ([\d.]+) MHz", log)   # last: routed
    return {"source": first.group(3), "clock_to_out_ns": float(first.group(1)),
            "path_ns": float(total[-1]) if total else None,
            "fmax_mhz": float(fmax[-1]) if fmax else None}


def _cell_counts(netlist: Path) -> dict:
    """DP16KD, TRELLIS_FF, LUT4 in the netlist nextpnr reads (after the pass, if any)."""
    cells = json.loads(netlist.read_text())["modules"]["top"]["cells"].values()
    return {c: sum(1 for x in cells if x["type"] == c) for c in ("DP16KD", "TRELLIS_FF", "LUT4")}


def place_and_route(d: Path, *, speed: int = 6) -> dict:
    """nextpnr on ``d/top.json`` (an LFE5U-25F, 125 MHz, the build's router and placer,
    seed 1); its routed critical path (`_critical`)."""
    subprocess.run([resolve("nextpnr-ecp5"), "--25k", "--package", "CABGA381", "--speed",
                    str(speed), "--json", "top.json", "--freq", "125", "--timing-allow-fail",
                    "--lpf-allow-unconstrained", "--router", ECP5_ROUTER, "--placer",
                    ECP5_PLACER, "--seed", "1", "--log", "pnr.log", "--quiet"],
                   cwd=d, check=True, capture_output=True, text=True)
    return _critical((d / "pnr.log").read_text())


def measure(kind: str, *, speed: int = 6, workdir: Path) -> dict:
    d = workdir / kind
    d.mkdir(parents=True, exist_ok=True)
    yosys_stat(_Probe(kind), "synth_ecp5 -top top -json top.json", d)
    absorbed = absorb_file(d / "top.json") if kind == "absorbed" else None
    out = place_and_route(d, speed=speed)
    out["cells"] = _cell_counts(d / "top.json")
    if absorbed is not None:
        out["outreg"] = absorbed.as_dict()
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.bench_ebr", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speed", type=int, default=6, choices=(6, 7, 8),
                   help="ECP5 speed grade (the ULX3S's LFE5U-85F is speed 6)")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    a = p.parse_args(argv)
    if a.json is not None and a.json.is_dir():
        p.error(f"--json {a.json} is a folder; name a file, e.g. {a.json / 'ebr.json'}")
    with tempfile.TemporaryDirectory(prefix="bench_ebr_") as tmp:
        res = {k: measure(k, speed=a.speed, workdir=Path(tmp)) for k in KINDS}
    print(f"DP16KD read data into a register, LFE5U-25F speed {a.speed} "
          f"(nextpnr critical path; one placement, seed 1)")
    print(f"{'design':10} {'clock-to-out':>13} {'path':>8} {'Fmax':>10}  cells")
    for k, r in res.items():
        print(f"{k:10} {r['clock_to_out_ns']:10.2f} ns {r['path_ns']:5.2f} ns "
              f"{r['fmax_mhz']:6.1f} MHz  {r['cells']}")
    gain = res["syncread"]["clock_to_out_ns"] - res["outreg"]["clock_to_out_ns"]
    print(f"the output register takes {gain:.2f} ns off every block-RAM read path "
          f"(of a {1e3 / 125:.1f} ns period at 125 MHz)")
    print(f"absorbed (hw.build.outreg on syncread): clock-to-out "
          f"{res['absorbed']['clock_to_out_ns']:.2f} ns against "
          f"{res['outreg']['clock_to_out_ns']:.2f} ns for the explicit OUTREG instance")
    if a.json:
        atomic_write_text(a.json, json.dumps({"speed": a.speed, "designs": res}, indent=2))
    return res


if __name__ == "__main__":
    main()
