"""Move the flip-flops after an ECP5 block RAM into the block RAM's own output register.

Every memory of the core is read through `hw.core.ram.SyncRead`, which Yosys maps onto a
DP16KD with ``REGMODE = "NOREG"``: the read data leaves the block RAM 5.83 ns after the
clock edge (speed 6), against 0.96 ns from its output register (``"OUTREG"``;
`bench.bench_ebr`). Yosys never uses the output register: ``memory_libmap`` has no rule
for it (YosysHQ/yosys#5814). But nearly every read is registered once more in the fabric
right after the block RAM (2 520 of the 2 744 read-data sinks of the default build are
flip-flops), and that flip-flop is exactly what the output register would be, at the same
latency. This pass works on Yosys's JSON netlist (``top.json``, between synthesis and
nextpnr) and moves such a register into the primitive.

A DP16KD port holds its read data in an output latch, loaded at a clock edge where its
clock enable (CEx) is high; with ``REGMODE_x = "OUTREG"`` the latch feeds a register,
loaded at a clock edge where OCEx is high and cleared by RSTx (Lattice TN1264, "ECP5 and
ECP5-5G Memory Usage Guide", and the DP16KD port list of Yosys's ``cells_bb.v`` and
nextpnr-ecp5). A fabric TRELLIS_FF whose DI is a read-data bit, on the port's clock,
enabled by CE and never set or reset, is that register. (Whether CEx gates that register
as well as OCEx is not written down for the DP16KD; Lattice's simulation model of the ECP3
DP16KC, its predecessor with the same pins, loads it under OCEx alone. A port is converted
only where the two readings agree: CEx is 1, or the register's own enable.) So a read port
is converted when, and only when:

- it is in ``NOREG`` mode, its clock is not inverted (``CLKxMUX``) and its RSTx inputs are
  the constant 0 (with ``OUTREG`` they would clear the register);
- every read-data bit that is used drives exactly one sink, the DI of a TRELLIS_FF, and no
  module port;
- all those flip-flops are clocked by the port's clock net, not inverted (``CLKMUX``);
  share one clock enable (one CE net with ``CEMUX = "CE"``, or always enabled: ``CEMUX =
  "1"`` or CE tied to 1); have their set/reset off (LSR tied inactive under ``LSRMUX``);
  power up at 0 (``REGSET = "RESET"``, as the block RAM's register does); are not reset by
  a GSR/SGSR cell; carry no ``keep`` attribute;
- the port's clock enable (CEx; CEA and CEB for a 36-bit RAM) is the constant 1 or the
  flip-flops' enable net.

Then ``REGMODE_x`` becomes ``"OUTREG"``, OCEx gets the flip-flops' enable (their CE net or
1), the read-data pins drive the flip-flops' Q nets directly, and the flip-flops are
deleted. A 36-bit pseudo-dual-port RAM (what Yosys's ``$__PDPW16KD_`` becomes: a DP16KD
with ``DATA_WIDTH_A = 36``, read on port B, its data on DOA and DOB) is one read port: both
halves are converted together (REGMODE_A and REGMODE_B, OCEA and OCEB, as nextpnr does
when it turns a PDPW16KD into a DP16KD), and only when CLKA and CLKB are the same net.

Every other port is left as it is, and the reason is counted.

    python -m hw.build.outreg top.json [-o OUT] [--check]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

from sw.atomic import atomic_write_text

__all__ = ["OutregResult", "absorb_file", "absorb_output_registers", "left_text", "main"]

# Why a read port is left alone (the keys of OutregResult.left).
ALREADY = "already OUTREG"
CLOCK_INVERTED = "port clock inverted"
PORT_RESET = "port reset in use"
TWO_CLOCKS = "pseudo-dual-port with two clocks"
NO_CLOCK = "port clock constant"
MODULE_PORT = "read data is a module port"
FANOUT = "read data has several sinks"
LOGIC = "read data feeds logic"
OTHER_CLOCK = "register on another clock"
ENABLE = "register enable inverted or unknown"
ENABLES_DIFFER = "register enables differ"
SET_RESET = "register has a set/reset"
POWER_UP = "register powers up at 1"
GSR = "register on the global set/reset"
KEPT = "register marked keep"
READ_ENABLE = "read enable is not the register's"

_CONSTANTS = ("0", "1", "x", "z")


def left_text(left: dict) -> str:
    """The reasons ports were left, most frequent first: ``"reason: n, ..."`` (or "none")."""
    return ", ".join(f"{why}: {n}" for why, n in sorted(
        left.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"


@dataclasses.dataclass
class OutregResult:
    """What the pass did: read ports seen, converted, flip-flops removed, reasons left."""

    read_ports: int = 0
    absorbed: int = 0
    flip_flops: int = 0
    left: Counter = dataclasses.field(default_factory=Counter)

    def summary(self) -> str:
        return (f"absorbed {self.absorbed} of {self.read_ports} block-RAM read ports "
                f"({self.flip_flops} flip-flops); left: {left_text(self.left)}")

    def as_dict(self) -> dict:
        return {"read_ports": self.read_ports, "absorbed": self.absorbed,
                "flip_flops": self.flip_flops, "left": dict(sorted(self.left.items()))}


@dataclasses.dataclass(frozen=True)
class _ReadPort:
    """The pins and parameters of one DP16KD read port (two halves for a 36-bit PDP RAM)."""

    data_pins: tuple        # DOA0 ... / DOB0 ...
    clocks: tuple           # CLKA, CLKB
    resets: tuple           # RSTA, RSTB
    output_enables: tuple   # OCEA, OCEB
    regmodes: tuple         # REGMODE_A, REGMODE_B
    clock_enables: tuple    # CEA, CEB


def _str_param(cell: dict, name: str, default: str | None = None) -> str | None:
    """A string parameter. Yosys's JSON adds a space to strings that look like bit
    vectors ("1 " for CEMUX = "1"), so that is stripped."""
    value = cell.get("parameters", {}).get(name, default)
    return value.rstrip(" ") if isinstance(value, str) else value


def _int_param(cell: dict, name: str, default: int) -> int:
    value = cell.get("parameters", {}).get(name)
    if value is None:
        return default
    if isinstance(value, int):
        return value
    try:
        return int(value.rstrip(" "), 2)      # Yosys writes integers as bit strings
    except ValueError:
        return int(value)


def _const(cell: dict, pin: str) -> str | None:
    """"0"/"1"/"x"/"z" when ``pin`` is tied to a constant, "" when unconnected, else None."""
    bits = cell.get("connections", {}).get(pin)
    if not bits:
        return ""
    return bits[0] if len(bits) == 1 and bits[0] in _CONSTANTS else None


def _net(cell: dict, pin: str):
    bits = cell.get("connections", {}).get(pin) or [""]
    return bits[0]


def _data_pins(side: str) -> tuple:
    return tuple(f"DO{side}{k}" for k in range(18))


def _read_ports(ram: dict) -> list[_ReadPort]:
    """A true dual-port RAM's two ports, or a pseudo-dual-port RAM's one read port."""
    if _int_param(ram, "DATA_WIDTH_A", 18) == 36:
        # pseudo-dual-port (PDPW16KD): written through port A, read through port B, whose
        # 36-bit word leaves on DOA (bits 17..0) and DOB (35..18); Yosys ties RSTA to 0
        return [_ReadPort(_data_pins("A") + _data_pins("B"), ("CLKA", "CLKB"),
                          ("RSTA", "RSTB"), ("OCEA", "OCEB"), ("REGMODE_A", "REGMODE_B"),
                          ("CEA", "CEB"))]
    return [_ReadPort(_data_pins(s), (f"CLK{s}",), (f"RST{s}",), (f"OCE{s}",),
                      (f"REGMODE_{s}",), (f"CE{s}",)) for s in "AB"]


def _enable(ff: dict):
    """The flip-flop's clock enable: "1" (always), a net (bit number), or None (inverted,
    never enabled, unconnected: not a register the block RAM can stand for)."""
    cemux = _str_param(ff, "CEMUX")
    if cemux == "1":
        return "1"
    if cemux != "CE":
        return None                    # "INV", "0", or missing (Yosys always writes it)
    ce = _const(ff, "CE")
    if ce == "1":
        return "1"
    return _net(ff, "CE") if ce is None else None


def _reset_inactive(ff: dict) -> bool:
    lsr = _const(ff, "LSR")
    if _str_param(ff, "LSRMUX", "LSR") == "INV":
        return lsr == "1"
    return _str_param(ff, "LSRMUX", "LSR") == "LSR" and lsr in ("0", "")


class _Netlist:
    """One module's cells and, for every bit number, who reads it."""

    def __init__(self, module: dict):
        self.module = module
        self.cells = module.get("cells", {})
        self.readers = defaultdict(list)       # bit -> [(cell name, pin)]
        self.port_bits = set()                 # bits that leave the module
        for name, cell in self.cells.items():
            dirs = cell.get("port_directions", {})
            for pin, bits in cell.get("connections", {}).items():
                if dirs.get(pin) == "output":
                    continue                   # a pin of unknown direction counts as a reader
                for bit in bits:
                    if isinstance(bit, int):
                        self.readers[bit].append((name, pin))
        for port in module.get("ports", {}).values():
            if port.get("direction") != "input":
                self.port_bits.update(b for b in port.get("bits", []) if isinstance(b, int))
        self.gsr = any(c.get("type") in ("GSR", "SGSR") for c in self.cells.values())


