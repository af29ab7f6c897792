"""hw.build.floorplan: the LFE5U-85F site grid (checked against nextpnr itself) and the
lane-by-lane placement of the core's block RAMs and multipliers."""

import json
import subprocess
from collections import Counter

import pytest

from hw.build import toolchain
from hw.build.floorplan import GRIDS, floorplan, floorplan_file, main

GRID = GRIDS["LFE5U-85F"]


def _cell(kind, bel=None):
    attrs = {"BEL": bel} if bel else {}
    return {"type": kind, "hide_name": 0, "parameters": {}, "attributes": attrs,
            "port_directions": {}, "connections": {}}


def _netlist(cells):
    return {"creator": "test", "modules": {
        "DP16KD": {"attributes": {"blackbox": "1"}, "cells": {}},
        "top": {"attributes": {"top": "00000000000000000000000000000001"}, "ports": {},
                "cells": cells, "netnames": {}}}}


def _core(layers=2, banks=8, mats=(1, 2), readout=True):
    """Cells named as hw.core names them: per layer and bank, the streamer's pointer and
    entry tables (two block RAMs each entry table), the MAC lane's accumulators and
    multiplier, the pointwise lane's two tables and two multipliers; the readout's
    streamer and multipliers; the input queue."""
    cells = {"design.core.fifo.storage.0.0": _cell("DP16KD"),
             "design.engine.logits.0.0": _cell("DP16KD")}
    parts = [f"layer{k}" for k in range(layers)] + (["readout"] if readout else [])
    for k, part in enumerate(parts):
        nm = 1 if part == "readout" else mats[k]
        for b in range(banks):
            pre = f"design.core.{part}"
            for mat in range(nm):
                cells[f"{pre}.streamer.ptr{mat}_{b}.0.0"] = _cell("DP16KD")
                for h in range(2):
                    cells[f"{pre}.streamer.ent{mat}_{b}.0.{h}"] = _cell("DP16KD")
            cells[f"{pre}.mac{b}.mul.mult"] = _cell("MULT18X18D")
            if part != "readout":
                cells[f"{pre}.mac{b}.acc.0.0"] = _cell("DP16KD")
                for t in ("sig", "tanh"):
                    cells[f"{pre}.pw{b}.{t}.0.0"] = _cell("DP16KD")
                for mname in ("mul_zd", "mul_rh"):
                    cells[f"{pre}.pw{b}.{mname}.mult"] = _cell("MULT18X18D")
    return _netlist(cells)


def _bels(netlist):
    cells = netlist["modules"]["top"]["cells"]
    return {n: c["attributes"]["BEL"] for n, c in cells.items() if "BEL" in c["attributes"]}


def _xy(bel):
    x, y, _ = bel.split("/")
    return int(x[1:]), int(y[1:])


