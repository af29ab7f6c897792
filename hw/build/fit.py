"""Fit check: does the accelerator for a bundle fit a device? Run before every synthesis.

The estimate follows the core's structure (docs/build.md, "Fit check"), per layer and bank:
weight pointer and entry memories for W and R (sized from the bundle's non-zero counts, not
its dense shapes), one block RAM for the six accumulator slots and one LUT RAM for the six
bias slots (``6 << bits(U)`` words, U = ceil(H/P)), the pointwise lane's state, threshold
and two table memories, the event beat memories; the readout's pointer, entry,
accumulator and bias memories per bank; the UART receive buffer and the logit buffer. Each memory becomes block RAMs in the cheapest aspect
ratio, or distributed RAM when Yosys would choose it (its cost model: one 16x4
TRELLIS_DPR16X4 costs 4, one DP16KD 128, and a synchronous read port's flip-flops about as
much again, so LUT RAM wins when 8 * ceil(depth/16) * ceil(width/4) < 128 * BRAMs; checked
against builds). Multipliers: one MAC lane per bank per layer and for the readout, two per
pointwise lane, each one hard multiplier when both operands fit its width. Logic is a rough
per-lane LUT4 model, calibrated against nextpnr's counts of real builds (docs/build.md).
"""

from __future__ import annotations

import dataclasses
import math

from .. import protocol
from .boards import BOARDS, Device

__all__ = ["FitError", "FitReport", "Memory", "brams_for", "check_fit", "estimate"]

#: LUT4 sites of one 16x4 distributed RAM as nextpnr counts them (RAM LUTs + RAMW).
LUTS_PER_DPR16X4 = 6
#: Fraction of a device's LUTs the estimate may use (the estimate is rough; leave room).
LUT_LIMIT = 0.95


class FitError(ValueError):
    """The model does not fit the device; the message says what to change."""

    def __init__(self, report: FitReport):
        self.report = report
        super().__init__(report.refusal())


@dataclasses.dataclass
class Memory:
    name: str
    count: int        # identical copies (banks)
    depth: int
    width: int
    group: str        # "weights" (pointer/entry), "accumulators", "state", "io"
    read_ports: int = 1   # each read port is one copy (one write + one read per copy)
    block: bool = False   # forced into block RAM (the RTL sets ram_style = "block")
    lut: bool = False     # forced into LUT RAM where the device has it ("distributed")
    part: str = "core"    # "core": in hw.core.Accelerator; "board": the UART top's own


def brams_for(depth: int, width: int, shapes) -> int:
    """Block RAMs for one depth x width memory in its cheapest aspect ratio."""
    return min(math.ceil(width / w) * math.ceil(depth / d) for d, w in shapes)


def _lutram_cells(depth: int, width: int) -> int:
    return math.ceil(depth / 16) * math.ceil(width / 4)


def _placement(mem: Memory, device: Device) -> tuple[int, int]:
    """(BRAMs, LUTs) for one instance of ``mem`` (all its read-port copies)."""
    bits = mem.depth * mem.width
    if bits <= 64 or (not device.lutram and bits <= 512):
        return 0, bits                 # flip-flops and a read mux (~1 LUT4 a bit)
    n = brams_for(mem.depth, mem.width, device.bram_shapes)
    if device.lutram and mem.lut:
        return 0, _lutram_cells(mem.depth, mem.width) * LUTS_PER_DPR16X4 * mem.read_ports
    if device.lutram and not mem.block:
        cells = _lutram_cells(mem.depth, mem.width)
        # Yosys' costs (LUT RAM cell 4, DP16KD 128) plus its sync-read overhead, as
        # calibrated on builds: 64x14 single-read -> DP16KD; 97x10 two-read -> LUT RAM,
        # 129x11 two-read -> DP16KD.
        weight = 6 if mem.read_ports > 1 else 8
        if weight * cells < 128 * n:
            return 0, cells * LUTS_PER_DPR16X4 * mem.read_ports
    return n * mem.read_ports, 0


def _pow2(n: int) -> int:
    return 1 << max(0, (max(1, n) - 1).bit_length())


def _bits(n: int) -> int:
    return max(1, (max(1, n) - 1).bit_length())


def _mults(a: int, b: int, width: int) -> int:
    """Hard multipliers for an a x b bit product."""
    return math.ceil(a / width) * math.ceil(b / width)


