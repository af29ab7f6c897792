"""A floorplan for the LFE5U-85F, written into the netlist as ``BEL`` attributes.

nextpnr's placer, left alone, spreads each layer of the shipped model over the whole die:
its 163 block RAMs fill whole rows of EBR sites, and a layer's streamer spans all 126
columns, so the logic that joins its lanes (the event broadcast, the control copies, the
drain snapshot, the event store) has routes across most of the die.

Measured (docs/build.md, "Round fourteen"): on the shipped model this floorplan cuts the
wirelength by a quarter and router2's time by half, but lowers Fmax (92.34 and 86.97 MHz
against 103.46 and 98.13 at seeds 1 and 3), so the build runs it only with
``--floorplan``.

The YoWASP nextpnr takes no region constraints (no Python, so no ``--pre-place`` script;
its LPF reader takes only I/O sites), but it places a cell whose ``BEL`` attribute names a
site there and nowhere else. This pass (on Yosys's JSON netlist, between synthesis and
nextpnr, like `hw.build.outreg`) pins the block RAMs and multipliers of each part of the
core to a slab of the die of its own, lane by lane, and leaves the logic to the placer,
which gathers it around them:

- the EBR sites come in 13 groups of four columns in each of four rows (Y 22, 46, 70,
  82), the MULT18 sites in the same 13 groups in three rows (Y 10, 34, 58);
- each part (``layer0``, ``layer1``, ..., ``readout``) gets whole groups, left to right in
  data-flow order, as many as the larger half of its lanes needs in one pair of rows;
- in its slab, the first half of the lanes take the lower two EBR rows, the others the
  upper two; lane 0 takes the first sites of its pair of rows, lane 1 the next, ...: the
  sites are taken column by column over the pair, so each lane's memories (the streamer
  bank's pointer and entry tables, the MAC lane's accumulators, the pointwise lane's
  tables, in that order) are neighbours;
- each lane's multipliers (MAC, then pointwise) take the free MULT18 sites of its slab
  nearest to its memories, in the DSP row between its two EBR rows.

Everything else (the input queue, the host engine's and the UART's memories) is left to
the placer. A part whose memories do not fit the device's groups leaves the netlist as it
is (the result says why).

    python -m hw.build.floorplan top.json [-o OUT]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

from sw.atomic import atomic_write_text

__all__ = ["GRIDS", "FloorplanResult", "floorplan", "floorplan_file", "main"]


@dataclasses.dataclass(frozen=True)
class Grid:
    """Where a device's EBR and MULT18 sites are (nextpnr-ecp5's bel names)."""

    #: the left column of each group: EBR bels at x, x+2, x+4, x+6 (EBR0..3); MULT18 bels
    #: at x, x+1, x+4, x+5 (MULT18_0, _1, _4, _5)
    group_x: tuple[int, ...]
    ebr_rows: tuple[int, ...]
    dsp_rows: tuple[int, ...]

    def ebr(self, group: int, row: int) -> list[tuple[int, int, str]]:
        x0 = self.group_x[group]
        return [(x0 + 2 * k, row, f"X{x0 + 2 * k}/Y{row}/EBR{k}") for k in range(4)]

    def mult(self, group: int, row: int) -> list[tuple[int, int, str]]:
        x0 = self.group_x[group]
        return [(x0 + dx, row, f"X{x0 + dx}/Y{row}/MULT18_{dx}") for dx in (0, 1, 4, 5)]

    @property
    def ebr_per_group(self) -> int:
        return 4 * len(self.ebr_rows)


#: measured: every DP16KD and MULT18X18D site nextpnr-ecp5 (0.11) uses when it places 208 of
#: the one and 156 of the other on an LFE5U-85F (CABGA381)
GRIDS = {
    "LFE5U-85F": Grid(group_x=(4, 13, 22, 31, 40, 49, 58, 69, 78, 87, 96, 105, 114),
                      ebr_rows=(22, 46, 70, 82), dsp_rows=(10, 34, 58)),
}

# a lane's memories and multipliers: ``<part>.streamer.(ptr|ent)<matrix>_<bank>.`` and
# ``<part>.(mac|pw)<lane>.`` (hw.core's submodule names)
_STREAMER = re.compile(r"(?:^|\.)(layer\d+|readout)\.streamer\.(ptr|ent)(\d+)_(\d+)\.")
_LANE = re.compile(r"(?:^|\.)(layer\d+|readout)\.(mac|pw)(\d+)\.")


def _part_order(part: str) -> int:
    return 1 << 20 if part == "readout" else int(part[len("layer"):])


def _lane_of(name: str):
    """(part, lane, rank in the lane) of a lane's memory or multiplier, or None."""
    m = _STREAMER.search(name)
    if m:
        part, kind, mat, bank = m.groups()
        return part, int(bank), (0, int(mat), kind == "ent", name)
    m = _LANE.search(name)
    if m:
        part, kind, lane = m.groups()
        return part, int(lane), (1 if kind == "mac" else 2, 0, 0, name)
    return None


@dataclasses.dataclass
class FloorplanResult:
    pinned: int = 0
    left: int = 0                     # block RAMs and multipliers not pinned
    parts: dict = dataclasses.field(default_factory=dict)   # part -> (first group, groups)
    skipped: str | None = None        # why nothing was pinned

    def summary(self) -> str:
        if self.skipped:
            return f"no floorplan: {self.skipped}"
        slabs = ", ".join(f"{p} groups {g0}-{g0 + n - 1}" for p, (g0, n) in self.parts.items())
        return (f"{self.pinned} block RAMs and multipliers pinned ({slabs}); {self.left} "
                f"left to the placer")


