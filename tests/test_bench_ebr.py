"""bench.bench_ebr: the three probe designs and the parsing of nextpnr's critical path."""

import pytest
from amaranth.back import rtlil

from bench.bench_ebr import KINDS, _critical, _Probe

LOG = """Info: Max frequency for clock '$glbnet$clk': 150.80 MHz (PASS at 125.00 MHz)
Info: Critical path report for clock '$glbnet$clk' (posedge -> posedge):
Info: placement-time path, ignored
Info:   clk-to-q  9.99  9.99 Source stale.DOB1

Info: Critical path report for clock '$glbnet$clk' (posedge -> posedge):
Info:       type curr  total name
Info:   clk-to-q  5.83  5.83 Source mem.0.0.DOB10
Info:    routing  1.04  6.87 Net mem.0.0_DOB10[2] (46,25) -> (46,26)
Info:      logic  0.24  7.10 Source q_TRELLIS_FF_Q_10_DI_LUT4_Z.F
Info:      setup  0.00  7.23 Source q_TRELLIS_FF_Q_10.DI
Info: 6.07 ns logic, 1.17 ns routing

Info: Max frequency for clock '$glbnet$clk': 138.24 MHz (PASS at 125.00 MHz)
"""


def test_critical_path_of_the_routed_design():
    """The last report (after routing) counts, not the placement-time one before it."""
    assert _critical(LOG) == {"source": "mem.0.0.DOB10", "clock_to_out_ns": 5.83,
                              "path_ns": 7.23, "fmax_mhz": 138.24}


def test_the_four_designs():
    assert KINDS == ("syncread", "noreg", "outreg", "absorbed")


@pytest.mark.parametrize("kind", KINDS)
def test_probe_designs_elaborate(kind):
    """syncread (and absorbed, which is syncread before hw.build.outreg) goes through
    hw.core.ram like the core; the others instantiate a DP16KD in the named register mode."""
    text = rtlil.convert(_Probe(kind), name="top")
    if kind in ("syncread", "absorbed"):
        assert "DP16KD" not in text and "memory" in text
    else:
        assert "DP16KD" in text
        assert ('"OUTREG"' in text) == (kind == "outreg")
