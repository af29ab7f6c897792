"""A MAC lane: accumulators in memory, read-modify-write at one entry per cycle.

Pipeline (``stages = 4``, entry on ``i`` in cycle t, written back in cycle t+4):

- t   (M0): the accumulator memory is read at the entry's slot and address; the entry is
  registered, and the multiplier registers its inputs ``v``, ``w`` (`hw.core.dsp`).
- t+1 (M1): the raw block-RAM read data is registered; the product ``v * w`` is registered.
- t+2 (M2): writes that were still in flight when the memory was read (entries 2, 3 and 4
  before this one) override the read value, the newest winning.
- t+3 (M3): adds the product to it (or, when the entry just before hit the same
  accumulator, to that entry's sum) and registers the sum.
- t+4 (M4): writes the sum back.

So a read misses the writes of the 4 entries before it; they are forwarded from the sum
register and three delayed copies of it (``fw1..fw3``); all compares are registered a stage
ahead. Additions wrap at ``ab`` bits.

The accumulators of all slots are one memory of ``slots << ubits`` words (slot s, local unit
u at ``(s << ubits) | u``). A layer lane's six slots (96 x 32 bits on the shipped model) are
one block RAM: as six 16-deep LUT RAMs in each of 24 lanes they took most of the ECP5's
RAM-capable LUT sites, and the default build did not finish routing (docs/build.md). A block
RAM has one read port, so outside the accumulation phase the pointwise unit reads the slots
one per cycle (``rd_en``, ``rd_addr``, ``rd_slot``): the read data is registered (G1, like
M1) and then gathered into ``rd_data[slot]`` (G2): ``rd_data`` holds a unit's six
accumulators ``gather_latency = 3`` cycles after its last slot's read. Two cycles after a
slot is read (three with several slots: `MacLane.bias_lat`), it is overwritten with its
bias if ``rd_mask`` selects it, so the next step starts from the biases with no extra pass
(the bias memory is read a cycle after the accumulators, from an address register of its
own; with several slots it is a block RAM too, whose read data is registered twice). ``busy`` is 1 while an entry has not been written
back; a user hands the ports to ``rd_*`` (``ext``) only once it is 0. A single-slot lane
(the readout's logits) keeps its accumulators in LUT RAM and gives ``rd_data`` straight from
the read port, the cycle after ``rd_en``.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .banks import lane_layout
from .dsp import RegisteredMul
from .ram import SyncRead, ram
from .replica import Replica
from .target import on_ecp5
from .wport import WriteChain, write_members

__all__ = ["MacLane"]


class MacLane(wiring.Component):
    """One bank's accumulators (``slots`` x ``depth`` words) and their MAC.

    Parameters
    ----------
    slots : 6 for a layer (ax r, z, n, ah r, z, n), 1 for the readout.
    depth : local units (rows) of the bank.
    fmt : `hw.fixedpoint.Format`.
    ubits : address width of a local unit in entries.
    bias : ``slots`` lists of ``depth`` ints: the reset values (also the memories' init).
    bank : this lane's bank number (for run-time writes).
    bias_ids : memory ids of the bias memories for run-time writes: for 6 slots
        ``(bx_id, bh_id)`` addressed ``(g << ubits) | u``; for 1 slot ``(id,)`` addressed u.
    bus : the write chain's payload layout (`hw.core.wport.bus_layout`).

    Members
    -------
    i : In(`lane_layout`); an entry (when ``i.valid``) in the accumulation phase.
    ext : In(1); 1 hands the accumulator read port to ``rd_*`` (pointwise / readout phase).
    rd_en, rd_addr, rd_slot, rd_mask : In; read slot ``rd_slot`` at ``rd_addr`` (a
        single-slot lane: data on ``rd_data[0]`` the next cycle; more slots: gathered into
        ``rd_data[rd_slot]`` three cycles later); `bias_lat` cycles later, write the
        slot's bias back if bit ``rd_slot`` of ``rd_mask`` is set.
    rd_hold : In(1); 1: the read port (and the gather registers) hold while ``rd_en`` is 0
        (the readout's stalled scan reads the same data again; the pointwise lane stalls
        under back-pressure). 0: the read port reads every cycle while ``ext``, so the
        read-data flip-flops need no enable and ``rd_en`` (a decoded FSM signal) drives only
        the write-back and gather flags.
    rd_data : Out(array of ``slots`` signed(ab)).
    busy : Out(1); an entry is in flight (not yet written back).
    busy_q : Out(1); ``busy`` as it was in the previous cycle (a flip-flop, `hw.core.drain`).
    wr, wr_en, wr_o, wr_o_en : the write chain through this lane (`write_hops` registers).
    """

    stages = 4
    write_hops = 1

    @staticmethod
    def bias_lat(slots: int) -> int:
        """Cycles from a slot's read (``rd_en``) to its bias write-back: the bias memory is
        read a cycle after the accumulators, and with several slots (a block RAM) its read
        data is registered once more."""
        return 2 if slots == 1 else 3
    #: cycles from a slot's read (``rd_en``) to its value in ``rd_data`` (several slots)
    gather_latency = 3

    def __init__(self, *, slots, depth, fmt, ubits, bias, bias_ids, bank=0, bus=None):
        self.slots, self.depth, self.fmt, self.ubits = slots, depth, fmt, ubits
        self.bias, self.bias_ids, self.bank = bias, bias_ids, bank
        ab = fmt.acc_bits
        super().__init__({
            "i": In(lane_layout(fmt.weight_bits, fmt.state_bits, ubits)),
            "ext": In(1),
            "rd_en": In(1), "rd_addr": In(unsigned(ubits)),
            "rd_slot": In(range(max(2, slots))), "rd_mask": In(slots),
            "rd_hold": In(1),
            "rd_data": Out(data.ArrayLayout(signed(ab), slots)),
            "busy": Out(1), "busy_q": Out(1),
            **write_members(bus),
        })

    def elaborate(self, platform):
        m = Module()
        ab, S, ub = self.fmt.acc_bits, self.slots, self.ubits
        pw = self.fmt.state_bits + self.fmt.weight_bits

        # Only valid bits are reset: the data registers (sel, addr, sums, read data) mean
        # something only where a valid bit says so, and a reset net to each of them was the
        # default build's critical path (docs/build.md).
        def data_reg(shape, name):
            return Signal(shape, name=name, reset_less=True)

        def entry(name):
            return (Signal(name=f"{name}_v"), data_reg(3, f"{name}_sel"),
                    data_reg(ub, f"{name}_addr"))

        def same(a, b):          # b (an in-flight write) is valid and at a's accumulator
            return b[0] & (a[1] == b[1]) & (a[2] == b[2])

        def word(addr, slot):    # slot s, local unit u -> (s << ubits) | u
            return Cat(addr, slot[:max(1, (S - 1).bit_length())]) if S > 1 else addr

        p1, p2, p3, p4 = entry("p1"), entry("p2"), entry("p3"), entry("p4")
        fw1, fw2, fw3 = entry("fw1"), entry("fw2"), entry("fw3")
        # the product v * w: the multiplier's own registers stand for M0 -> M1 and M1 -> M2
        m.submodules.mul = mul = RegisteredMul(signed(self.fmt.weight_bits),
                                               signed(self.fmt.state_bits))
        m.d.comb += [mul.a.eq(self.i.w), mul.b.eq(self.i.v), mul.ce.eq(1)]
        p3_prod = data_reg(signed(pw), "p3_prod")
        p2_raw = data_reg(signed(ab), "p2_raw")
        p3_old, p4_sum = data_reg(signed(ab), "p3_old"), data_reg(signed(ab), "p4_sum")
        fw1_sum, fw2_sum, fw3_sum = (data_reg(signed(ab), f"fw{k}_sum") for k in (1, 2, 3))
        # registered forwarding hits: h2_* for M2 (from p4 / fw1 / fw2 then), h3 for M3 (p4)
        h2_a, h2_b, h2_c, h3 = Signal(), Signal(), Signal(), Signal()
        # bias write-back of the slot read in the cycle before
        wb_v = Signal()
        wb_addr = data_reg(ub, "wb_addr")
        wb_slot = data_reg(self.rd_slot.shape(), "wb_slot")
        # Powers up all ones: most layers pass a constant mask (every slot, or ah only), and
        # a register loaded with a constant other than its power-up value stays a
        # flip-flop, which Yosys then merges across every MAC lane of the chip into one,
        # its net crossing the die (12.9 ns, a trial build's critical path). Equal to its
        # power-up value, the register folds into the constant.
        wb_mask = Signal(S, name="wb_mask", init=(1 << S) - 1, reset_less=True)

        # M0 -> M1: the entry (the multiplier registers its inputs itself)
        with m.If(~self.ext):
            m.d.sync += [p1[0].eq(self.i.valid), p1[1].eq(self.i.sel), p1[2].eq(self.i.addr)]
        with m.Else():
            m.d.sync += p1[0].eq(0)
        # the entry moves on every cycle; written sums are kept three more cycles (fw1..fw3)
        # for forwarding, dropped while ``ext`` (the bias write-back overwrites memory)
        for a, b in ((p1, p2), (p2, p3), (p3, p4)):
            m.d.sync += [x.eq(y) for x, y in zip(b, a)]
        for a, b in ((p4, fw1), (fw1, fw2), (fw2, fw3)):
            m.d.sync += [b[0].eq(a[0] & ~self.ext), b[1].eq(a[1]), b[2].eq(a[2])]
        m.d.sync += [fw1_sum.eq(p4_sum), fw2_sum.eq(fw1_sum), fw3_sum.eq(fw2_sum)]
        # M1: product; hits for M2 (the entries that will then be in p4 / fw1 / fw2)
        m.d.sync += [p3_prod.eq(mul.p),
                     h2_a.eq(same(p1, p3)), h2_b.eq(same(p1, p4)), h2_c.eq(same(p1, fw1)),
                     h3.eq(same(p2, p3))]
        m.d.sync += [wb_v.eq(self.rd_en), wb_addr.eq(self.rd_addr), wb_slot.eq(self.rd_slot),
                     wb_mask.eq(self.rd_mask)]

        # M2: the registered read data, unless a write was in flight (newest wins)
        with m.If(h2_a):
            m.d.sync += p3_old.eq(p4_sum)
        with m.Elif(h2_b):
            m.d.sync += p3_old.eq(fw1_sum)
        with m.Elif(h2_c):
            m.d.sync += p3_old.eq(fw2_sum)
        with m.Else():
            m.d.sync += p3_old.eq(p2_raw)
        # M3: add (the entry just before, now in M4, forwards its sum straight from p4_sum)
        m.d.sync += p4_sum.eq(Mux(h3, p4_sum, p3_old) + p3_prod)

        # The accumulators: all slots in one memory, a block RAM when there are several
        # (Yosys would pick LUT RAM for 96 x 32 bits by its cost model).
        init = []
        for s in range(S):
            init += list(self.bias[s]) + [0] * ((1 << ub) - len(self.bias[s]))
        am = ram(shape=signed(ab), depth=max(2, S << ub), init=init,
                 style="block" if S > 1 else None)
        m.submodules.acc = am
        # (a word read under a write is replaced by the forwarded sum: `hw.core.ram`)
        ar, aw = SyncRead(m, am, name="acc_rd"), am.write_port()
        port_en = self.rd_en | ~self.rd_hold
        with m.If(self.ext):
            m.d.comb += [ar.addr.eq(word(self.rd_addr, self.rd_slot)), ar.en.eq(port_en)]
        with m.Else():
            m.d.comb += [ar.addr.eq(word(self.i.addr, self.i.sel)), ar.en.eq(1)]
        # M1 / G1: the raw read data, registered (block RAM clock-to-out is ~5.6 ns)
        with m.If(~self.ext | port_en):
            m.d.sync += p2_raw.eq(ar.data)

        # The biases (run-time writable). A slot's bias is written back into the
        # accumulator memory ``bias_lat`` cycles after the slot is read, from a register:
        # LUT RAM clock-to-out, a slot multiplexer and a route straight into the
        # accumulator block RAM's write data were 14.1 ns, the default build's critical
        # path at 1716f21.
        chain = WriteChain("mac")
        umask = (1 << ab) - 1
        # the write-back, ``bias_lat`` cycles after the read (when the bias is there)
        wbs = [(wb_v, wb_addr, wb_slot, wb_mask)]
        for k in range(2, self.bias_lat(S) + 1):
            prev = wbs[-1]
            cur = (Signal(name=f"wb{k}_v"), data_reg(ub, f"wb{k}_addr"),
                   data_reg(self.rd_slot.shape(), f"wb{k}_slot"),
                   Signal(S, name=f"wb{k}_mask", init=(1 << S) - 1, reset_less=True))
            m.d.sync += [x.eq(y) for x, y in zip(cur, prev)]        # (mask: as wb_mask)
            wbs.append(cur)
        if S == 1:
            # The readout's lane: 16 words of LUT RAM, read a cycle after the accumulators
            # from an address register of the lane's own. Driven straight from the control
            # copy, the address bits fanned out to all of the lane's LUT RAM cells in the
            # same cycle (9.7 ns, 87% routing: round thirteen's default build). Read and
            # registered every cycle, no enable: the bias of the word read in cycle t is in
            # ``bias_q`` at t+2. (A `Replica`: as a plain register, synthesis merged it
            # with the write-back's wb_addr, which holds the same bits, next to the
            # accumulator memory: 7 ns of routing to the LUT RAM, round fourteen.)
            # Written in byte lanes, each lane's enable a flip-flop of its own
            # (`WriteChain`): one enable on all of a lane's LUT RAM cells, whose WRE pins
            # need a long setup, held 60 late endpoints at round twelve. (Unsigned:
            # Amaranth allows lanes only there; the bits are the same.)
            lanes = next(k for k in (4, 2, 1) if ab % k == 0)
            style = "distributed" if on_ecp5(platform) else None
            bm = ram(shape=unsigned(ab), depth=max(2, 1 << ub),
                     init=[x & umask for x in init], style=style)
            m.submodules.bias = bm
            br, bw = SyncRead(m, bm, name="bias_rd"), bm.write_port(granularity=ab // lanes)
            m.submodules.bias_addr = bias_addr = Replica(len(br.addr))
            m.d.comb += [bias_addr.d.eq(self.rd_addr), br.addr.eq(bias_addr.q)]
            chain.add(bw, lambda w: (w.mem == self.bias_ids[0]) & (w.bank == self.bank))
            bias_q = br.data
        else:
            # The six slots in one block RAM laid out like the accumulators, read at the
            # same word a cycle later, and its read data registered once more into
            # ``bias_q`` (which `hw.build.outreg` moves into the DP16KD's output
            # register). In LUT RAM (96 x 24 bits: 36 cells a lane, half of the design's
            # LUT RAM) the read and its slot multiplexer were 9.0-9.4 ns on every seed of
            # round fifteen's final netlist, and one LUT RAM per slot with the pick in a
            # register of its own still 9.5 ns (round sixteen): the cells spread over the
            # RAM-capable slices. A block RAM a lane: 16 DP16KD on the default model.
            # Whole words are written: one write enable on a block RAM needs no byte lanes.
            bx_id, bh_id = self.bias_ids
            bm = ram(shape=unsigned(ab), depth=max(2, S << ub),
                     init=[x & umask for x in init],
                     style="block" if on_ecp5(platform) else None)
            m.submodules.bias = bm
            br, bw = SyncRead(m, bm, name="bias_rd"), bm.write_port()
            m.submodules.bias_addr = bias_addr = Replica(len(br.addr))
            m.d.comb += [bias_addr.d.eq(word(self.rd_addr, self.rd_slot)),
                         br.addr.eq(bias_addr.q)]

            def hit(w):      # l{k}.bx / l{k}.bh at (g << ubits) | u, g < 3
                return (((w.mem == bx_id) | (w.mem == bh_id)) & ((w.addr >> ub) < 3)
                        & (w.bank == self.bank))

            def waddr(w):    # bh's gates are slots 3..5
                return Mux(w.mem == bh_id, w.addr + (3 << ub), w.addr)
            chain.add(bw, hit, addr=waddr)
            bias_q = Signal(unsigned(ab), name="bias_q", reset_less=True)
            m.d.sync += bias_q.eq(br.data)
        chain.build(m, self.write_hops, self.wr, self.wr_en, self.wr_o, self.wr_o_en)
        wb_last_v, wb_last_addr, wb_last_slot, wb_last_mask = wbs[-1]
        with m.If(wb_last_v):
            m.d.comb += [aw.addr.eq(word(wb_last_addr, wb_last_slot)), aw.data.eq(bias_q),
                         aw.en.eq(wb_last_mask.bit_select(wb_last_slot, 1))]
        with m.Else():
            m.d.comb += [aw.addr.eq(word(p4[2], p4[1])), aw.data.eq(p4_sum), aw.en.eq(p4[0])]

        if S == 1:
            m.d.comb += self.rd_data[0].eq(ar.data)
        else:
            # G2: gather the slots of a unit (g1: the slot now in p2_raw)
            g0_v, g1_v = Signal(), Signal()
            g0_s = data_reg(self.rd_slot.shape(), "g0_s")
            g1_s = data_reg(self.rd_slot.shape(), "g1_s")
            hold = [data_reg(signed(ab), f"hold{s}") for s in range(S)]
            with m.If(port_en):
                m.d.sync += [g0_v.eq(self.rd_en), g0_s.eq(self.rd_slot),
                             g1_v.eq(g0_v), g1_s.eq(g0_s)]
                for s in range(S):
                    with m.If(g1_v & (g1_s == s)):
                        m.d.sync += hold[s].eq(p2_raw)
            m.d.comb += [self.rd_data[s].eq(hold[s]) for s in range(S)]
        busy = p1[0] | p2[0] | p3[0] | p4[0]
        busy_q = Signal(name="busy_q")
        m.d.sync += busy_q.eq(busy)
        m.d.comb += [self.busy.eq(busy), self.busy_q.eq(busy_q)]
        return m
