"""A MAC lane: accumulators in memory, read-modify-write at one entry per cycle.

Pipeline (``stages = 4``, entry on ``i`` in cycle t, written back in cycle t+4):

- t   (M0): the accumulator memories of all slots are read at ``i.addr``; the entry is
  registered (also the multiplier's inputs ``v``, ``w``).
- t+1 (M1): the raw block-RAM read data of all slots is registered; ``v * w`` is registered.
- t+2 (M2): the slot mux picks the entry's accumulator; writes that were still in flight when
  the memory was read (entries 2, 3 and 4 before this one) override it, the newest winning.
- t+3 (M3): adds the product to it (or, when the entry just before hit the same
  accumulator, to that entry's sum) and registers the sum.
- t+4 (M4): writes the sum back.

So a read misses the writes of the 4 entries before it; they are forwarded from the sum
register and three delayed copies of it (``fw1..fw3``); all compares are registered a stage
ahead. Additions wrap at ``ab`` bits.

Outside the accumulation phase the same ports give the pointwise unit / readout a read of all
slots at one address (``rd_*``); the cycle after such a read, the slots selected by
``rd_mask`` are overwritten with their biases, so the next step starts from the biases with
no extra pass. ``busy`` is 1 while an entry has not been written back; a user hands the ports
to ``rd_*`` (``ext``) only once it is 0.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .banks import lane_layout
from .wport import WriteChain, write_members

__all__ = ["MacLane"]


class MacLane(wiring.Component):
    """One bank's accumulators (``slots`` memories of ``depth`` words) and their MAC.

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
    ext : In(1); 1 hands the accumulator read ports to ``rd_*`` (pointwise / readout phase).
    rd_en, rd_addr, rd_mask : In; read all slots at ``rd_addr``; data on ``rd_data`` the next
        cycle; bias write-back of ``rd_mask`` slots then.
    rd_hold : In(1); 1: ``rd_data`` holds until the next ``rd_en`` (the readout's stalled scan
        reads it again). 0: the read ports read ``rd_addr`` every cycle while ``ext``, so the
        many read-data flip-flops need no enable, and ``rd_en`` (a decoded FSM signal) drives
        only the write-back registers: a consumer that registers ``rd_data`` in the cycle
        after ``rd_en`` (the pointwise lane) sees the same data.
    rd_data : Out(array of ``slots`` signed(ab)).
    busy : Out(1); an entry is in flight (not yet written back).
    wr, wr_en, wr_o, wr_o_en : the write chain through this lane (`write_hops` registers).
    """

    stages = 4
    write_hops = 1

    def __init__(self, *, slots, depth, fmt, ubits, bias, bias_ids, bank=0, bus=None):
        self.slots, self.depth, self.fmt, self.ubits = slots, depth, fmt, ubits
        self.bias, self.bias_ids, self.bank = bias, bias_ids, bank
        ab = fmt.acc_bits
        super().__init__({
            "i": In(lane_layout(fmt.weight_bits, fmt.state_bits, ubits)),
            "ext": In(1),
            "rd_en": In(1), "rd_addr": In(unsigned(ubits)), "rd_mask": In(slots),
            "rd_hold": In(1),
            "rd_data": Out(data.ArrayLayout(signed(ab), slots)),
            "busy": Out(1),
            **write_members(bus),
        })

    def elaborate(self, platform):
        m = Module()
        ab, S, ub = self.fmt.acc_bits, self.slots, self.ubits
        depth = max(2, self.depth)
        pw = self.fmt.state_bits + self.fmt.weight_bits

        def entry(name):
            return (Signal(name=f"{name}_v"), Signal(3, name=f"{name}_sel"),
                    Signal(ub, name=f"{name}_addr"))

        def same(a, b):          # b (an in-flight write) is valid and at a's accumulator
            return b[0] & (a[1] == b[1]) & (a[2] == b[2])

        p1, p2, p3, p4 = entry("p1"), entry("p2"), entry("p3"), entry("p4")
        fw1, fw2, fw3 = entry("fw1"), entry("fw2"), entry("fw3")
        p1_w = Signal(signed(self.fmt.weight_bits))
        p1_x = Signal(signed(self.fmt.state_bits))
        p2_prod, p3_prod = Signal(signed(pw)), Signal(signed(pw))
        p2_raw = [Signal(signed(ab), name=f"p2_raw{s}") for s in range(S)]
        p3_old, p4_sum = Signal(signed(ab)), Signal(signed(ab))
        fw1_sum, fw2_sum, fw3_sum = (Signal(signed(ab), name=f"fw{k}_sum") for k in (1, 2, 3))
        # registered forwarding hits: h2_* for M2 (from p4 / fw1 / fw2 then), h3 for M3 (p4)
        h2_a, h2_b, h2_c, h3 = Signal(), Signal(), Signal(), Signal()
        # bias write-back
        wb_v = Signal()
        wb_addr = Signal(ub)
        wb_mask = Signal(S)

        # M0 -> M1: the entry and the multiplier inputs
        with m.If(~self.ext):
            m.d.sync += [p1[0].eq(self.i.valid), p1[1].eq(self.i.sel), p1[2].eq(self.i.addr),
                         p1_w.eq(self.i.w), p1_x.eq(self.i.v)]
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
        m.d.sync += [p2_prod.eq(p1_w * p1_x), p3_prod.eq(p2_prod),
                     h2_a.eq(same(p1, p3)), h2_b.eq(same(p1, p4)), h2_c.eq(same(p1, fw1)),
                     h3.eq(same(p2, p3))]
        m.d.sync += [wb_v.eq(self.rd_en), wb_addr.eq(self.rd_addr), wb_mask.eq(self.rd_mask)]

        # M2: slot mux of the registered read data, then in-flight writes (newest wins)
        mem_old = Signal(signed(ab))
        with m.Switch(p2[1]):
            for s in range(S):
                with m.Case(s):
                    m.d.comb += mem_old.eq(p2_raw[s])
        with m.If(h2_a):
            m.d.sync += p3_old.eq(p4_sum)
        with m.Elif(h2_b):
            m.d.sync += p3_old.eq(fw1_sum)
        with m.Elif(h2_c):
            m.d.sync += p3_old.eq(fw2_sum)
        with m.Else():
            m.d.sync += p3_old.eq(mem_old)
        # M3: add (the entry just before, now in M4, forwards its sum straight from p4_sum)
        m.d.sync += p4_sum.eq(Mux(h3, p4_sum, p3_old) + p3_prod)

        chain = WriteChain("mac")
        for s in range(S):
            am = memory.Memory(shape=signed(ab), depth=depth, init=self.bias[s])
            bm = memory.Memory(shape=signed(ab), depth=depth, init=self.bias[s])
            m.submodules[f"acc{s}"] = am
            m.submodules[f"bias{s}"] = bm
            ar, aw = am.read_port(), am.write_port()
            # The bias is read with the accumulators and its read register feeds the
            # write-back. (Read asynchronously in the write-back cycle instead, it saved 192
            # flip-flops per lane, but that default build's routing stalled at 13k overused
            # arcs, while the build before it kept converging: docs/build.md.)
            br, bw = bm.read_port(), bm.write_port()
            port_en = self.rd_en | ~self.rd_hold
            m.d.comb += [br.addr.eq(self.rd_addr), br.en.eq(port_en)]
            with m.If(self.ext):
                m.d.comb += [ar.addr.eq(self.rd_addr), ar.en.eq(port_en)]
            with m.Else():
                m.d.comb += [ar.addr.eq(self.i.addr), ar.en.eq(1)]
            m.d.comb += self.rd_data[s].eq(ar.data)
            m.d.sync += p2_raw[s].eq(ar.data)                      # M1: registered read data
            with m.If(wb_v):
                m.d.comb += [aw.addr.eq(wb_addr), aw.data.eq(br.data), aw.en.eq(wb_mask[s])]
            with m.Else():
                m.d.comb += [aw.addr.eq(p4[2]), aw.data.eq(p4_sum),
                             aw.en.eq(p4[0] & (p4[1] == s))]
            # run-time bias writes
            if S == 6:
                wid, gate = self.bias_ids[s // 3], s % 3
                def hit(w, wid=wid, gate=gate):
                    return (w.mem == wid) & ((w.addr >> ub) == gate) & (w.bank == self.bank)
            else:
                def hit(w, wid=self.bias_ids[0]):
                    return (w.mem == wid) & (w.bank == self.bank)
            chain.add(bw, hit)
        chain.build(m, self.write_hops, self.wr, self.wr_en, self.wr_o, self.wr_o_en)
        m.d.comb += self.busy.eq(p1[0] | p2[0] | p3[0] | p4[0])
        return m