def _plan(net: _Netlist, ram: dict, port: _ReadPort):
    """Whether and how to convert one read port: ``(None, [], None)`` when no read-data bit
    is used (not a read port), ``(reason, [], None)`` to leave it, ``(None, moves, enable)``
    to convert it (``moves``: [(data pin, flip-flop name)])."""
    used = [(pin, _net(ram, pin)) for pin in port.data_pins
            if isinstance(_net(ram, pin), int)]
    used = [(pin, bit) for pin, bit in used if net.readers.get(bit) or bit in net.port_bits]
    if not used:
        return None, [], None
    if any(_str_param(ram, p, "NOREG") != "NOREG" for p in port.regmodes):
        return ALREADY, [], None
    if any(_str_param(ram, f"{c}MUX", c) != c for c in port.clocks):
        return CLOCK_INVERTED, [], None
    if any(_const(ram, r) != "0" for r in port.resets):
        return PORT_RESET, [], None
    clock = _net(ram, port.clocks[0])
    if not isinstance(clock, int):
        return NO_CLOCK, [], None
    if any(_net(ram, c) != clock for c in port.clocks):
        return TWO_CLOCKS, [], None
    moves, enables = [], set()
    for pin, bit in used:
        readers = net.readers.get(bit, [])
        if bit in net.port_bits:
            return MODULE_PORT, [], None
        if len(readers) > 1:
            return FANOUT, [], None
        name, sink = readers[0]
        ff = net.cells[name]
        if ff.get("type") != "TRELLIS_FF" or sink != "DI":
            return LOGIC, [], None
        if _net(ff, "CLK") != clock or _str_param(ff, "CLKMUX", "CLK") != "CLK":
            return OTHER_CLOCK, [], None
        enable = _enable(ff)
        if enable is None:
            return ENABLE, [], None
        if not _reset_inactive(ff):
            return SET_RESET, [], None
        if _str_param(ff, "REGSET", "RESET") != "RESET":
            return POWER_UP, [], None
        if net.gsr and _str_param(ff, "GSR", "ENABLED") != "DISABLED":
            return GSR, [], None
        if "keep" in ff.get("attributes", {}):
            return KEPT, [], None
        enables.add(enable)
        moves.append((pin, name))
    if len(enables) > 1:
        return ENABLES_DIFFER, [], None
    enable = enables.pop()
    # The port's clock enable must be 1 or the register's own enable: then the output
    # register loads under OCE alone, or under CE and OCE together, to the same effect, and
    # the conversion does not rest on which of the two the silicon does (the one point of
    # TN1264 this project could not test without a board).
    for pin in port.clock_enables:
        ce = _const(ram, pin)
        if not (ce == "1" or (ce is None and _net(ram, pin) == enable)):
            return READ_ENABLE, [], None
    return None, moves, enable


