"""The pointwise unit's lane: gate tables, narrowing, c^ = g + z*(c-g), threshold, soft reset.

One lane per bank handles one local unit per cycle (docs/fixed_point.md section 4); the
layer feeds it one every six cycles, the time the MAC lane needs to read a unit's six
accumulator slots from its block RAM. The pipeline advances only when ``adv`` is high
(output back-pressure stalls every stage, and every memory read port holds its data). Stage
by stage (``stages = 19``, from the unit at P0 to the registered result at P19): every stage
holds at most one carry chain (an add, a rounding add or a subtraction) or one table read or
one multiply, saturation reads overflow off the top bits (`hw.core.arith.sat`), the
threshold compare is a carry chain of its own beside the subtraction (two chains in one
stage, side by side), and every memory output is registered before use:

    P0   unit u: its six accumulators, gathered by the MAC lane (`hw.core.mac`)
    P1   register the accumulators
    P2   ax + ah for r and z
    P3   narrow the sums (A -> P)
    P4   table indices -> SIG reads (r, z)
    P5   register r and z (next to the table)
    P6   r and hn in the multiplier's input registers
    P7   r * hn (its output register)
    P8   nx + round(r * hn), one adder (`hw.core.arith.add_rounded_pre`)
    P9   pn = sat(.), the shift and the saturation; read c[u]
    P10  table index -> TANH read; register c
    P11  register g
    P12  register c - g
    P13  z, c - g (the multiplier's input registers)
    P14  z * (c - g) (its output register)
    P15  g + round(z * (c - g)), one adder; read theta[u]
    P16  c^ = sat(.); register theta
    P17  d = c^ - theta, and c^ > theta (a compare of its own)
    P18  fire (the P17 compare), soft reset; write c[u]
    P19  result registered: fire, y, c

c and theta are read where they are needed rather than at P0, so that 2 x 16 bits are not
carried through ten stages in every lane. This is safe because a pass visits each unit once:
no unit's c is read while its own write (P18) is still in the pipeline.

P17 and P18 (then P16 and P17) were one stage until the tiny model (`python -m bench.bench_fmax`) showed it as
its latest path on two seeds of three: the compare's carry chain, then the subtraction's,
then the multiplexer into ``c``'s write data and the soft reset of ``y`` (22 logic levels,
9.3-9.7 ns against the 8 ns of 125 MHz).
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .arith import (
    add_rounded_post,
    add_rounded_pre,
    narrow_biased,
    round_bias,
    sat,
    table_index,
)
from .dsp import RegisteredMul
from .ram import SyncRead, ram
from .wport import WriteChain, write_members

__all__ = ["PointwiseLane"]

# the accumulator slots (ax_r, ax_z, ax_n, ah_r, ah_z, ah_n, in the MAC lane's order)
# that carry the rounding bias of the narrowing: one term of each sum narrowed at P3
_BIASED = (0, 1, 2, 5)


class PointwiseLane(wiring.Component):
    """Pointwise datapath of one bank.

    Parameters
    ----------
    fmt : `hw.fixedpoint.Format`.
    units : local units U; ``valid_units`` of them are real (``u*P + b < H``).
    ubits : unit address width.
    theta : U thresholds (init of the theta memory).
    sig, tanh : the tables (fixed_point.md section 4).
    theta_id, bank : memory id / bank of the theta memory for run-time writes.
    bus : the write chain's payload layout (`hw.core.wport.bus_layout`).

    Members
    -------
    adv : In(1); pipeline enable.
    p0_valid, p0_u : In; a unit enters.
    acc : In(array of 6 signed(ab)); the MAC lane's ``rd_data`` (the unit's accumulators in
        the cycle after ``p0_valid``).
    clr_en, clr_addr : In; write c[clr_addr] = 0 (RESET pass; not while the pipeline runs).
    out_valid, out_u, out_fire, out_y, out_c : Out; the P19 result.
    pipe_busy : Out(1); some stage holds a unit.
    wr, wr_en, wr_o, wr_o_en : the write chain through this lane (`write_hops` registers).
    """

    stages = 19
    write_hops = 1

    def __init__(self, *, fmt, units, valid_units, ubits, theta, sig, tanh, theta_id, bank,
                 bus=None):
        self.fmt, self.units, self.valid_units, self.ubits = fmt, units, valid_units, ubits
        self.theta, self.sig, self.tanh, self.theta_id, self.bank = theta, sig, tanh, theta_id, bank
        sb, ab = fmt.state_bits, fmt.acc_bits
        super().__init__({
            "adv": In(1), "p0_valid": In(1), "p0_u": In(unsigned(ubits)),
            "acc": In(data.ArrayLayout(signed(ab), 6)),
            "clr_en": In(1), "clr_addr": In(unsigned(ubits)),
            "out_valid": Out(1), "out_u": Out(unsigned(ubits)), "out_fire": Out(1),
            "out_y": Out(signed(sb)), "out_c": Out(signed(sb)),
            "pipe_busy": Out(1),
            **write_members(bus),
        })

    def elaborate(self, platform):
        m = Module()
        f = self.fmt
        sb, pb, gb, gf = f.state_bits, f.pre_bits, f.gate_bits, f.gate_frac
        adv = self.adv
        depth = max(2, self.units)

        # c is read at P9 and written at P18 of a pass, which holds each unit once (the
        # next starts after the pipeline drained); theta is written only while idle: no
        # read under a write to the same word (`hw.core.ram`)
        m.submodules.c_mem = c_mem = ram(shape=signed(sb), depth=depth)
        m.submodules.th_mem = th_mem = ram(shape=signed(sb), depth=depth, init=self.theta)
        m.submodules.sig = sig = memory.Memory(shape=unsigned(gb), depth=f.table_size,
                                               init=self.sig)
        m.submodules.tanh = tanh = memory.Memory(shape=signed(sb), depth=f.table_size,
                                                 init=self.tanh)
        c_rd, c_wr = SyncRead(m, c_mem, name="c_rd"), c_mem.write_port()
        th_rd, th_wr = SyncRead(m, th_mem, name="th_rd"), th_mem.write_port()
        sig_r, sig_z, tanh_rd = sig.read_port(), sig.read_port(), tanh.read_port()
        chain = WriteChain("pw")
        chain.add(th_wr, lambda w: (w.mem == self.theta_id) & (w.bank == self.bank))
        chain.build(m, self.write_hops, self.wr, self.wr_en, self.wr_o, self.wr_o_en)

        N = self.stages
        v = [Signal(name=f"v{k}") for k in range(N + 1)]
        u = [Signal(unsigned(self.ubits), name=f"u{k}", reset_less=True) for k in range(N + 1)]
        m.d.comb += [v[0].eq(self.p0_valid), u[0].eq(self.p0_u)]
        with m.If(adv):
            m.d.sync += [v[k + 1].eq(v[k]) for k in range(N)]
            m.d.sync += [u[k + 1].eq(u[k]) for k in range(N)]

        def reg(shape, name, value):
            """A pipeline register loaded (under ``adv``) with ``value``; without reset, as
            every data register here (only ``v`` marks what is valid): a reset net to each
            of thousands of flip-flops was the default build's critical path."""
            r = Signal(shape, name=name, reset_less=True)
            with m.If(adv):
                m.d.sync += r.eq(value)
            return r

        def carry(sig_, name):
            """The same value, one stage later."""
            return reg(sig_.shape(), name, sig_)

        # P1: register the accumulators (the MAC lane read them at P0), with the rounding
        # bias of the narrowing at P3 added to one term of each sum here: P3 is then the
        # shift and the saturation without a carry chain (its rounding add before the
        # saturation was the tiny build's latest path on one seed, 8.4 ns). The sums are
        # exact, so the result is the same.
        bias = round_bias(f.acc_frac - f.pre_frac)
        ab1 = f.acc_bits + 1
        a = [reg(signed(ab1) if k in _BIASED else signed(f.acc_bits), f"s1_a{k}",
                 self.acc[k] + bias if k in _BIASED else self.acc[k]) for k in range(6)]
        # P2: ax + ah for r and z (ax_n and ah_n stay apart: the reset gate scales ah_n)
        s2_sr = reg(signed(ab1 + 1), "s2_sr", a[0] + a[3])
        s2_sz = reg(signed(ab1 + 1), "s2_sz", a[1] + a[4])
        s2_hn, s2_nx = carry(a[5], "s2_hn"), carry(a[2], "s2_nx")
        # P3: narrow the sums (A -> P)
        s3_pr = reg(signed(pb), "s3_pr", narrow_biased(s2_sr, f))
        s3_pz = reg(signed(pb), "s3_pz", narrow_biased(s2_sz, f))
        s3_hn = reg(signed(pb), "s3_hn", narrow_biased(s2_hn, f))
        s3_nx = reg(signed(pb), "s3_nx", narrow_biased(s2_nx, f))
        # P4: table indices -> SIG reads
        m.d.comb += [sig_r.addr.eq(table_index(s3_pr, f)), sig_z.addr.eq(table_index(s3_pz, f)),
                     sig_r.en.eq(adv), sig_z.en.eq(adv)]
        s4_hn, s4_nx = carry(s3_hn, "s4_hn"), carry(s3_nx, "s4_nx")
        # P5: register the table outputs next to the table (a table's clock-to-out is
        # ~5.7 ns: straight into the multiplier's input register, with 5.8 ns of routing,
        # it was the default build's latest path at seed 4)
        s5_r = reg(unsigned(gb), "s5_r", sig_r.data)
        s5_z = reg(unsigned(gb), "s5_z", sig_z.data)
        s5_hn, s5_nx = carry(s4_hn, "s5_hn"), carry(s4_nx, "s5_nx")
        # P6: r and hn in the multiplier's input registers
        # P7: r * hn (the multiplier's output register)
        m.submodules.mul_rh = mul_rh = RegisteredMul(unsigned(gb), signed(pb))
        m.d.comb += [mul_rh.a.eq(s5_r), mul_rh.b.eq(s5_hn), mul_rh.ce.eq(adv)]
        s7_rh = mul_rh.p                                    # r: unsigned, 0 .. 2**gf
        s6_z, s6_nx = carry(s5_z, "s6_z"), carry(s5_nx, "s6_nx")
        s7_z, s7_nx = carry(s6_z, "s7_z"), carry(s6_nx, "s7_nx")
        # P8: nx + round(r * hn) as one adder; P9: its shift and saturation. (The rounding
        # at P8 and the sum and saturation at P9 put an adder and the saturation's
        # multiplexers in one stage: the tiny build's latest path on one seed, 8.2 ns.)
        t8 = add_rounded_pre(s7_nx, s7_rh, gf)
        s8_t = reg(t8.shape(), "s8_t", t8)
        s8_z = carry(s7_z, "s8_z")
        # P9: pn = sat(nx + round(r * hn)); read c
        s9_pn = reg(signed(pb), "s9_pn", sat(add_rounded_post(s8_t, gf), pb))
        s9_z = carry(s8_z, "s9_z")
        m.d.comb += [c_rd.addr.eq(u[9]), c_rd.en.eq(adv)]
        # P10: table index -> TANH read; register c (a memory output is registered first)
        m.d.comb += [tanh_rd.addr.eq(table_index(s9_pn, f)), tanh_rd.en.eq(adv)]
        s10_z = carry(s9_z, "s10_z")
        s10_c = reg(signed(sb), "s10_c", c_rd.data)
        # P11: register g (the table's clock-to-out is ~5.6 ns: no subtraction after it in
        # the same cycle; subtracting straight into the multiplier's input register was the
        # tiny build's critical path)
        g = tanh_rd.data
        s11_g = reg(signed(sb), "s11_g", g)
        s11_c, s11_z = carry(s10_c, "s11_c"), carry(s10_z, "s11_z")
        # P12: register d = c - g (the subtraction straight into the multiplier's input
        # registers, whose setup is long, was 8.4-8.6 ns in round fourteen's default build)
        s12_d = reg(signed(sb + 1), "s12_d", s11_c - s11_g)
        s12_z, s12_g = carry(s11_z, "s12_z"), carry(s11_g, "s12_g")
        # P13: z and d in the multiplier's input registers
        # P14: z * d (the multiplier's output register)
        m.submodules.mul_zd = mul_zd = RegisteredMul(unsigned(gb), signed(sb + 1))
        m.d.comb += [mul_zd.a.eq(s12_z), mul_zd.b.eq(s12_d), mul_zd.ce.eq(adv)]
        s14_zd = mul_zd.p
        s13_g = carry(s12_g, "s13_g")
        s14_g = carry(s13_g, "s14_g")
        # P15: g + round(z * (c - g)) as one adder (as at P8; the sum and the saturation in
        # one stage were the tiny build's latest path on two seeds, 7.9-8.0 ns); read theta
        t15 = add_rounded_pre(s14_g, s14_zd, gf)
        s15_t = reg(t15.shape(), "s15_t", t15)
        m.d.comb += [th_rd.addr.eq(u[15]), th_rd.en.eq(adv)]
        # P16: c^ = sat(g + round(z * (c - g))); register theta
        s16_ch = reg(signed(sb), "s16_ch", sat(add_rounded_post(s15_t, gf), sb))
        s16_th = reg(signed(sb), "s16_th", th_rd.data)
        # P17: d = c^ - theta; whether the unit is real (padding units never fire)
        s17_d = reg(signed(sb + 1), "s17_d", s16_ch - s16_th)
        # c^ > theta as a compare of its own beside the subtraction (its own carry chain):
        # read off d's bits at P18 it was two LUT levels of OR before ``fire`` reached the
        # reset pins of ``y`` and the c write data (8.15 ns of routing, round twelve's
        # default build at seed 3)
        # It is the sign of theta - c^ (sb + 1 bits, so it cannot overflow): the carry
        # chain's last sum bit goes straight into the flip-flop. A signed ``>`` is a
        # subtraction and then sign ^ overflow in a LUT (8.3-9.0 ns, round sixteen's first
        # builds).
        s17_gt = reg(1, "s17_gt", (s16_th - s16_ch)[-1])
        s17_ch = carry(s16_ch, "s17_ch")
        # (a constant where every unit is real: a register loaded with a constant other than
        # its power-up 0 stays a flip-flop, and Yosys merges every lane's copy into one whose
        # net crosses the die)
        if self.valid_units < self.units:
            s17_real = reg(1, "s17_real", u[17] < self.valid_units)
        else:
            s17_real = 1
        # P18: fire = c^ > theta; soft reset; write c (c^ - theta wraps to S bits, as the
        # golden model's does)
        W = N - 1
        ch = s17_ch
        fire = s17_gt & s17_real
        cn = Signal(signed(sb))
        m.d.comb += cn.eq(Mux(fire, s17_d[:sb].as_signed(), ch))
        with m.If(self.clr_en):
            m.d.comb += [c_wr.addr.eq(self.clr_addr), c_wr.data.eq(0), c_wr.en.eq(1)]
        with m.Else():
            m.d.comb += [c_wr.addr.eq(u[W]), c_wr.data.eq(cn), c_wr.en.eq(v[W] & adv)]
        o_fire = reg(1, "o_fire", fire)
        o_y = reg(signed(sb), "o_y", Mux(fire, ch, 0))
        o_c = reg(signed(sb), "o_c", cn)
        # P19: the result
        m.d.comb += [self.out_valid.eq(v[N]), self.out_u.eq(u[N]), self.out_fire.eq(o_fire),
                     self.out_y.eq(o_y), self.out_c.eq(o_c)]
        busy = v[1]
        for k in range(2, N + 1):
            busy = busy | v[k]
        m.d.comb += self.pipe_busy.eq(busy)
        return m
