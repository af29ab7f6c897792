"""The pointwise unit's lane: gate tables, narrowing, c^ = g + z*(c-g), threshold, soft reset.

One lane per bank handles one local unit per cycle (docs/fixed_point.md section 4). The
pipeline advances only when ``adv`` is high (output back-pressure stalls every stage, and
every memory read port holds its data). Stage by stage (``stages = 6``, from the address at
P0 to the registered result at P6):

    P0  address u: read accumulators (in the MAC lane), c[u], theta[u]
    P1  narrow the sums, table indices -> SIG reads (r, z)
    P2  r * hn (registered multiply)
    P3  pn, table index -> TANH read
    P4  z * (c - g) (registered multiply)
    P5  c^, compare, soft reset; write c[u]
    P6  result registered: fire, y, c
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .arith import narrow, rshift_round, sat, table_index
from .banks import wwrite_layout

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
    out_valid, out_u, out_fire, out_y, out_c : Out; the P6 result.
    pipe_busy : Out(1); some stage holds a unit.
    """

    stages = 6

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
        m.d.comb += [th_wr.addr.eq(self.wr.addr), th_wr.data.eq(self.wr.data),
                     th_wr.en.eq(self.wr_en & (self.wr.mem == self.theta_id) &
                                 (self.wr.bank == self.bank))]

        v = [Signal(name=f"v{k}") for k in range(7)]
        u = [Signal(unsigned(self.ubits), name=f"u{k}") for k in range(7)]
        m.d.comb += [v[0].eq(self.p0_valid), u[0].eq(self.p0_u)]
        with m.If(adv):
            m.d.sync += [v[k + 1].eq(v[k]) for k in range(6)]
            m.d.sync += [u[k + 1].eq(u[k]) for k in range(6)]

        # P0
        m.d.comb += [c_rd.addr.eq(u[0]), c_rd.en.eq(adv),
                     th_rd.addr.eq(u[0]), th_rd.en.eq(adv)]
        # P1
        a = self.acc
        pr = narrow(a[0] + a[3], f)
        pz = narrow(a[1] + a[4], f)
        m.d.comb += [sig_r.addr.eq(table_index(pr, f)), sig_z.addr.eq(table_index(pz, f)),
                     sig_r.en.eq(adv), sig_z.en.eq(adv)]
        s2_hn, s2_nx = Signal(signed(pb)), Signal(signed(pb))
        s2_c, s2_th = Signal(signed(sb)), Signal(signed(sb))
        with m.If(adv):
            m.d.sync += [s2_hn.eq(narrow(a[5], f)), s2_nx.eq(narrow(a[2], f)),
                         s2_c.eq(c_rd.data), s2_th.eq(th_rd.data)]
        # P2
        r, z = sig_r.data, sig_z.data          # unsigned: 0 .. 2**gf
        s3_rh = Signal(signed(gb + pb + 1))
        s3_z, s3_nx = Signal(unsigned(gb)), Signal(signed(pb))
        s3_c, s3_th = Signal(signed(sb)), Signal(signed(sb))
        with m.If(adv):
            m.d.sync += [s3_rh.eq(r * s2_hn),
                         s3_z.eq(z), s3_nx.eq(s2_nx), s3_c.eq(s2_c), s3_th.eq(s2_th)]
        # P3
        pn = sat(s3_nx + rshift_round(s3_rh, gf), pb)
        m.d.comb += [tanh_rd.addr.eq(table_index(pn, f)), tanh_rd.en.eq(adv)]
        s4_z = Signal(unsigned(gb))
        s4_c, s4_th = Signal(signed(sb)), Signal(signed(sb))
        with m.If(adv):
            m.d.sync += [s4_z.eq(s3_z), s4_c.eq(s3_c), s4_th.eq(s3_th)]
        # P4
        g = tanh_rd.data
        s5_zd = Signal(signed(gb + sb + 2))
        s5_g, s5_th = Signal(signed(sb)), Signal(signed(sb))
        with m.If(adv):
            m.d.sync += [s5_zd.eq(s4_z * (s4_c - g)), s5_g.eq(g), s5_th.eq(s4_th)]
        # P5
        ch = Signal(signed(sb))
        m.d.comb += ch.eq(sat(s5_g + rshift_round(s5_zd, gf), sb))
        fire = (ch > s5_th) & (u[5] < self.valid_units)
        cn = Signal(signed(sb))
        m.d.comb += cn.eq(Mux(fire, ch - s5_th, ch))
        with m.If(self.clr_en):
            m.d.comb += [c_wr.addr.eq(self.clr_addr), c_wr.data.eq(0), c_wr.en.eq(1)]
        with m.Else():
            m.d.comb += [c_wr.addr.eq(u[5]), c_wr.data.eq(cn), c_wr.en.eq(v[5] & adv)]
        o_fire, o_y, o_c = Signal(), Signal(signed(sb)), Signal(signed(sb))
        with m.If(adv):
            m.d.sync += [o_fire.eq(fire), o_y.eq(Mux(fire, ch, 0)), o_c.eq(cn)]
        m.d.comb += [self.out_valid.eq(v[6]), self.out_u.eq(u[6]), self.out_fire.eq(o_fire),
                     self.out_y.eq(o_y), self.out_c.eq(o_c)]
        busy = v[1]
        for k in range(2, 7):
            busy = busy | v[k]
        m.d.comb += self.pipe_busy.eq(busy)
        return m
