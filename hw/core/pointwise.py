"""The pointwise unit's lane: gate tables, narrowing, c^ = g + z*(c-g), threshold, soft reset.

One lane per bank handles one local unit per cycle (docs/fixed_point.md section 4). The
pipeline advances only when ``adv`` is high (output back-pressure stalls every stage, and
every memory read port holds its data). Stage by stage (``stages = 12``, from the address at
P0 to the registered result at P12; every adder chain is cut so that each stage holds at
most one add-and-saturate, one table address or one multiply, and block-RAM outputs are
registered before use):

    P0   address u: read accumulators (in the MAC lane), c[u], theta[u]
    P1   narrow the sums (A -> P)
    P2   table indices -> SIG reads (r, z)
    P3   register r, z
    P4   r * hn (registered multiply)
    P5   pn = sat(nx + round(r*hn))
    P6   table index -> TANH read
    P7   register g and c - g
    P8   z * (c - g) (registered multiply)
    P9   g + round(z*(c-g))
    P10  c^ = sat(.)
    P11  compare with theta, soft reset; write c[u]
    P12  result registered: fire, y, c
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .arith import narrow, rshift_round, sat, table_index
from .wport import WriteTap, wwrite_layout

__all__ = ["PointwiseLane"]


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

    Members
    -------
    adv : In(1); pipeline enable.
    p0_valid, p0_u : In; a unit enters (its accumulators are read by the MAC lane now).
    acc : In(array of 6 signed(ab)); the MAC lane's ``rd_data`` (valid at P1).
    clr_en, clr_addr : In; write c[clr_addr] = 0 (RESET pass; not while the pipeline runs).
    out_valid, out_u, out_fire, out_y, out_c : Out; the P12 result.
    pipe_busy : Out(1); some stage holds a unit.
    """

    stages = 12

    def __init__(self, *, fmt, units, valid_units, ubits, theta, sig, tanh, theta_id, bank):
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
            "wr": In(wwrite_layout()), "wr_en": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        f = self.fmt
        sb, pb, gb, gf = f.state_bits, f.pre_bits, f.gate_bits, f.gate_frac
        adv = self.adv
        depth = max(2, self.units)

        m.submodules.c_mem = c_mem = memory.Memory(shape=signed(sb), depth=depth, init=[])
        m.submodules.th_mem = th_mem = memory.Memory(shape=signed(sb), depth=depth,
                                                     init=self.theta)
        m.submodules.sig = sig = memory.Memory(shape=unsigned(gb), depth=f.table_size,
                                               init=self.sig)
        m.submodules.tanh = tanh = memory.Memory(shape=signed(sb), depth=f.table_size,
                                                 init=self.tanh)
        c_rd, c_wr = c_mem.read_port(), c_mem.write_port()
        th_rd, th_wr = th_mem.read_port(), th_mem.write_port()
        sig_r, sig_z, tanh_rd = sig.read_port(), sig.read_port(), tanh.read_port()
        tap = WriteTap(m, self.wr, self.wr_en, "pw")
        m.d.comb += [th_wr.addr.eq(tap.q.addr), th_wr.data.eq(tap.q.data),
                     th_wr.en.eq(tap.enable(lambda w: (w.mem == self.theta_id) &
                                                      (w.bank == self.bank)))]

        N = self.stages
        v = [Signal(name=f"v{k}") for k in range(N + 1)]
        u = [Signal(unsigned(self.ubits), name=f"u{k}") for k in range(N + 1)]
        m.d.comb += [v[0].eq(self.p0_valid), u[0].eq(self.p0_u)]
        with m.If(adv):
            m.d.sync += [v[k + 1].eq(v[k]) for k in range(N)]
            m.d.sync += [u[k + 1].eq(u[k]) for k in range(N)]

        def reg(shape, name, value):
            """A pipeline register loaded (under ``adv``) with ``value``."""
            r = Signal(shape, name=name)
            with m.If(adv):
                m.d.sync += r.eq(value)
            return r

        # P0: read c and theta (the accumulators are read by the MAC lane)
        m.d.comb += [c_rd.addr.eq(u[0]), c_rd.en.eq(adv),
                     th_rd.addr.eq(u[0]), th_rd.en.eq(adv)]
        # P1: narrow the sums
        a = self.acc
        s2_pr = reg(signed(pb), "s2_pr", narrow(a[0] + a[3], f))
        s2_pz = reg(signed(pb), "s2_pz", narrow(a[1] + a[4], f))
        s2_hn = reg(signed(pb), "s2_hn", narrow(a[5], f))
        s2_nx = reg(signed(pb), "s2_nx", narrow(a[2], f))
        s2_c = reg(signed(sb), "s2_c", c_rd.data)
        s2_th = reg(signed(sb), "s2_th", th_rd.data)
        # P2: table indices -> SIG reads
        m.d.comb += [sig_r.addr.eq(table_index(s2_pr, f)), sig_z.addr.eq(table_index(s2_pz, f)),
                     sig_r.en.eq(adv), sig_z.en.eq(adv)]
        s3_hn = reg(signed(pb), "s3_hn", s2_hn)
        s3_nx = reg(signed(pb), "s3_nx", s2_nx)
        s3_c = reg(signed(sb), "s3_c", s2_c)
        s3_th = reg(signed(sb), "s3_th", s2_th)
        # P3: register the table outputs (block-RAM clock-to-out is slow)
        s4_r = reg(unsigned(gb), "s4_r", sig_r.data)       # unsigned: 0 .. 2**gf
        s4_z = reg(unsigned(gb), "s4_z", sig_z.data)
        s4_hn = reg(signed(pb), "s4_hn", s3_hn)
        s4_nx = reg(signed(pb), "s4_nx", s3_nx)
        s4_c = reg(signed(sb), "s4_c", s3_c)
        s4_th = reg(signed(sb), "s4_th", s3_th)
        # P4: r * hn (registered multiply)
        s5_rh = reg(signed(gb + pb + 1), "s5_rh", s4_r * s4_hn)
        s5_z = reg(unsigned(gb), "s5_z", s4_z)
        s5_nx = reg(signed(pb), "s5_nx", s4_nx)
        s5_c = reg(signed(sb), "s5_c", s4_c)
        s5_th = reg(signed(sb), "s5_th", s4_th)
        # P5: pn
        s6_pn = reg(signed(pb), "s6_pn", sat(s5_nx + rshift_round(s5_rh, gf), pb))
        s6_z = reg(unsigned(gb), "s6_z", s5_z)
        s6_c = reg(signed(sb), "s6_c", s5_c)
        s6_th = reg(signed(sb), "s6_th", s5_th)
        # P6: table index -> TANH read
        m.d.comb += [tanh_rd.addr.eq(table_index(s6_pn, f)), tanh_rd.en.eq(adv)]
        s7_z = reg(unsigned(gb), "s7_z", s6_z)
        s7_c = reg(signed(sb), "s7_c", s6_c)
        s7_th = reg(signed(sb), "s7_th", s6_th)
        # P7: register g and c - g
        g = tanh_rd.data
        s8_d = reg(signed(sb + 1), "s8_d", s7_c - g)
        s8_g = reg(signed(sb), "s8_g", g)
        s8_z = reg(unsigned(gb), "s8_z", s7_z)
        s8_th = reg(signed(sb), "s8_th", s7_th)
        # P8: z * (c - g) (registered multiply)
        s9_zd = reg(signed(gb + sb + 2), "s9_zd", s8_z * s8_d)
        s9_g = reg(signed(sb), "s9_g", s8_g)
        s9_th = reg(signed(sb), "s9_th", s8_th)
        # P9: g + z*(c-g), before saturation
        s10_t = reg(signed(gb + sb + 3), "s10_t", s9_g + rshift_round(s9_zd, gf))
        s10_th = reg(signed(sb), "s10_th", s9_th)
        # P10: c^ = sat(.)
        s11_ch = reg(signed(sb), "s11_ch", sat(s10_t, sb))
        s11_th = reg(signed(sb), "s11_th", s10_th)
        # P11: compare, soft reset; write c
        ch = s11_ch
        fire = (ch > s11_th) & (u[11] < self.valid_units)
        cn = Signal(signed(sb))
        m.d.comb += cn.eq(Mux(fire, ch - s11_th, ch))
        with m.If(self.clr_en):
            m.d.comb += [c_wr.addr.eq(self.clr_addr), c_wr.data.eq(0), c_wr.en.eq(1)]
        with m.Else():
            m.d.comb += [c_wr.addr.eq(u[11]), c_wr.data.eq(cn), c_wr.en.eq(v[11] & adv)]
        o_fire = reg(1, "o_fire", fire)
        o_y = reg(signed(sb), "o_y", Mux(fire, ch, 0))
        o_c = reg(signed(sb), "o_c", cn)
        # P12: the result
        m.d.comb += [self.out_valid.eq(v[N]), self.out_u.eq(u[N]), self.out_fire.eq(o_fire),
                     self.out_y.eq(o_y), self.out_c.eq(o_c)]
        busy = v[1]
        for k in range(2, N + 1):
            busy = busy | v[k]
        m.d.comb += self.pipe_busy.eq(busy)
        return m
