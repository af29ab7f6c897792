"""Board and device registry: what ``python -m hw.build --board B --device D`` can target.

Device totals are the vendor datasheet figures (Lattice FPGA-DS-02012 for ECP5,
FPGA-DS-02008 for iCE40 UltraPlus), checked against what nextpnr reports as available
(docs/build.md lists both).
"""

from __future__ import annotations

import dataclasses

__all__ = ["BOARDS", "Board", "BoardError", "Device", "get_board"]


class BoardError(ValueError):
    """An unknown board or device; the message lists the supported ones."""


@dataclasses.dataclass(frozen=True)
class Device:
    """Resources of one FPGA part.

    ``bram`` counts block RAMs of ``bram_bits`` each, with the (depth, width) aspect ratios
    in ``bram_shapes``; ``dsp`` counts hard multipliers of ``dsp_width`` x ``dsp_width``.
    """
    part: str
    family: str                 # "ecp5" | "ice40"
    luts: int                   # LUT4
    ffs: int
    bram: int
    bram_bits: int
    bram_shapes: tuple
    bram_name: str
    dsp: int
    dsp_width: int
    dsp_name: str
    lutram: bool                # distributed RAM in LUTs (ECP5 TRELLIS_DPR16X4)


ECP5_BRAM_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
ICE40_BRAM_SHAPES = ((2048, 2), (1024, 4), (512, 8), (256, 16))


def _ecp5(part, luts, bram, dsp):
    return Device(part=part, family="ecp5", luts=luts, ffs=luts, bram=bram, bram_bits=18432,
                  bram_shapes=ECP5_BRAM_SHAPES, bram_name="DP16KD", dsp=dsp, dsp_width=18,
                  dsp_name="MULT18X18D", lutram=True)


ECP5_DEVICES = {
    # LUT4 totals as nextpnr-ecp5 reports them (TRELLIS_COMB available); the 12F is a
    # 25F die, which nextpnr and the bitstream limit to the 12F's resources.
    "12F": _ecp5("LFE5U-12F", 12288, 32, 28),
    "25F": _ecp5("LFE5U-25F", 24288, 56, 28),
    "45F": _ecp5("LFE5U-45F", 43848, 108, 72),
    "85F": _ecp5("LFE5U-85F", 83640, 208, 156),
}

ICE40_UP5K = Device(part="iCE40UP5K", family="ice40", luts=5280, ffs=5280, bram=30,
                    bram_bits=4096, bram_shapes=ICE40_BRAM_SHAPES, bram_name="SB_RAM40_4K",
                    dsp=8, dsp_width=16, dsp_name="SB_MAC16", lutram=False)


@dataclasses.dataclass(frozen=True)
class Board:
    """A board: its devices (name -> (Device, amaranth-boards platform class path))."""
    name: str
    description: str
    devices: dict
    default_device: str
    clk_in_hz: float
    default_clock_mhz: float     # the sync clock the build aims for by default
    has_pll: bool                # --clock can be honoured
    default_baud: int
    uart_note: str
    programmer_board: str        # openFPGALoader -b NAME

    def device(self, name: str | None) -> Device:
        name = name or self.default_device
        if name not in self.devices:
            raise BoardError(f"board {self.name!r} has no device {name!r}; supported: "
                             f"{', '.join(self.devices)}")
        return self.devices[name][0]

    def platform(self, name: str | None):
        name = name or self.default_device
        self.device(name)
        module, cls = self.devices[name][1].rsplit(".", 1)
        import importlib
        return getattr(importlib.import_module(module), cls)()

    def tools(self) -> list:
        if self.devices[self.default_device][0].family == "ecp5":
            return ["yosys", "nextpnr-ecp5", "ecppack"]
        return ["yosys", "nextpnr-ice40", "icepack"]


BOARDS = {
    "ulx3s": Board(
        name="ulx3s", description="Radiona ULX3S (Lattice ECP5, FTDI FT231X USB-UART)",
        devices={k: (d, f"amaranth_boards.ulx3s.ULX3S_{k}_Platform")
                 for k, d in ECP5_DEVICES.items()},
        default_device="85F", clk_in_hz=25e6, default_clock_mhz=125.0, has_pll=True,
        default_baud=1_000_000, uart_note="FTDI FT231X, up to 3 Mbaud",
        programmer_board="ulx3s"),
    "icebreaker": Board(
        name="icebreaker", description="1BitSquared iCEBreaker (iCE40UP5K, FT2232H UART)",
        devices={"UP5K": (ICE40_UP5K, "amaranth_boards.icebreaker.ICEBreakerPlatform")},
        default_device="UP5K", clk_in_hz=12e6, default_clock_mhz=12.0, has_pll=False,
        default_baud=1_000_000, uart_note="FT2232H channel B",
        programmer_board="icebreaker"),
}


def get_board(name: str) -> Board:
    if name not in BOARDS:
        raise BoardError(f"unknown board {name!r}; supported: {', '.join(BOARDS)}")
    return BOARDS[name]
