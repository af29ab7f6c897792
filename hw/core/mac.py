"""A MAC lane: accumulators in memory, read-modify-write at one entry per cycle.

Pipeline (``stages = 2``): M1 takes an entry from the streamer, reads the accumulator and
registers the product ``v * w``; M2 adds and writes back. An entry that hits the accumulator
written by the entry just before it gets the forwarded sum (the memory read of M1 happened
before that write landed); older writes are already in memory. Additions wrap at ``ab`` bits.

Outside the accumulation phase the same ports give the pointwise unit / readout a read of all
slots at one address (``rd_*``); the cycle after such a read, the slots selected by
``rd_mask`` are overwritten with their biases, so the next step starts from the biases with
no extra pass.
"""

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .banks import lane_layout, wwrite_layout

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

    Members
    -------
    i : In(`lane_layout`); an entry (when ``i.valid``) in the accumulation phase.
    ext : In(1); 1 hands the accumulator read ports to ``rd_*`` (pointwise / readout phase).
    rd_en, rd_addr, rd_mask : In; read all slots at ``rd_addr``; data on ``rd_data`` the next
        cycle and held until the next ``rd_en``; bias write-back of ``rd_mask`` slots then.
    rd_data : Out(array of ``slots`` signed(ab)).
    busy : Out(1); an add is in flight.
    """

    stages = 2

    def __init__(self, *, slots, depth, fmt, ubits, bias, bias_ids, bank=0):
        self.slots, self.depth, self.fmt, self.ubits = slots, depth, fmt, ubits
        self.bias, self.bias_ids, self.bank = bias, bias_ids, bank
        ab = fmt.acc_bits
        super().__init__({
            "i": In(lane_layout(fmt.weight_bits, fmt.state_bits, ubits)),
            "ext": In(1),
            "rd_en": In(1), "rd_addr": In(unsigned(ubits)), "rd_mask": In(slots),
            "rd_data": Out(data.ArrayLayout(signed(ab), slots)),
            "busy": Out(1),
            "wr": In(wwrite_layout()), "wr_en": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        ab, S = self.fmt.acc_bits, self.slots
        depth = max(2, self.depth)
        # M2 registers
        m2_v = Signal()
        m2_sel = Signal(3)
        m2_addr = Signal(self.ubits)
        m2_prod = Signal(signed(self.fmt.state_bits + self.fmt.weight_bits))
        # last write (for forwarding)
        lw_v = Signal()
        lw_sel = Signal(3)
        lw_addr = Signal(self.ubits)
        lw_data = Signal(signed(ab))
        # bias write-back
        wb_v = Signal()
        wb_addr = Signal(self.ubits)
        wb_mask = Signal(S)

        with m.If(~self.ext):
            m.d.sync += [m2_v.eq(self.i.valid), m2_sel.eq(self.i.sel), m2_addr.eq(self.i.addr),
                         m2_prod.eq(self.i.v * self.i.w)]
        with m.Else():
            m.d.sync += m2_v.eq(0)
        m.d.sync += [wb_v.eq(self.rd_en), wb_addr.eq(self.rd_addr), wb_mask.eq(self.rd_mask)]

        old = Signal(signed(ab))
        new = Signal(signed(ab))
        acc_rd = []
        for s in range(S):
            am = memory.Memory(shape=signed(ab), depth=depth, init=self.bias[s])
            bm = memory.Memory(shape=signed(ab), depth=depth, init=self.bias[s])
            m.submodules[f"acc{s}"] = am
            m.submodules[f"bias{s}"] = bm
            ar, aw = am.read_port(), am.write_port()
            br, bw = bm.read_port(), bm.write_port()
            acc_rd.append(ar)
            m.d.comb += [br.addr.eq(self.rd_addr), br.en.eq(self.rd_en)]
            with m.If(self.ext):
                m.d.comb += [ar.addr.eq(self.rd_addr), ar.en.eq(self.rd_en)]
            with m.Else():
                m.d.comb += [ar.addr.eq(self.i.addr), ar.en.eq(1)]
            m.d.comb += self.rd_data[s].eq(ar.data)
            with m.If(m2_v & (m2_sel == s)):
                m.d.comb += old.eq(ar.data)
            with m.If(wb_v):
                m.d.comb += [aw.addr.eq(wb_addr), aw.data.eq(br.data), aw.en.eq(wb_mask[s])]
            with m.Else():
                m.d.comb += [aw.addr.eq(m2_addr), aw.data.eq(new),
                             aw.en.eq(m2_v & (m2_sel == s))]
            # run-time bias writes
            if S == 6:
                wid = self.bias_ids[s // 3]
                hit = (self.wr.mem == wid) & ((self.wr.addr >> self.ubits) == s % 3)
            else:
                wid = self.bias_ids[0]
                hit = self.wr.mem == wid
            m.d.comb += [bw.addr.eq(self.wr.addr[:self.ubits]),
                         bw.data.eq(self.wr.data.as_signed()),
                         bw.en.eq(self.wr_en & hit & (self.wr.bank == self.bank))]
        with m.If(lw_v & (lw_sel == m2_sel) & (lw_addr == m2_addr)):
            m.d.comb += old.eq(lw_data)
        m.d.comb += new.eq(old + m2_prod)
        m.d.sync += [lw_v.eq(m2_v), lw_sel.eq(m2_sel), lw_addr.eq(m2_addr), lw_data.eq(new)]
        m.d.comb += self.busy.eq(m2_v)
        return m
