"""Drive an Amaranth stream port of the Verilog top from cocotb (``<name>__payload``,
``__valid``, ``__ready``), the same way in every testbench: change inputs at a falling edge,
sample ``ready`` in the read-only phase before the rising edge that takes the word."""

from __future__ import annotations

from cocotb.triggers import FallingEdge, ReadOnly

__all__ = ["flag", "offer", "release"]


def flag(sig) -> bool:
    """A handshake bit; X/Z reads as 0. (Icarus does not evaluate Yosys' ``always @*``
    blocks at time 0 until an input changes, so idle outputs can read X until then.)"""
    v = sig.value
    return v.is_resolvable and bool(int(v))


async def offer(dut, stream: str, word: int, *, gap: float = 0.0, rng=None) -> None:
    """Present ``word`` on ``stream`` until the DUT takes it. Before it, idle cycles with
    probability ``gap`` each (``rng``). ``valid`` stays 1, so words go back to back; call
    `release` after the last one."""
    valid = getattr(dut, f"{stream}__valid")
    while gap and rng.random() < gap:
        await FallingEdge(dut.clk)
        valid.value = 0
    await FallingEdge(dut.clk)
    getattr(dut, f"{stream}__payload").value = word
    valid.value = 1
    ready = getattr(dut, f"{stream}__ready")
    while True:
        await ReadOnly()
        if flag(ready):
            break
        await FallingEdge(dut.clk)


async def release(dut, stream: str) -> None:
    """Drop ``valid`` after the rising edge that took the last word."""
    await FallingEdge(dut.clk)
    getattr(dut, f"{stream}__valid").value = 0
