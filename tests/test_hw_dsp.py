"""hw.core.dsp.RegisteredMul: the MULT18X18D form (what ECP5 builds use) against the logic
form (what the cocotb bit-exact tests simulate), cycle by cycle, in Icarus Verilog.

The MULT18X18D here is a behavioural model written from Lattice's description of the
primitive (input registers A and B, output register, each clocked by CLK0 and enabled by
CE0 as selected by its REG_* parameters; SIGNEDA/SIGNEDB select signed operands). What this
checks is our side: the operand bits and their sign extension, the product bits, the
register selection and the enable wiring; both forms are compared with the product of the operands two
enabled clock edges before, computed here."""

import random
import re
import shutil
import subprocess

import pytest
from amaranth.back import verilog
from amaranth.hdl import Fragment, Module, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.core.dsp import RegisteredMul, uses_ecp5_dsp

pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None,
                                reason="iverilog not installed (apt-get install iverilog)")


def _model() -> str:
    """A behavioural MULT18X18D (no cascade, no pipeline register, 18 x 18 -> 36)."""
    ins = ", ".join([f"input A{k}" for k in range(18)] + [f"input B{k}" for k in range(18)]
                    + [f"input C{k}" for k in range(18)])
    outs = ", ".join(f"output P{k}" for k in range(36))
    a = ", ".join(f"A{k}" for k in reversed(range(18)))
    b = ", ".join(f"B{k}" for k in reversed(range(18)))
    p = ", ".join(f"P{k}" for k in reversed(range(36)))
    params = "\n".join(
        f'  parameter REG_{r}_{x} = "{d}";'
        for r in ("INPUTA", "INPUTB", "INPUTC", "PIPELINE", "OUTPUT")
        for x, d in (("CLK", "NONE"), ("CE", "CE0"), ("RST", "RST0")))
    return f"""
module MULT18X18D({ins}, input SIGNEDA, input SIGNEDB, input SOURCEA, input SOURCEB,
  input CLK0, input CLK1, input CLK2, input CLK3, input CE0, input CE1, input CE2, input CE3,
  input RST0, input RST1, input RST2, input RST3, {outs});
{params}
  parameter CLK0_DIV = "ENABLED"; parameter CLK1_DIV = "ENABLED";
  parameter CLK2_DIV = "ENABLED"; parameter CLK3_DIV = "ENABLED";
  parameter HIGHSPEED_CLK = "NONE"; parameter GSR = "ENABLED";
  parameter CAS_MATCH_REG = "FALSE"; parameter SOURCEB_MODE = "B_SHIFT";
  parameter MULT_BYPASS = "DISABLED"; parameter RESETMODE = "SYNC";
  wire [17:0] a = {{{a}}};
  wire [17:0] b = {{{b}}};
  reg [17:0] ar = 0, br = 0;
  reg [35:0] pr = 0;
  wire [17:0] ai = (REG_INPUTA_CLK == "NONE") ? a : ar;
  wire [17:0] bi = (REG_INPUTB_CLK == "NONE") ? b : br;
  wire signed [35:0] ax = SIGNEDA ? {{{{18{{ai[17]}}}}, ai}} : {{18'b0, ai}};
  wire signed [35:0] bx = SIGNEDB ? {{{{18{{bi[17]}}}}, bi}} : {{18'b0, bi}};
  wire [35:0] prod = ax * bx;
  always @(posedge CLK0) if (CE0) begin
    if (REG_INPUTA_CLK == "CLK0") ar <= a;
    if (REG_INPUTB_CLK == "CLK0") br <= b;
    if (REG_OUTPUT_CLK == "CLK0") pr <= prod;
  end
  assign {{{p}}} = (REG_OUTPUT_CLK == "NONE") ? prod : pr;
endmodule
"""


