"""The UART top level (UART, framing, command engine, accelerator) under cocotb.

The testbench (sim/cocotb_uart/test_uart_top_cocotb.py) speaks through hw.protocol, the
same code as the host runtime, and injects framing errors (garbage, bad CRC, truncated
frames, bad lengths, unknown commands, busy). ``SIM`` selects icarus (default) or verilator;
``WAVES=1`` dumps waveforms. The UART runs at clk/4 in simulation.
"""

import shutil
import xml.etree.ElementTree as ET

import pytest

from sim.cocotb_uart import runner

pytestmark = pytest.mark.cocotb


def _check_results(xml_path):
    root = ET.parse(xml_path).getroot()
    cases = list(root.iter("testcase"))
    assert cases, "no cocotb test ran"
    failed = [c.get("name") for c in cases if c.find("failure") is not None
              or c.find("error") is not None]
    assert not failed, f"cocotb tests failed: {failed}"
    return len(cases)


def _need(sim):
    if sim == "icarus" and shutil.which("iverilog") is None:
        pytest.skip("iverilog not installed (apt-get install iverilog)")


def test_uart_top_stub_core(tmp_path):
    """Protocol engine against the stand-in core: every command, exact results, errors."""
    import os
    sim = os.environ.get("SIM", "icarus")
    _need(sim)
    runner.build_top_verilog(tmp_path)
    assert _check_results(runner.run(tmp_path, sim=sim)) >= 5


@pytest.mark.slow
def test_uart_top_real_core(tmp_path):
    """The real accelerator behind the UART: top1 and logits equal the golden model's."""
    import os
    sim = os.environ.get("SIM", "icarus")
    _need(sim)
    from hw.bundle import load_bundle
    from sim.random_bundle import random_bundle
    from sw.golden import Golden
    bundle = load_bundle(random_bundle(tmp_path / "bundle", layers=1, hidden=8, vocab=12,
                                       banks=2, sparsity=0.5, seed=11))
    tokens = [3, 0, 11, 5, 5, 7]
    golden = Golden(bundle)
    golden.reset()
    traces = [golden.step_token(t) for t in tokens]
    expect = {"tokens": tokens, "top1": [int(t.top1) for t in traces],
              "logits": [[int(x) for x in t.logits] for t in traces]}
    runner.build_top_verilog(tmp_path / "rtl", bundle=bundle)
    assert _check_results(runner.run(tmp_path / "rtl", sim=sim, expect=expect)) >= 5
