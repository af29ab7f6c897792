"""Memories whose synchronous reads map to a bare block RAM (or LUT RAM) read port.

An Amaranth synchronous read port is not transparent: in the cycle of a write to the same
address it returns the old word. A DP16KD does not promise that between its two ports, so
Yosys (``memory_libmap``) emulates it: it registers the write address and data, compares the
addresses and puts a multiplexer after the block RAM's output ("emulate read-first
behavior", "emulate transparency with write port 0" in the synthesis log). Measured on a
129 x 22 table with a read and a write port: 1 DP16KD + 54 flip-flops + 37 LUT4, and every
read passes a LUT after the block RAM's ~5.5 ns clock-to-out. The default build carried
that on every writable memory: pointer tables, entry lists, accumulators.

No memory here reads an address in the cycle it is written and uses the word: weights,
biases and thresholds are written only while the accelerator is idle; a MAC lane's
read-modify-write replaces a word read under a write with the forwarded sum
(`hw.core.mac`); an event store's readers stay below its write pointer. So `ram` marks the
memory ``no_rw_check`` (the collision's result is undefined), and `SyncRead` reads it
through an asynchronous port into a register without reset, which Yosys's ``memory_dff``
folds into the port, honouring the attribute (it does not look at the attribute for a port
that is synchronous already, as Amaranth's are). The same 129 x 22 table then maps to one
DP16KD and nothing else (`tests/test_hw_ram.py`). In simulation both forms behave alike.
"""

from amaranth.hdl import Signal
from amaranth.lib import memory

__all__ = ["SyncRead", "ram"]


def ram(*, shape, depth, init=(), style=None) -> memory.Memory:
    """A `memory.Memory` without read/write collision semantics (read it with `SyncRead`).

    ``style``: Yosys's ``ram_style`` ("block", "distributed"), or None for its choice.
    """
    attrs = {"no_rw_check": 1}
    if style is not None:
        attrs["ram_style"] = style
    return memory.Memory(shape=shape, depth=depth, init=list(init), attrs=attrs)


class SyncRead:
    """A synchronous read port of ``mem`` built from an asynchronous one and a register.

    Members as an Amaranth ``ReadPort``: ``addr``, ``en`` (1 unless driven; ``data`` holds
    while it is 0) and ``data`` (the word at the ``addr`` of the last enabled cycle).
    """

    def __init__(self, m, mem: memory.Memory, *, name: str):
        port = mem.read_port(domain="comb")
        self.addr = port.addr
        self.en = Signal(init=1, name=f"{name}_en")
        self.data = Signal(mem.shape, name=f"{name}_q", reset_less=True)
        with m.If(self.en):
            m.d.sync += self.data.eq(port.data)
