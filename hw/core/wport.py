"""The run-time weight-write bus, carried from memory to memory through a register chain.

A write must reach every writable memory (a few hundred on the default model, spread over
the whole die), but nothing is in a hurry: weights are loaded between steps. Broadcast
through one register per block, the bus made single nets of 25 ns on the 85F (the default
build's critical path at 37.7 MHz). So every block passes the bus along a chain: its first
register decodes which of its memories the write is for, and each further register feeds
one memory and the next register, a net from one memory to its neighbour in the chain.

A write lands `write_latency(P)` cycles after its ``w_stream`` handshake; the accelerator
accepts no command in that time, so a step never reads a half-written model.
"""

from amaranth.hdl import Signal
from amaranth.lib import data

__all__ = ["WriteChain", "write_latency", "wwrite_layout"]


def wwrite_layout() -> data.StructLayout:
    """A run-time memory write (the host's w_stream payload)."""
    return data.StructLayout({"mem": 8, "bank": 8, "addr": 16, "data": 32})


def write_latency(banks: int) -> int:
    """Cycles from a ``w_stream`` handshake to the last memory write: the accelerator's
    register plus the longest chain (a layer's streamer: P banks x 2 matrices x pointer and
    entry memories; a MAC lane: 6 bias memories)."""
    return 1 + max(4 * banks, 6)


class WriteChain:
    """One block's write chain.

    ``add(port, hit, key)`` registers a memory write port and its address decode
    (``hit(bus)`` -> 1 bit); ``build(m, wr, wr_en)`` orders the ports by ``key`` (neighbours
    in the chain should be neighbours on the die: the same bank) and wires the registers.
    """

    def __init__(self, name: str):
        self.name, self.targets = name, []

    def add(self, port, hit, key=0):
        self.targets.append((key, len(self.targets), port, hit))

    def build(self, m, wr, wr_en):
        targets = [t[2:] for t in sorted(self.targets, key=lambda t: (t[0], t[1]))]
        n = len(targets)
        abits = max(len(p.addr) for p, _ in targets)
        dbits = max(len(p.data) for p, _ in targets)
        ibits = max(1, (n - 1).bit_length())
        hops = []
        for k in range(n):
            hop = (Signal(name=f"{self.name}_w{k}_v"), Signal(ibits, name=f"{self.name}_w{k}_i"),
                   Signal(abits, name=f"{self.name}_w{k}_a"),
                   Signal(dbits, name=f"{self.name}_w{k}_d"))
            hops.append(hop)
        # hop 0: which memory of this block the write is for
        v0, i0, a0, d0 = hops[0]
        m.d.sync += [v0.eq(0), a0.eq(wr.addr[:abits]), d0.eq(wr.data[:dbits])]
        for k, (_, hit) in enumerate(targets):
            with m.If(wr_en & hit(wr)):
                m.d.sync += [v0.eq(1), i0.eq(k)]
        for k in range(1, n):
            m.d.sync += [dst.eq(src) for dst, src in zip(hops[k], hops[k - 1])]
        for k, (port, _) in enumerate(targets):
            v, i, a, d = hops[k]
            m.d.comb += [port.addr.eq(a[:len(port.addr)]), port.data.eq(d[:len(port.data)]),
                         port.en.eq(v & (i == k))]