class _Both(wiring.Component):
    def __init__(self, a_shape, b_shape):
        self.a_shape, self.b_shape = a_shape, b_shape
        w = RegisteredMul.product_width(a_shape, b_shape)
        super().__init__({"a": In(a_shape), "b": In(b_shape), "ce": In(1),
                          "p_prim": Out(signed(w)), "p_logic": Out(signed(w))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.prim = prim = RegisteredMul(self.a_shape, self.b_shape, primitive=True)
        m.submodules.logic = logic = RegisteredMul(self.a_shape, self.b_shape, primitive=False)
        for u, out in ((prim, self.p_prim), (logic, self.p_logic)):
            m.d.comb += [u.a.eq(self.a), u.b.eq(self.b), u.ce.eq(self.ce), out.eq(u.p)]
        return m


def _extremes(shape):
    lo, hi = (-(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1) if shape.signed \
        else (0, (1 << shape.width) - 1)
    return lo, hi


@pytest.mark.parametrize("a_shape,b_shape", [
    (signed(8), signed(16)),          # the MAC lanes: w * v
    (unsigned(16), signed(16)),       # the pointwise lane: r * hn
    (unsigned(16), signed(17)),       # the pointwise lane: z * (c - g)
])
def test_primitive_matches_logic(tmp_path, a_shape, b_shape):
    dut = _Both(a_shape, b_shape)
    (tmp_path / "dut.v").write_text(verilog.convert(dut, name="dut", emit_src=False))
    (tmp_path / "mult.v").write_text(_model())
    rng = random.Random(str(a_shape) + str(b_shape))
    alo, ahi = _extremes(a_shape)
    blo, bhi = _extremes(b_shape)
    vectors = [(alo, blo, 1), (ahi, bhi, 1), (alo, bhi, 1), (ahi, blo, 1), (0, 0, 1)]
    vectors += [(rng.randint(alo, ahi), rng.randint(blo, bhi), int(rng.random() < 0.7))
                for _ in range(400)]
    stim = "\n".join(f"    a = {a}; b = {b}; ce = {ce}; @(posedge clk); #1 check();"
                     for a, b, ce in vectors)
    aw, bw = a_shape.width, b_shape.width
    asg = "signed " if a_shape.signed else ""
    bsg = "signed " if b_shape.signed else ""
    (tmp_path / "tb.v").write_text(f"""
`timescale 1ns/1ps
module tb;
  reg clk = 0, rst = 0, ce = 0;
  reg {asg}[{aw - 1}:0] a = 0;
  reg {bsg}[{bw - 1}:0] b = 0;
  wire signed [{dut.p_prim.shape().width - 1}:0] p_prim, p_logic;
  integer n = 0;
  dut d(.clk(clk), .rst(rst), .a(a), .b(b), .ce(ce), .p_prim(p_prim), .p_logic(p_logic));
  always #5 clk = ~clk;
  task check; begin
    n = n + 1;
    $display("P %0d %0d", p_prim, p_logic);
  end endtask
  initial begin
    // three enabled edges with zero operands: every register of both forms holds 0 (the
    // logic form's next-state logic is x until its first evaluation in Icarus)
    ce = 1; repeat (3) @(posedge clk); #1;
{stim}
    $display("DONE %0d cycles", n);
    $finish;
  end
endmodule
""")
    subprocess.run(["iverilog", "-g2012", "-o", "sim", "tb.v", "dut.v", "mult.v"],
                   cwd=tmp_path, check=True, capture_output=True, text=True)
    out = subprocess.run(["vvp", "-n", "sim"], cwd=tmp_path, check=True, capture_output=True,
                         text=True).stdout
    assert re.search(rf"DONE {len(vectors)} cycles", out), out
    got = [tuple(int(x) for x in line.split()[1:]) for line in out.splitlines()
           if line.startswith("P ")]
    # the expected product: the operands two enabled clock edges before
    ar = br = pr = 0
    want = []
    for a, b, ce in vectors:
        if ce:
            ar, br, pr = a, b, ar * br
        want.append(pr)
    assert [g[1] for g in got] == want, "logic form"
    assert [g[0] for g in got] == want, "MULT18X18D form"


def test_ecp5_platforms_get_the_primitive():
    class Ecp5:
        family = "ecp5"

    class Ice40:
        family = "ice40"

    assert uses_ecp5_dsp(Ecp5()) and not uses_ecp5_dsp(Ice40()) and not uses_ecp5_dsp(None)


def test_wide_operands_are_logic_and_refused_as_a_primitive():
    assert RegisteredMul.fits(unsigned(17), signed(18))
    assert not RegisteredMul.fits(unsigned(18), signed(8))      # gate_bits = 18
    assert not RegisteredMul.fits(signed(8), signed(19))
    Fragment.get(RegisteredMul(unsigned(18), signed(8)), None)  # logic form: accepted
    with pytest.raises(ValueError, match="18 x 18"):
        RegisteredMul(unsigned(18), signed(8), primitive=True)
