"""Pipelined arg-max over rows of P candidates: the readout's top-1 without a long path.

A single-cycle running maximum over P logits chains P 32-bit comparators and muxes after a
block-RAM read; on the 85F that path (about 160 logic levels for P = 8) held the whole design
near 18 MHz. Here each cycle does at most one comparison per candidate pair: one register
stage for the inputs, a binary tournament with two register stages per level (compare, then
select), then the running best in three stages (compare quarters, combine, load).
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .replica import Replica

__all__ = ["ArgMax"]


class ArgMax(wiring.Component):
    """Running arg-max (smallest index wins ties) over rows of ``width`` candidates.

    Parameters
    ----------
    width : candidates per row (P).
    value_bits : signed width of a candidate.
    index_bits : width of an index.

    Members
    -------
    clear : In(1); forget the running best (takes effect before a same-cycle push).
    push : In(1); a row is valid this cycle: ``values[b]`` with index ``base + b`` wherever
        ``mask[b]`` is set. Rows must be pushed in increasing index order.
    best : Out(index_bits); the running arg-max once ``busy`` is low.
    busy : Out(1); rows are still in flight. ``stages`` cycles after the last push it is low.
    """

    def __init__(self, width: int, value_bits: int, index_bits: int):
        if width < 1:
            raise ValueError(f"ArgMax width must be >= 1, got {width}")
        self.width, self.value_bits, self.index_bits = width, value_bits, index_bits
        super().__init__({
            "clear": In(1), "push": In(1), "base": In(index_bits),
            "mask": In(width),
            "values": In(data.ArrayLayout(signed(value_bits), width)),
            "best": Out(index_bits), "busy": Out(1),
        })

    @property
    def levels(self) -> int:
        return (self.width - 1).bit_length()

    @property
    def stages(self) -> int:
        """Cycles from a push to its effect on ``best``."""
        return 2 * self.levels + 4

    def elaborate(self, platform):
        m = Module()
        vb, ib = self.value_bits, self.index_bits
        cand = data.StructLayout({"ok": 1, "v": signed(vb), "k": ib})

        # Stage 0: register the inputs (cuts the path from the accumulator block RAMs).
        # (the candidate registers are loaded every cycle, so they need no reset)
        # The register that feeds the running best (the tournament's last winner, or with
        # one candidate this one) drives four consumers: the winner's delay line and three
        # 33-bit compares. From one register that net was the tiny build's latest path on
        # one seed (3.3 ns of routing between neighbouring tiles, then the compare's carry
        # chain; 9.16 ns), so it is built as four copies (`hw.core.replica`), one each.
        copies = 4

        def load(expr, name, n=1):
            """A registered ``cand`` loaded with ``expr`` every cycle, as ``n`` copies."""
            if n == 1:
                r = Signal(cand, name=name, reset_less=True)
                m.d.sync += r.eq(expr)
                return [r]
            out = []
            for c in range(n):
                m.submodules[f"{name}_c{c}"] = rep = Replica(cand)
                m.d.comb += rep.d.eq(expr)
                out.append(rep.q)
            return out

        last = self.width == 1
        row = []
        for b in range(self.width):
            flat = Signal(cand, name=f"in{b}_d")
            m.d.comb += [flat.ok.eq(self.push & self.mask[b]), flat.v.eq(self.values[b]),
                         flat.k.eq(self.base + b)]
            row.append(load(flat, f"in{b}", copies if last else 1))
        valid = Signal(name="v0")
        m.d.sync += valid.eq(self.push)
        valids = [valid]

        # Tournament: the left (lower index) candidate wins unless the right is greater. Each
        # level takes two cycles: the comparison is registered, then the winner selected (a
        # 32-bit compare followed by a 40-bit 2:1 mux did not fit one cycle at 100 MHz).
        def delay(sig_):
            d = Signal.like(sig_)
            m.d.sync += d.eq(sig_)
            valids.append(d)
            return d

        level = 0
        while len(row) > 1:
            level += 1
            pairs, nxt = [], []
            last = len(row) <= 2
            for i in range(0, len(row), 2):
                (x,) = row[i]
                a = Signal(cand, name=f"a{level}_{i // 2}", reset_less=True)
                m.d.sync += a.eq(x)
                if i + 1 == len(row):
                    pairs.append((a, None, None))
                    continue
                (y,) = row[i + 1]
                b = Signal(cand, name=f"b{level}_{i // 2}", reset_less=True)
                gt = Signal(name=f"gt{level}_{i // 2}")
                # b > a as the sign of a - b: one carry chain, then one LUT with the oks
                diff = x.v - y.v
                m.d.sync += [b.eq(y), gt.eq(y.ok & (~x.ok | diff[-1]))]
                pairs.append((a, b, gt))
            delay(valids[-1])
            for j, (a, b, gt) in enumerate(pairs):
                nxt.append(load(a if b is None else Mux(gt, b, a), f"t{level}_{j}",
                                copies if last else 1))
            delay(valids[-1])
            row = nxt

        # Running best: later rows hold larger indices, so they must be strictly greater.
        # A winner is compared with the best in two stages (quarters of the carry chain, then
        # their combination), so the best it must beat is the one before the two winners
        # ahead of it were decided. It is also compared with those two, and their decisions
        # (``won1``, ``won2``) pick the comparison that holds: the loop through the best is
        # one flip-flop and one LUT. (A whole 33-bit compare of the best in one cycle was the
        # tiny build's latest path on all three seeds: 8.8-9.1 ns on the 12F.)
        best = Signal(cand)
        top_q, top_best, top_a1, top_a2 = row[0]
        q1 = Signal(cand, name="q1", reset_less=True)    # the winner one stage later
        q2 = Signal(cand, name="q2", reset_less=True)    # ... two stages: deciding now
        m.d.sync += [q1.eq(top_q), q2.eq(q1)]
        delay(valids[-1])
        q2_v = delay(valids[-1])
        gt_best = _beats(m, top_best, best, "best")
        gt_a1 = _beats(m, top_a1, q1, "a1")
        gt_a2 = _beats(m, top_a2, q2, "a2")
        won1 = Signal()                     # the winner decided last cycle was loaded
        won2 = Signal()                     # ... the one decided the cycle before
        gt = Signal()
        m.d.comb += gt.eq(q2_v & Mux(won1, gt_a1, Mux(won2, gt_a2, gt_best)))
        with m.If(self.clear):
            m.d.sync += [best.ok.eq(0), won1.eq(0), won2.eq(0)]
        with m.Else():
            m.d.sync += [won1.eq(gt), won2.eq(won1)]
            with m.If(gt):
                m.d.sync += best.eq(q2)
        busy = 0
        for v in valids:
            busy = busy | v
        m.d.comb += [self.best.eq(best.k), self.busy.eq(busy | self.push)]
        return m


def _beats(m, x, y, name, parts=4):
    """Whether candidate ``x`` beats ``y`` (``x`` valid, and ``y`` not or ``x.v > y.v``),
    two cycles after they are presented: the compare is cut into ``parts`` pieces whose
    "greater" and "equal" are registered first, so the first cycle holds a quarter of the
    carry chain and the second a few LUTs. (Halves of a 32-bit compare were the tiny
    build's latest path on every seed at round thirteen, 7.9-8.0 ns.)"""
    vb = len(x.v)
    cuts = [vb * k // parts for k in range(parts + 1)]
    gts, eqs = [], []
    for k in range(parts):
        lo, hi = cuts[k], cuts[k + 1]
        top = k == parts - 1                       # the sign lives in the top piece
        xs, ys = x.v[lo:hi], y.v[lo:hi]
        if top:
            xs, ys = xs.as_signed(), ys.as_signed()
        g, e = Signal(name=f"{name}_gt{k}"), Signal(name=f"{name}_eq{k}")
        m.d.sync += [g.eq(xs > ys), e.eq(xs == ys)]
        gts.append(g)
        eqs.append(e)
    oks = Signal(2, name=f"{name}_oks")
    m.d.sync += oks.eq(Cat(x.ok, y.ok))
    greater = gts[0]                               # from the lowest piece up
    for k in range(1, parts):
        greater = gts[k] | (eqs[k] & greater)
    gt = Signal(name=f"{name}_gt")
    m.d.sync += gt.eq(oks[0] & (~oks[1] | greater))
    return gt