@dataclasses.dataclass
class FitReport:
    device: Device
    board: str
    device_name: str
    memories: list
    bram: int
    bram_by_group: dict
    dsp: int
    luts: int
    lut_breakdown: dict
    banks: int
    layers: int
    notes: list

    @property
    def fits(self) -> bool:
        return not self.over()

    def over(self) -> list:
        d, out = self.device, []
        if self.bram > d.bram:
            out.append(f"block RAM: {self.bram} {d.bram_name} needed, {d.bram} on {d.part}")
        if self.dsp > d.dsp:
            out.append(f"multipliers: {self.dsp} {d.dsp_name} needed, {d.dsp} on {d.part}")
        if self.luts > LUT_LIMIT * d.luts:
            out.append(f"logic: ~{self.luts} LUT4 estimated, {d.luts} on {d.part} "
                       f"(limit {LUT_LIMIT:.0%})")
        return out

    def summary(self) -> str:
        d = self.device
        return (f"fit check for {d.part}: {d.bram_name} {self.bram}/{d.bram} "
                f"({self.bram / d.bram:.0%}), {d.dsp_name} {self.dsp}/{d.dsp} "
                f"({self.dsp / d.dsp:.0%}), LUT4 ~{self.luts}/{d.luts} "
                f"({self.luts / d.luts:.0%}) -> {'fits' if self.fits else 'DOES NOT FIT'}")

    def refusal(self) -> str:
        lines = [f"model does not fit {self.device.part} ({self.board} {self.device_name}):"]
        lines += [f"  - {o}" for o in self.over()]
        lines.append("  what to change:")
        lines += [f"  * {s}" for s in self.suggestions()]
        return "\n".join(lines)

    def suggestions(self) -> list:
        out, g = [], self.bram_by_group
        if self.bram > self.device.bram:
            w = g.get("weights", 0)
            a = g.get("accumulators", 0) + g.get("state", 0)
            out.append(f"more weight sparsity (prune further): weight pointer/entry memories "
                       f"take {w} of {self.bram} block RAMs, and entries scale with non-zeros")
            out.append(f"fewer banks (P={self.banks}): every bank has its own pointer, "
                       f"accumulator and state memories ({a} block RAMs now), so small "
                       f"layers waste most of each block RAM")
            out.append("narrower weights (weight_bits): each entry stores a weight and its "
                       "local index")
        if self.dsp > self.device.dsp:
            out.append(f"fewer banks: multipliers = P x (3 x layers + 1) = {self.banks} x "
                       f"{3 * self.layers + 1} = {self.dsp}")
            out.append("state/gate widths <= the multiplier width, so each product takes one "
                       "multiplier")
        if self.luts > LUT_LIMIT * self.device.luts:
            out.append(f"fewer banks (P={self.banks}): logic grows with the number of lanes")
        bigger = [name for name, (dev, _) in BOARDS[self.board].devices.items()
                  if dev.bram >= self.bram and dev.dsp >= self.dsp
                  and dev.luts * LUT_LIMIT >= self.luts]
        if bigger:
            out.append(f"a bigger device: --device {bigger[0]} fits this model")
        else:
            out.append(f"a bigger device: no {self.board} device fits this model as it is")
        return out

    def as_dict(self) -> dict:
        d = self.device
        return {"part": d.part, "fits": self.fits, "over": self.over(),
                "bram": {"used": self.bram, "total": d.bram, "name": d.bram_name,
                         "by_group": self.bram_by_group},
                "dsp": {"used": self.dsp, "total": d.dsp, "name": d.dsp_name},
                "luts": {"used": self.luts, "total": d.luts, "breakdown": self.lut_breakdown},
                "memories": [dataclasses.asdict(m) for m in self.memories],
                "notes": self.notes}


