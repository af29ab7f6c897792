"""hw.core.arith against hw.fixedpoint (the contract's numpy primitives), in the simulator."""

import numpy as np
from amaranth.hdl import Module, Signal, signed

from hw.core.arith import (
    add_rounded_post,
    add_rounded_pre,
    exceeds,
    narrow,
    narrow_biased,
    round_bias,
    rshift_round,
    sat,
    table_index,
)
from hw.fixedpoint import Format
from hw.fixedpoint import rshift_round as np_rshift_round
from hw.fixedpoint import sat as np_sat
from hw.fixedpoint import table_index as np_table_index
from sim.amaranth_sim import run_testbench


def test_arith_matches_contract():
    fmt = Format()
    m = Module()
    x = Signal(signed(fmt.acc_bits + 1))
    p = Signal(signed(fmt.pre_bits))
    o_rs, o_sat = Signal(signed(40)), Signal(signed(12))
    o_nar, o_idx = Signal(signed(fmt.pre_bits)), Signal(fmt.table_bits)
    o_nb = Signal(signed(fmt.pre_bits))        # the pointwise lane's form: bias added earlier
    bias = round_bias(fmt.acc_frac - fmt.pre_frac)
    m.d.comb += [o_rs.eq(rshift_round(x, 5)), o_sat.eq(sat(x, 12)), o_nar.eq(narrow(x, fmt)),
                 o_nb.eq(narrow_biased(x + bias, fmt)), o_idx.eq(table_index(p, fmt))]
    rng = np.random.default_rng(0)
    s = fmt.acc_frac - fmt.pre_frac
    top = 2 ** (fmt.pre_bits - 1 + s)           # the narrowing's saturation edges, and
    xs = np.concatenate([rng.integers(-2 ** 32, 2 ** 32, 300),   # its rounding ties
                         [0, 1, -1, 15, 16, -16, -17, 2 ** 32 - 1, -2 ** 32, 2047, -2048,
                          top - 2 ** (s - 1) - 1, top - 2 ** (s - 1), -top - 2 ** (s - 1),
                          -top - 2 ** (s - 1) - 1, 3 * 2 ** (s - 1), -3 * 2 ** (s - 1)]])
    ps = rng.integers(-2 ** 15, 2 ** 15, len(xs))
    # the clamp edges of every table index and of sat(x, 12)
    edge = 2 ** (fmt.table_shift + fmt.table_bits - 1)
    ps[:8] = [edge - 1, edge, -edge, -edge - 1, edge - 2 ** fmt.table_shift, 2 ** 15 - 1,
              -2 ** 15, 0]

    async def tb(ctx):
        for xv, pv in zip(xs, ps):
            ctx.set(x, int(xv))
            ctx.set(p, int(pv))
            assert ctx.get(o_rs) == int(np_rshift_round(xv, 5)), xv
            assert ctx.get(o_sat) == int(np_sat(xv, 12)), xv
            want = int(np_sat(np_rshift_round(xv, fmt.acc_frac - fmt.pre_frac), fmt.pre_bits))
            assert ctx.get(o_nar) == want, xv
            assert ctx.get(o_nb) == want, xv
            assert ctx.get(o_idx) == int(np_table_index(pv, fmt)), pv

    run_testbench(m, tb, clock=False)


def test_sat_exhaustive_small_widths():
    """sat() reads overflow off the top bits: every value of signed and unsigned inputs."""
    m = Module()
    xs_, xu = Signal(signed(7)), Signal(7)
    outs = {bits: (Signal(signed(bits)), Signal(signed(bits))) for bits in (1, 3, 6, 7, 8)}
    for bits, (os_, ou) in outs.items():
        m.d.comb += [os_.eq(sat(xs_, bits)), ou.eq(sat(xu, bits))]

    async def tb(ctx):
        for v in range(-64, 64):
            ctx.set(xs_, v)
            ctx.set(xu, v + 64)
            for bits, (os_, ou) in outs.items():
                assert ctx.get(os_) == int(np_sat(v, bits)), (v, bits)
                assert ctx.get(ou) == int(np_sat(v + 64, bits)), (v + 64, bits)

    run_testbench(m, tb, clock=False)


def test_exceeds_small_constants():
    """exceeds(a - b, k) == (a - b > k) for every pair of 4-bit pointers."""
    m = Module()
    a, b = Signal(4), Signal(4)
    outs = [Signal(name=f"gt{k}") for k in range(3)]
    m.d.comb += [o.eq(exceeds(a - b, k)) for k, o in enumerate(outs)]

    async def tb(ctx):
        for av in range(16):
            for bv in range(16):
                ctx.set(a, av)
                ctx.set(b, bv)
                for k, o in enumerate(outs):
                    assert ctx.get(o) == int(av - bv > k), (av, bv, k)

    run_testbench(m, tb, clock=False)


def test_add_rounded_is_one_adder_with_the_same_result():
    """add_rounded_post(add_rounded_pre(x, y, s), s) == x + rshift_round(y, s), exhaustively
    over 5-bit x and 7-bit y, for the shifts the pointwise lane may use (gate_frac >= 0)."""
    m = Module()
    x, y = Signal(signed(5)), Signal(signed(7))
    outs = {s: Signal(signed(12), name=f"o{s}") for s in (0, 1, 3, 6)}
    for s, o in outs.items():
        t = Signal(add_rounded_pre(x, y, s).shape(), name=f"t{s}")   # the pipeline register
        m.d.comb += [t.eq(add_rounded_pre(x, y, s)), o.eq(add_rounded_post(t, s))]

    async def tb(ctx):
        for xv in range(-16, 16):
            for yv in range(-64, 64):
                ctx.set(x, xv)
                ctx.set(y, yv)
                for s, o in outs.items():
                    assert ctx.get(o) == xv + int(np_rshift_round(yv, s)), (xv, yv, s)

    run_testbench(m, tb, clock=False)
