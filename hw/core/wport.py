"""The run-time weight-write bus as each block sees it: registered once more, locally.

The accelerator registers ``w_stream`` once (`WRITE_LATENCY` counts both stages); every
block that owns writable memories keeps its own copy of that register and turns its
address compare into a registered write enable per memory. Without this the one write bus
fanned out, through a 16-bit compare per memory, to the write enables of a few hundred block
RAMs spread over the whole die, and that net set the clock of the default build.
"""

from amaranth.hdl import Signal
from amaranth.lib import data

__all__ = ["WRITE_LATENCY", "WriteTap", "wwrite_layout"]

#: cycles from a ``w_stream`` handshake until the memory write happens (the accelerator
#: accepts no command in that time, so a step never reads a half-written model)
WRITE_LATENCY = 2


def wwrite_layout() -> data.StructLayout:
    """A run-time memory write (the host's w_stream payload)."""
    return data.StructLayout({"mem": 8, "bank": 8, "addr": 16, "data": 32})


class WriteTap:
    """A block's registered view of the write bus.

    ``tap.q`` is the block's copy of the bus (address, data) and ``tap.enable(hit)`` a
    registered write enable for the memory whose address decode is ``hit(bus)``; both are
    one cycle behind the block's ``wr`` / ``wr_en`` inputs, so they stay aligned.
    """

    def __init__(self, m, wr, wr_en, name: str):
        self.m, self.wr, self.wr_en, self.name = m, wr, wr_en, name
        self.q = Signal(wwrite_layout(), name=f"{name}_wr_q")
        m.d.sync += self.q.eq(wr)
        self._count = 0

    def enable(self, hit) -> Signal:
        en = Signal(name=f"{self.name}_wr_en{self._count}")
        self._count += 1
        self.m.d.sync += en.eq(self.wr_en & hit(self.wr))
        return en