def memories(bundle, *, params=None, max_payload: int = protocol.MAX_PAYLOAD):
    """Memories of the generated design (per-bank ones with count = P), and notes on
    where their sizes come from. Also `hw.generate`'s resource summary (the core's part).
    ``params``: the bundle's `hw.core.params.CoreParams` when the caller has them."""
    fmt = bundle.format
    P = int(bundle.banks)
    ab, sb = fmt.acc_bits, fmt.state_bits
    mems = []
    notes = []
    try:
        from hw.core.params import core_params
        params = params or core_params(bundle)
        layers = [(lp.index, lp.hidden, lp.units, lp.w, lp.r) for lp in params.layers]
        ro = params.readout

        def mat(name, img):
            # a pointer word holds a column's start and end (one read port)
            return [Memory(f"{name}.ptr", P, img.ptr_depth, img.ptr_width, "weights"),
                    Memory(f"{name}.ent", P, img.ent_depth, img.ent_bits, "weights")]
        ro_rows = ro.rows if ro else 0
        ro_mats = mat("dec.w", ro.w) if ro else []
        fifo = params.fifo_depth
        notes.append("memory sizes from hw.core.params.core_params")
    except (ImportError, ValueError) as exc:
        # Without hw.core, or for a model it cannot build (more entries per bank than a
        # 32-bit pointer word addresses: far beyond any device here, which the estimate
        # then says): the same sizes from the bundle's images.
        layers = []
        for k in range(bundle.num_layers):
            h = bundle.hidden(k)
            layers.append((k, h, -(-h // P), bundle.memories[f"l{k}.w"],
                           bundle.memories[f"l{k}.r"]))

        def mat(name, img):
            depth = _pow2(img.max_entries)
            return [Memory(f"{name}.ptr", P, img.nnz.shape[1], 2 * _bits(depth + 1),
                           "weights"),
                    Memory(f"{name}.ent", P, depth, img.index_bits + 2 + img.value_bits,
                           "weights")]
        ro_rows = -(-bundle.vocab_size // P) if bundle.model.get("readout") else 0
        ro_mats = mat("dec.w", bundle.memories["dec.w"]) if ro_rows else []
        fifo = int(bundle.model["input_size"]) + 1
        notes.append(f"memory sizes estimated from the bundle ({exc})")

    for k, h, units, w, r in layers:
        units = max(2, units)
        mems += mat(f"l{k}.w", w) + mat(f"l{k}.r", r)
        # a MAC lane's six accumulator slots are one block RAM (hw/core/mac.py)
        mems.append(Memory(f"l{k}.acc", P, 6 << _bits(units), ab, "accumulators", block=True))
        # the six bias slots: one block RAM laid out like the accumulators (hw/core/mac.py)
        mems.append(Memory(f"l{k}.bias", P, 6 << _bits(units), ab, "accumulators",
                           block=True))
        mems.append(Memory(f"l{k}.c", P, units, sb, "state"))
        mems.append(Memory(f"l{k}.theta", P, units, sb, "state"))
        mems.append(Memory(f"l{k}.sig", P, 1 << fmt.table_bits, fmt.gate_bits, "state"))
        mems.append(Memory(f"l{k}.tanh", P, 1 << fmt.table_bits, sb, "state"))
        mems.append(Memory(f"l{k}.beats", 2, units, P * (sb + 1) + _bits(units), "state"))
    if ro_rows:
        mems += ro_mats
        mems.append(Memory("dec.acc", P, 1 << _bits(ro_rows), ab, "accumulators"))
        mems.append(Memory("dec.bias", P, 1 << _bits(ro_rows), ab, "accumulators", lut=True))
    mems.append(Memory("input_fifo", 1, fifo, 16 + sb + 2, "io"))
    mems.append(Memory("uart_rx_buffer", 1, max_payload, 8, "io", part="board"))
    if bundle.vocab_size:
        mems.append(Memory("logit_buffer", 1, bundle.vocab_size, 8 * ((ab + 7) // 8), "io",
                           part="board"))
    return mems, notes


def estimate(bundle, board: str, device_name: str, *,
             max_payload: int = protocol.MAX_PAYLOAD) -> FitReport:
    """Resource estimate of the board design for ``bundle`` on one device."""
    board_obj = BOARDS[board]
    device = board_obj.device(device_name)
    fmt = bundle.format
    P = int(bundle.banks)
    L = bundle.num_layers
    ab, sb, wb = fmt.acc_bits, fmt.state_bits, fmt.weight_bits
    mems, notes = memories(bundle, max_payload=max_payload)

    bram, ram_luts, by_group = 0, 0, {}
    for mem in mems:
        n, luts = _placement(mem, device)
        bram += n * mem.count
        ram_luts += luts * mem.count
        by_group[mem.group] = by_group.get(mem.group, 0) + n * mem.count

    dw = device.dsp_width
    readout = bool(bundle.model.get("readout"))
    mac = _mults(sb, wb, dw)
    pointwise = _mults(fmt.gate_bits, fmt.pre_bits, dw) + _mults(fmt.gate_bits, sb + 1, dw)
    dsp = P * (L * (mac + pointwise) + (mac if readout else 0))

    # Rough LUT4 model (calibrated on builds; docs/build.md): per MAC lane the accumulate
    # adder, forwarding and bias muxes; per pointwise lane narrowing, saturation, table
    # indexing, compare and soft reset; per bank the pointer/entry address logic; the
    # sequencer per layer; UART, framing and the command engine.
    lanes_mac = P * (L + (1 if readout else 0))
    breakdown = {
        "mac_lanes": lanes_mac * (7 * ab + 120),
        "pointwise_lanes": P * L * (14 * sb + 18 * fmt.pre_bits + 220),
        # (round thirteen: a column FIFO, its credit counter and a stage more per bank)
        "bank_addressing": P * (2 * L + 1) * 140,
        "sequencing": L * 350 + 400 + (3 * ab + 150 if readout else 0),
        "host_interface": 1500,
        "distributed_ram": ram_luts,
    }
    luts = sum(breakdown.values())
    notes.append("LUT figure is a rough model; block RAM and multiplier counts follow the "
                 "core's memories and lanes")
    return FitReport(device=device, board=board, device_name=device_name or
                     board_obj.default_device, memories=mems, bram=bram,
                     bram_by_group=by_group, dsp=dsp, luts=luts, lut_breakdown=breakdown,
                     banks=P, layers=L, notes=notes)


def check_fit(bundle, board: str, device_name: str, **kwargs) -> FitReport:
    """`estimate`, raising `FitError` (with what to change) when the model does not fit."""
    report = estimate(bundle, board, device_name, **kwargs)
    if not report.fits:
        raise FitError(report)
    return report
