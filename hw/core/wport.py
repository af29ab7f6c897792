"""The run-time weight-write bus: one register chain through every block of the accelerator.

A write must reach every writable memory (a few hundred on the default model, spread over
the whole die), but nothing is in a hurry: weights are loaded between steps, at most one
write per UART frame. Two layouts were measured on the default model's 85F build and both
lost:

- one register per block, broadcast to all its memories: single nets of 25 ns (a streamer's
  register to a pointer block RAM 48 columns away), the critical path at 37.7 MHz;
- one register per memory, chained: about 3 600 more flip-flops than one per lane, a sixth
  more placed wire length (570k against 490k), and router2 stalled at 32 000 overused arcs.

So the chain has one *hop* per lane: every MAC lane, pointwise lane and streamer bank holds
one register of the (narrowed) bus and the hit flags of its own memories, decoded from the
previous hop. A hop drives only its lane's memories, which sit together on the die, and the
next hop, which is the neighbouring lane. The chain runs accelerator -> layer 0 (streamer
banks, then MAC and pointwise lanes) -> layer 1 -> ... -> readout.

A write lands at most ``1 + hops`` cycles after its ``w_stream`` handshake (the
accelerator's own register, then the chain); the accelerator accepts no command in that
time, so a step never reads a half-written model.
"""

from amaranth.hdl import Signal, unsigned
from amaranth.lib import data
from amaranth.lib.wiring import In, Out

from hw.fixedpoint import bits_for

from .replica import Replica

__all__ = ["WriteChain", "bus_layout", "chain_blocks", "write_members", "wwrite_layout"]


def wwrite_layout() -> data.StructLayout:
    """A run-time memory write (the host's w_stream payload)."""
    return data.StructLayout({"mem": 8, "bank": 8, "addr": 16, "data": 32})


def bus_layout(mems: int, banks: int, addr_bits: int, data_bits: int) -> data.StructLayout:
    """The chain's payload: `wwrite_layout` narrowed to the fields' used widths (the
    accelerator drops a write whose fields do not fit before it enters the chain)."""
    return data.StructLayout({
        "mem": unsigned(bits_for(mems)), "bank": unsigned(bits_for(banks)),
        "addr": unsigned(max(1, addr_bits)), "data": unsigned(max(1, data_bits))})


def write_members(bus=None) -> dict:
    """A block's chain ports: ``wr``/``wr_en`` in from the previous hop, ``wr_o``/``wr_o_en``
    out of its last hop (``bus`` defaults to the unnarrowed `wwrite_layout`)."""
    bus = wwrite_layout() if bus is None else bus
    return {"wr": In(bus), "wr_en": In(1), "wr_o": Out(bus), "wr_o_en": Out(1)}


def chain_blocks(m, wr, wr_en, blocks):
    """Connect ``blocks`` (each with `write_members`) into one chain fed by ``wr``/``wr_en``;
    returns the last block's ``(wr_o, wr_o_en)``."""
    for blk in blocks:
        m.d.comb += [blk.wr.eq(wr), blk.wr_en.eq(wr_en)]
        wr, wr_en = blk.wr_o, blk.wr_o_en
    return wr, wr_en


class WriteChain:
    """A block's hops of the write chain.

    ``add(port, hit, key, addr)`` registers a memory write port and its address decode
    (``hit(bus)`` -> 1 bit, on the incoming hop's payload); ports with the same ``key`` (a
    lane or bank) share one hop. ``addr(bus)``, if given, maps the bus address to the
    port's (registered with the hop, like the hit); otherwise the port takes its low bits.
    ``build(m, hops, wr, wr_en, wr_o, wr_o_en)`` checks that ``hops`` (the block's declared
    `write_hops`) is what it builds and wires the hops in ``key`` order from the block's
    input to its output. `hops` is the number of registers.
    """

    def __init__(self, name: str):
        self.name, self.targets = name, []

    def add(self, port, hit, key=0, addr=None):
        self.targets.append((key, port, hit, addr))

    @property
    def keys(self) -> list:
        return sorted({t[0] for t in self.targets})

    @property
    def hops(self) -> int:
        return len(self.keys)

    def build(self, m, hops, wr, wr_en, wr_o, wr_o_en):
        # ``hops`` is what the block declared (`write_hops`), from which the accelerator
        # computes how long a write takes to land; a block that built more would let a
        # command run before its writes landed
        if hops != self.hops:
            raise ValueError(f"{self.name}: {self.hops} write-chain hops built, {hops} declared")
        layout = wr.shape()
        prev, prev_v = wr, wr_en
        for h, key in enumerate(self.keys):
            ports = [(p, hit, addr) for k, p, hit, addr in self.targets if k == key]
            bus = Signal(layout, name=f"{self.name}_h{h}", reset_less=True)   # v marks it
            v = Signal(name=f"{self.name}_h{h}_v")
            # the decode is registered with the payload: a memory's write enable is a
            # flip-flop, and the compare sits on the short net from the previous hop
            m.d.sync += [bus.eq(prev), v.eq(prev_v)]
            for i, (port, hit, addr) in enumerate(ports):
                hit_d = prev_v & hit(prev)
                if len(port.en) == 1:
                    en = Signal(name=f"{self.name}_h{h}_hit{i}")
                    m.d.sync += en.eq(hit_d)
                else:
                    # a write port with byte lanes: one enable flip-flop per lane, kept
                    # apart (`hw.core.replica`), so that each drives only its lane's share
                    # of a wide LUT RAM (WRE has a long setup; `hw.core.mac`)
                    rep = Replica(len(port.en))
                    m.submodules[f"{self.name}_h{h}_we{i}"] = rep
                    m.d.comb += rep.d.eq(hit_d.replicate(len(port.en)))
                    en = rep.q
                if addr is None:
                    m.d.comb += port.addr.eq(bus.addr[:len(port.addr)])
                else:
                    pa = Signal(len(port.addr), name=f"{self.name}_h{h}_a{i}", reset_less=True)
                    m.d.sync += pa.eq(addr(prev))
                    m.d.comb += port.addr.eq(pa)
                m.d.comb += [port.data.eq(bus.data[:len(port.data)]), port.en.eq(en)]
            prev, prev_v = bus, v
        m.d.comb += [wr_o.eq(prev), wr_o_en.eq(prev_v)]
