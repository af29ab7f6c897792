"""Run Yosys on one Amaranth design and read its cell counts (used by the tests that check
how a construct maps: block RAM without collision logic, flip-flops Yosys must not merge)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from amaranth.back import rtlil

from hw.build.toolchain import resolve


def yosys_stat(design, script: str, cwd: Path, *, prelude: str = "") -> str:
    """``prelude; read_rtlil top.il; script; stat`` in ``cwd``; the statistics of ``top``.

    The statistics go through ``tee -o`` to a file: YoWASP Yosys' stdout can end early
    (after ABC), the file does not."""
    (Path(cwd) / "top.il").write_text(rtlil.convert(design, ports=None))
    subprocess.run([resolve("yosys"), "-q", "-p",
                    f"{prelude} read_rtlil top.il; {script}; tee -o stat.txt stat"],
                   capture_output=True, text=True, check=True, cwd=cwd)
    stat = (Path(cwd) / "stat.txt").read_text()
    return stat[stat.rfind("=== top ==="):] if "=== top ===" in stat else stat


def count_cells(stat: str, cell: str) -> int:
    """How many ``cell`` instances (summed over the lines that end with the cell's name)."""
    return sum(int(n) for n in re.findall(rf"(\d+)\s+{re.escape(cell)}\s*$", stat,
                                          re.MULTILINE))