def _convert(net: _Netlist, ram: dict, port: _ReadPort, moves, enable) -> set:
    """Rewire ``ram`` and delete the flip-flops; the orphaned read-data bit numbers."""
    orphans = set()
    for pin, name in moves:
        ff = net.cells.pop(name)
        orphans.add(_net(ram, pin))
        ram["connections"][pin] = [_net(ff, "Q")]
    for param in port.regmodes:
        ram["parameters"][param] = "OUTREG"
    for pin in port.output_enables:
        ram["connections"][pin] = [enable]
        ram.setdefault("port_directions", {})[pin] = "input"
    return orphans


def _drop_orphans(module: dict, orphans: set) -> None:
    """Net names of bits that no longer exist: those bits become "x", and a name left with
    no bit at all goes (nextpnr skips constant bits in net names)."""
    names = module.get("netnames", {})
    for name in list(names):
        bits = names[name].get("bits", [])
        if not any(b in orphans for b in bits if isinstance(b, int)):
            continue
        bits = ["x" if isinstance(b, int) and b in orphans else b for b in bits]
        if any(isinstance(b, int) for b in bits):
            names[name]["bits"] = bits
        else:
            del names[name]


def absorb_output_registers(netlist: dict) -> OutregResult:
    """Convert, in place, every DP16KD read port whose following register can become its
    output register (the conditions are in the module docstring).

    Parameters
    ----------
    netlist : a Yosys ``write_json`` netlist, as `json.loads` reads it; changed in place.
        Every module that is not a black box is processed.

    Returns
    -------
    OutregResult : the read ports seen and converted, the flip-flops deleted, and for the
        ports left alone the count of each reason.
    """
    result = OutregResult()
    for module in netlist.get("modules", {}).values():
        if "blackbox" in module.get("attributes", {}):
            continue
        rams = [c for c in module.get("cells", {}).values() if c.get("type") == "DP16KD"]
        if not rams:
            continue
        net = _Netlist(module)
        orphans = set()
        for ram in rams:
            for port in _read_ports(ram):
                reason, moves, enable = _plan(net, ram, port)
                if reason is None and not moves:
                    continue                   # no read-data bit is used
                result.read_ports += 1
                if reason is not None:
                    result.left[reason] += 1
                    continue
                orphans |= _convert(net, ram, port, moves, enable)
                result.absorbed += 1
                result.flip_flops += len(moves)
        _drop_orphans(module, orphans)
    return result


