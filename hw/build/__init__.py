"""Bitstream builds: board registry, fit check, toolchain, flow, report (docs/build.md)."""

from .boards import BOARDS, Board, BoardError, Device, get_board
from .fit import FitError, FitReport, check_fit, estimate
from .flow import BuildError, BuildOptions, build

__all__ = [
           "BOARDS",
           "Board",
           "BoardError",
           "BuildError",
           "BuildOptions",
           "Device",
           "FitError",
           "FitReport",
           "build",
           "check_fit",
           "estimate",
           "get_board",
]
