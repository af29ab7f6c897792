"""A multiplier with registered inputs and a registered product (two cycles, one enable).

On an ECP5 build it is one MULT18X18D using its own input and output registers, so neither
the fabric-to-DSP nor the DSP-to-fabric route lies on a path with the multiplier's ~4.5 ns
array delay (the tiny build's critical path was FF -> MULT18X18D -> FF, docs/accelerator.md).
Yosys does not move flip-flops into ECP5 DSPs itself, so the primitive is instantiated here.

Everywhere else (simulation, other families) the same two register stages are logic. Both
forms compute ``p = a * b`` of the operands two enabled clock edges earlier: the cocotb
tests run the logic form, and tests/test_hw_dsp.py checks the primitive's wiring (operand
bits, sign extension, the registers and their enable) against it in Icarus Verilog with a
behavioural MULT18X18D model.
"""

from amaranth.hdl import ClockSignal, Const, Instance, Module, Shape, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .target import on_ecp5

__all__ = ["RegisteredMul", "uses_ecp5_dsp"]

#: operand width of the ECP5 multiplier (signed)
ECP5_WIDTH = 18


#: the hard multiplier is used when elaborating for an ECP5
uses_ecp5_dsp = on_ecp5


class RegisteredMul(wiring.Component):
    """``p`` = ``a * b`` as the operands were two enabled cycles before.

    Parameters
    ----------
    a_shape, b_shape : operand shapes (signed or unsigned; the hard multiplier takes at most
        17 bits unsigned or 18 signed each, wider operands get the logic form).
    primitive : None: MULT18X18D when elaborated for an ECP5 platform, logic otherwise;
        True / False force one form (tests).

    Members
    -------
    a, b : In; ce : In(1) (loads both stages); p : Out(signed(len(a) + len(b) + 1)).
    """

    latency = 2

    def __init__(self, a_shape, b_shape, *, primitive=None):
        self.a_shape, self.b_shape, self.primitive = a_shape, b_shape, primitive
        if primitive and not self.fits(a_shape, b_shape):
            self._MustUse__silence = True          # refused, not "created but unused"
            raise ValueError(f"RegisteredMul operands {a_shape} x {b_shape}: one hard "
                             f"multiplier takes 18 x 18 signed bits")
        self.p_width = self.product_width(a_shape, b_shape)
        super().__init__({"a": In(a_shape), "b": In(b_shape), "ce": In(1),
                          "p": Out(signed(self.p_width))})

    @staticmethod
    def fits(a_shape, b_shape) -> bool:
        """Both operands fit one MULT18X18D (18 bits signed, 17 unsigned)."""
        def bits(shape):
            shape = Shape.cast(shape)
            return shape.width + (0 if shape.signed else 1)
        return bits(a_shape) <= ECP5_WIDTH and bits(b_shape) <= ECP5_WIDTH

    @staticmethod
    def product_width(a_shape, b_shape) -> int:
        """Width of ``p``: enough for any product of the operands, signed."""
        return Shape.cast(a_shape).width + Shape.cast(b_shape).width + 1

    def elaborate(self, platform):
        m = Module()
        primitive = self.primitive
        if primitive is None:
            # wider operands (a format with gate_bits > 16, say) stay logic; Yosys then
            # builds the product from several multipliers, unregistered
            primitive = uses_ecp5_dsp(platform) and self.fits(self.a_shape, self.b_shape)
        if not primitive:
            a_r = Signal(self.a_shape, reset_less=True)       # as the DSP's: no reset
            b_r = Signal(self.b_shape, reset_less=True)
            with m.If(self.ce):
                m.d.sync += [a_r.eq(self.a), b_r.eq(self.b), self.p.eq(a_r * b_r)]
            return m
        # operands sign- (or zero-) extended to 18 bits, both treated as signed
        a18, b18 = Signal(signed(ECP5_WIDTH)), Signal(signed(ECP5_WIDTH))
        p36 = Signal(signed(2 * ECP5_WIDTH))
        m.d.comb += [a18.eq(self.a), b18.eq(self.b), self.p.eq(p36)]
        regs = {}
        for r in ("INPUTA", "INPUTB", "OUTPUT"):
            regs.update({f"p_REG_{r}_CLK": "CLK0", f"p_REG_{r}_CE": "CE0",
                         f"p_REG_{r}_RST": "RST0"})
        for r in ("INPUTC", "PIPELINE"):
            regs.update({f"p_REG_{r}_CLK": "NONE", f"p_REG_{r}_CE": "CE0",
                         f"p_REG_{r}_RST": "RST0"})
        ports = {}
        for k in range(ECP5_WIDTH):
            ports[f"i_A{k}"] = a18[k]
            ports[f"i_B{k}"] = b18[k]
            ports[f"i_C{k}"] = Const(0, 1)
        for k in range(2 * ECP5_WIDTH):
            ports[f"o_P{k}"] = p36[k]
        m.submodules.mult = Instance(
            "MULT18X18D",
            **regs,
            p_CLK0_DIV="ENABLED", p_CLK1_DIV="ENABLED", p_CLK2_DIV="ENABLED",
            p_CLK3_DIV="ENABLED", p_HIGHSPEED_CLK="NONE", p_GSR="DISABLED",
            p_CAS_MATCH_REG="FALSE", p_SOURCEB_MODE="B_SHIFT", p_MULT_BYPASS="DISABLED",
            p_RESETMODE="SYNC",
            i_SIGNEDA=Const(1, 1), i_SIGNEDB=Const(1, 1),
            i_SOURCEA=Const(0, 1), i_SOURCEB=Const(0, 1),
            i_CLK0=ClockSignal(), i_CLK1=Const(0, 1), i_CLK2=Const(0, 1), i_CLK3=Const(0, 1),
            i_CE0=self.ce, i_CE1=Const(0, 1), i_CE2=Const(0, 1), i_CE3=Const(0, 1),
            i_RST0=Const(0, 1), i_RST1=Const(0, 1), i_RST2=Const(0, 1), i_RST3=Const(0, 1),
            **ports)
        return m