def test_every_grid_site_is_a_site_nextpnr_places_at(tmp_path):
    """All 208 EBR and 156 MULT18 sites of the grid, one cell pinned to each: nextpnr
    accepts every BEL and places each cell there (a wrong name or column fails here)."""
    sites = [s[2] for g in range(len(GRID.group_x)) for r in GRID.ebr_rows
             for s in GRID.ebr(g, r)]
    mults = [s[2] for g in range(len(GRID.group_x)) for r in GRID.dsp_rows
             for s in GRID.mult(g, r)]
    assert len(set(sites)) == 208 and len(set(mults)) == 156   # the LFE5U-85F's totals
    cells = {f"e{i}": _cell("DP16KD", s) for i, s in enumerate(sites)}
    cells.update({f"m{i}": _cell("MULT18X18D", s) for i, s in enumerate(mults)})
    (tmp_path / "top.json").write_text(json.dumps(_netlist(cells)))
    tool = toolchain.tool_env(["nextpnr-ecp5"])["NEXTPNR_ECP5"]
    proc = subprocess.run([tool, "--quiet", "--no-route", "--timing-allow-fail", "--85k",
                           "--package", "CABGA381", "--speed", "6", "--json", "top.json",
                           "--write", "placed.json"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    placed = json.loads((tmp_path / "placed.json").read_text())["modules"]["top"]["cells"]
    wrong = {n: (c["attributes"]["BEL"], placed[n]["attributes"].get("NEXTPNR_BEL"))
             for n, c in cells.items()
             if placed[n]["attributes"].get("NEXTPNR_BEL") != c["attributes"]["BEL"]}
    assert not wrong


def test_each_part_gets_a_slab_and_each_lane_neighbouring_sites():
    net = _core()
    res = floorplan(net, "LFE5U-85F")
    assert res.skipped is None
    bels = _bels(net)
    # every lane memory and multiplier pinned, once each; the queue and engine left alone
    assert res.pinned == len(bels) == 200 and res.left == 2
    assert len(set(bels.values())) == len(bels)
    assert "design.core.fifo.storage.0.0" not in bels
    # parts left to right, in data-flow order, in whole groups of their own
    assert list(res.parts) == ["layer0", "layer1", "readout"]
    assert res.parts == {"layer0": (0, 3), "layer1": (3, 5), "readout": (8, 2)}
    for part, (g0, n) in res.parts.items():
        lo, hi = GRID.group_x[g0], GRID.group_x[g0 + n - 1] + 6
        xs = [_xy(b)[0] for name, b in bels.items() if f".{part}." in name
              and "MULT" not in b]
        assert lo <= min(xs) and max(xs) <= hi, part
    # a lane's block RAMs span at most ~3 columns of sites in one pair of rows, and its
    # multipliers sit in the DSP row between them
    for b in range(8):
        lane = {n: bel for n, bel in bels.items() if "layer1." in n and
                (f"_{b}." in n or f"mac{b}." in n or f"pw{b}." in n)}
        ebr = [_xy(v) for v in lane.values() if "EBR" in v]
        mul = [_xy(v) for v in lane.values() if "MULT" in v]
        assert len(ebr) == 9 and len(mul) == 3
        assert max(x for x, _ in ebr) - min(x for x, _ in ebr) <= 13
        rows = Counter(y for _, y in ebr)
        assert set(rows) in ({22, 46}, {70, 82}), rows
        assert {y for _, y in mul} == {34 if 22 in rows else 58}
        # the streamer's tables first, then the accumulators, then the pointwise tables
        order = sorted(ebr)
        by_site = {_xy(v): n for n, v in lane.items()}
        kinds = [("streamer" in by_site[s], "mac" in by_site[s]) for s in order]
        assert kinds == sorted(kinds, reverse=True), kinds


def test_what_does_not_fit_is_left_to_the_placer(tmp_path):
    net = _core(layers=4, mats=(2, 2, 2, 2))      # 4 x 5 + 2 groups of EBR sites
    res = floorplan(net, "LFE5U-85F")
    assert res.pinned == 0 and not _bels(net)
    assert "need 22 groups" in res.summary()
    res = floorplan(_core(), "LFE5U-25F")
    assert res.pinned == 0 and "no site grid for LFE5U-25F" in res.summary()
    # a netlist placed by hand already is not touched
    net = _core()
    net["modules"]["top"]["cells"]["design.core.layer0.mac0.acc.0.0"]["attributes"][
        "BEL"] = "X4/Y22/EBR0"
    res = floorplan(net, "LFE5U-85F")
    assert res.pinned == 0 and "already has a BEL" in res.summary()
    # the command line: in place, atomically; a missing file is an error naming it
    path = tmp_path / "top.json"
    path.write_text(json.dumps(_core()))
    assert floorplan_file(path, "LFE5U-85F").pinned == 200
    assert len(_bels(json.loads(path.read_text()))) == 200
    assert main([str(tmp_path / "missing.json")]) == 2
    (tmp_path / "bad.json").write_text("{not json")
    assert main([str(tmp_path / "bad.json")]) == 2
    assert (tmp_path / "bad.json").read_text() == "{not json"     # left as it was


@pytest.mark.parametrize("banks", [1, 3])
def test_small_and_odd_lane_counts(banks):
    net = _core(layers=1, banks=banks, mats=(2,))
    res = floorplan(net, "LFE5U-85F")
    bels = _bels(net)
    assert res.skipped is None and len(set(bels.values())) == len(bels) == res.pinned
