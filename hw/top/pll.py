"""ECP5 EHXPLLL: divider search and instance."""

import dataclasses

from amaranth.hdl import ClockSignal, Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ECP5PLL", "PLLSettings", "ecp5_pll_settings"]

# ECP5 sysCLOCK PLL limits (Lattice TN1263 / FPGA-DS-02012, as used by Trellis' ecppll).
PFD_MIN, PFD_MAX = 3.125e6, 400e6
VCO_MIN, VCO_MAX = 400e6, 800e6
OUT_MIN, OUT_MAX = 3.125e6, 400e6


@dataclasses.dataclass(frozen=True)
class PLLSettings:
    """Dividers for CLKOP fed back into CLKFB: f_out = f_in / clki_div * clkfb_div."""
    f_in: float
    f_out: float
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def f_vco(self) -> float:
        return self.f_out * self.clkop_div

    @property
    def error(self) -> float:
        return self.f_out - self.f_target

    f_target: float = 0.0


def ecp5_pll_settings(f_in: float, f_target: float) -> PLLSettings:
    """The dividers whose output is closest to ``f_target`` (ties: VCO nearest 600 MHz)."""
    if not OUT_MIN <= f_target <= OUT_MAX:
        raise ValueError(f"PLL output {f_target / 1e6:.3f} MHz outside "
                         f"{OUT_MIN / 1e6:.3f}..{OUT_MAX / 1e6:.0f} MHz")
    best = None
    for clki_div in range(1, 129):
        f_pfd = f_in / clki_div
        if not PFD_MIN <= f_pfd <= PFD_MAX:
            continue
        for clkfb_div in range(1, 81):
            f_out = f_pfd * clkfb_div
            if not OUT_MIN <= f_out <= OUT_MAX:
                continue
            for clkop_div in range(1, 129):
                f_vco = f_out * clkop_div
                if not VCO_MIN <= f_vco <= VCO_MAX:
                    continue
                key = (abs(f_out - f_target), abs(f_vco - 600e6))
                if best is None or key < best[0]:
                    best = (key, PLLSettings(f_in, f_out, clki_div, clkfb_div, clkop_div,
                                             f_target))
    if best is None:
        raise ValueError(f"no ECP5 PLL setting for {f_target / 1e6:.3f} MHz "
                         f"from {f_in / 1e6:.3f} MHz")
    return best[1]


class ECP5PLL(wiring.Component):
    """One EHXPLLL: ``clk_in`` -> CLKOP, which drives the ``domain`` clock.

    Members
    -------
    clk_in : In(1), the reference clock.
    locked : Out(1), PLL lock (asynchronous).
    """

    clk_in: In(1)
    locked: Out(1)

    def __init__(self, settings: PLLSettings, *, domain: str = "sync"):
        self.settings = settings
        self.domain = domain
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        s = self.settings
        clkop = Signal()
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{s.f_in / 1e6:.6f}",
            a_FREQUENCY_PIN_CLKOP=f"{s.f_out / 1e6:.6f}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8",
            a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=s.clkop_div,
            p_CLKOP_CPHASE=s.clkop_div - 1, p_CLKOP_FPHASE=0,
            p_CLKI_DIV=s.clki_div, p_CLKFB_DIV=s.clkfb_div, p_FEEDBK_PATH="CLKOP",
            i_CLKI=self.clk_in, i_CLKFB=clkop, i_RST=0, i_STDBY=0,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=clkop, o_LOCK=self.locked,
        )
        m.d.comb += ClockSignal(self.domain).eq(clkop)
        return m
