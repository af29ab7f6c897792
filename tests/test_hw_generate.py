"""hw.generate: Verilog, memory images and the resource summary."""

import json

from hw.bundle import load_bundle
from hw.generate import generate, icarus_time0_fix, main
from sim.random_bundle import random_bundle


def test_generate_writes_outputs(tmp_path, capsys):
    path = random_bundle(tmp_path / "b", layers=1, hidden=6, vocab=5, banks=2, seed=1)
    s = generate(load_bundle(path), tmp_path / "out")
    v = (tmp_path / "out" / "top.v").read_text()
    assert "module top(" in v and "i_stream__payload" in v and "w_stream__payload" in v
    assert s["multipliers"] == 3 * 2 + 2
    names = {m["name"] for m in s["memories"]}      # the fit check's list, core part only
    assert {"l0.w.ptr", "l0.r.ent", "l0.acc", "l0.beats", "dec.acc", "input_fifo"} <= names
    assert "uart_rx_buffer" not in names and "logit_buffer" not in names
    mm = json.loads((tmp_path / "out" / "memory_map.json").read_text())
    assert (tmp_path / "out" / "mem" / f"{mm[0]['name']}.b0.hex").is_file()
    assert main(["--bundle", str(path), "--out", str(tmp_path / "out2")]) == 0
    assert "multipliers: 8" in capsys.readouterr().out
    assert main(["--bundle", str(tmp_path / "missing"), "--out", str(tmp_path / "o3")]) == 2


def test_time0_fix_is_guarded():
    text = ("module m(a);\n  reg \\$auto$verilog_backend.cc:1:dump_module$1  = 0;\n"
            "  always @*\n    x = 1'h0;\nendmodule\n")
    out = icarus_time0_fix(text)
    assert "`ifdef EGRU_TIME0" in out and "if (\\$auto$verilog_backend.cc:1:dump_module$1 )" in out