def absorb_file(src, dst=None, *, write: bool = True) -> OutregResult:
    """`absorb_output_registers` on a netlist file.

    Parameters
    ----------
    src : the Yosys JSON netlist (the build's ``top.json``).
    dst : where to write the result (atomically, `sw.atomic`); None: over ``src``.
    write : False only counts (``--check``).

    Raises
    ------
    ValueError : ``src`` is not a readable Yosys JSON netlist.
    """
    src = Path(src)
    try:
        netlist = json.loads(src.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the Yosys JSON netlist {src} ({exc}); pass the "
                         f"top.json that synthesis wrote (Yosys write_json)") from exc
    if not isinstance(netlist, dict) or "modules" not in netlist:
        raise ValueError(f"{src} is not a Yosys JSON netlist (no 'modules'); pass the "
                         f"top.json that synthesis wrote (Yosys write_json)")
    result = absorb_output_registers(netlist)
    if write:
        atomic_write_text(dst or src, json.dumps(netlist, ensure_ascii=False))
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hw.build.outreg",
        description="Absorb the flip-flops after ECP5 block RAM reads into the DP16KD output "
                    "registers (REGMODE OUTREG) of a Yosys JSON netlist.")
    ap.add_argument("netlist", type=Path, help="Yosys JSON netlist (top.json)")
    ap.add_argument("-o", "--out", type=Path, default=None,
                    help="where to write the result (default: over NETLIST)")
    ap.add_argument("--check", action="store_true",
                    help="only count what would be absorbed; write nothing")
    args = ap.parse_args(argv)
    if args.out is not None and args.out.is_dir():
        ap.error(f"-o {args.out} is a folder; name a file, e.g. {args.out / 'top.json'}")
    try:
        result = absorb_file(args.netlist, args.out, write=not args.check)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