def floorplan(netlist: dict, device: str) -> FloorplanResult:
    """Set ``BEL`` on the lanes' DP16KD and MULT18X18D cells of ``netlist`` (in place)."""
    res = FloorplanResult()
    grid = GRIDS.get(device)
    if grid is None:
        res.skipped = f"no site grid for {device} (only {', '.join(GRIDS)})"
        return res
    cells = {}
    for mod in netlist["modules"].values():
        if mod.get("attributes", {}).get("top"):
            cells = mod["cells"]
    lanes = defaultdict(lambda: {"DP16KD": [], "MULT18X18D": []})   # (part, lane) -> cells
    for name, cell in cells.items():
        if cell["type"] not in ("DP16KD", "MULT18X18D"):
            continue
        if "BEL" in cell.get("attributes", {}):
            res.skipped = f"{name} already has a BEL attribute"
            return res
        where = _lane_of(name)
        if where is None:
            res.left += 1
            continue
        part, lane, rank = where
        lanes[(part, lane)][cell["type"]].append((rank, name))
    parts = sorted({p for p, _ in lanes}, key=_part_order)
    if not parts:
        res.skipped = "no lane memories found"
        return res

    # slabs: whole groups, left to right, each pair of rows holding its half of the lanes
    pairs = -(-len(grid.ebr_rows) // 2)
    g0, plan = 0, {}
    for part in parts:
        sizes = sorted((len(v["DP16KD"]) for (p, _), v in lanes.items() if p == part),
                       reverse=True)
        per_pair = sum(sizes[:-(-len(sizes) // pairs)])      # the largest half of the lanes
        need = max(1, -(-per_pair // (4 * 2)))              # 4 columns x 2 rows a group
        plan[part] = (g0, need)
        g0 += need
    if g0 > len(grid.group_x):
        res.skipped = (f"the parts' block RAMs need {g0} groups of EBR sites, the device "
                       f"has {len(grid.group_x)}")
        return res

    pins = {}
    for part in parts:
        first, n = plan[part]
        groups = range(first, first + n)
        rows = grid.ebr_rows
        # each pair of rows' EBR sites column by column; the lanes split evenly over the
        # pairs, the lower pair first, and a lane that does not fit moves to the next pair
        halves = [sorted((s for g in groups for r in rows[i:i + 2] for s in grid.ebr(g, r)),
                         key=lambda s: (s[0], s[1])) for i in range(0, len(rows), 2)]
        free_mult = {s for g in groups for r in grid.dsp_rows for s in grid.mult(g, r)}
        part_lanes = sorted(lane for p, lane in lanes if p == part)
        per_half = -(-len(part_lanes) // len(halves))
        for i, lane in enumerate(part_lanes):
            cellset = lanes[(part, lane)]
            mems = [n for _, n in sorted(cellset["DP16KD"])]
            h = next((h for h in range(i // per_half, len(halves))
                      if len(halves[h]) >= len(mems)), None)
            if h is not None:
                taken, halves[h] = halves[h][:len(mems)], halves[h][len(mems):]
            else:                                # (split over the pairs: never for P | 2)
                rest = [s for half in halves for s in half]
                taken, rest = rest[:len(mems)], rest[len(mems):]
                halves = [[s for s in half if s in rest] for half in halves]
            if len(taken) < len(mems):
                res.skipped = f"{part}: its slab ran out of EBR sites at lane {lane}"
                return res
            pins.update({n: s[2] for n, s in zip(mems, taken)})
            cx = sum(s[0] for s in taken) / max(1, len(taken))
            cy = sum(s[1] for s in taken) / max(1, len(taken))
            for _, name in sorted(cellset["MULT18X18D"]):
                if not free_mult:
                    res.skipped = f"{part}: its slab ran out of MULT18 sites at lane {lane}"
                    return res
                site = min(free_mult, key=lambda s: (abs(s[1] - cy), abs(s[0] - cx), s))
                free_mult.remove(site)
                pins[name] = site[2]
        res.parts[part] = plan[part]
    for name, bel in pins.items():
        cells[name].setdefault("attributes", {})["BEL"] = bel
    res.pinned = len(pins)
    return res


def floorplan_file(path: Path, device: str, out: Path | None = None) -> FloorplanResult:
    """Read a Yosys JSON netlist, pin its lanes, write it back (atomically) to ``out``."""
    netlist = json.loads(Path(path).read_text())
    res = floorplan(netlist, device)
    if res.pinned:
        atomic_write_text(Path(out or path), json.dumps(netlist))
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hw.build.floorplan", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("netlist", type=Path, help="Yosys JSON netlist (top.json)")
    ap.add_argument("-o", "--out", type=Path, help="write here (default: in place)")
    ap.add_argument("--device", default="LFE5U-85F", choices=sorted(GRIDS))
    args = ap.parse_args(argv)
    if not args.netlist.is_file():
        print(f"error: no netlist at {args.netlist}", file=sys.stderr)
        return 2
    try:
        res = floorplan_file(args.netlist, args.device, args.out)
    except (json.JSONDecodeError, KeyError) as exc:
        print(f"error: {args.netlist} is not a Yosys JSON netlist ({exc}); pass the "
              f"top.json that synthesis wrote", file=sys.stderr)
        return 2
    print(res.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
