"""Pipelined arg-max over rows of P candidates: the readout's top-1 without a long path.

A single-cycle running maximum over P logits chains P 32-bit comparators and muxes after a
block-RAM read; on the 85F that path (about 160 logic levels for P = 8) held the whole design
near 18 MHz. Here each cycle does at most one comparison per candidate pair: one register
stage for the inputs, a binary tournament with two register stages per level (compare, then
select), then the running best in two stages (compare, then load).
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

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
        return 2 * self.levels + 3

    def elaborate(self, platform):
        m = Module()
        vb, ib = self.value_bits, self.index_bits
        cand = data.StructLayout({"ok": 1, "v": signed(vb), "k": ib})

        # Stage 0: register the inputs (cuts the path from the accumulator block RAMs).
        # (the candidate registers are loaded every cycle, so they need no reset)
        row = [Signal(cand, name=f"in{b}", reset_less=True) for b in range(self.width)]
        valid = Signal(name="v0")
        m.d.sync += valid.eq(self.push)
        for b, c in enumerate(row):
            m.d.sync += [c.ok.eq(self.push & self.mask[b]), c.v.eq(self.values[b]),
                         c.k.eq(self.base + b)]
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
            for i in range(0, len(row), 2):
                a = Signal(cand, name=f"a{level}_{i // 2}", reset_less=True)
                m.d.sync += a.eq(row[i])
                if i + 1 == len(row):
                    pairs.append((a, None, None))
                    continue
                b = Signal(cand, name=f"b{level}_{i // 2}", reset_less=True)
                gt = Signal(name=f"gt{level}_{i // 2}")
                # b > a as the sign of a - b: one carry chain, then one LUT with the oks
                diff = row[i].v - row[i + 1].v
                m.d.sync += [b.eq(row[i + 1]),
                             gt.eq(row[i + 1].ok & (~row[i].ok | diff[-1]))]
                pairs.append((a, b, gt))
            delay(valids[-1])
            for j, (a, b, gt) in enumerate(pairs):
                w = Signal(cand, name=f"t{level}_{j}", reset_less=True)
                m.d.sync += w.eq(a if b is None else Mux(gt, b, a))
                nxt.append(w)
            delay(valids[-1])
            row = nxt

        # Running best: later rows hold larger indices, so they must be strictly greater.
        # Comparing the tournament's winner with the best and loading it in the same cycle
        # is a loop through a 32-bit carry chain into the enables of the best register (the
        # small build's critical path). Instead the winner is compared, one stage ahead,
        # both with the best (as it is before the winner ahead of it decides) and with that
        # winner ahead; whether that one won then picks the right comparison, so the loop
        # is one flip-flop and one LUT.
        best = Signal(cand)
        top, top_v = row[0], valids[-1]
        s2 = Signal(cand, name="s2", reset_less=True)    # the winner deciding now
        s2_v = delay(top_v)
        beats_ahead, beats_best, won = Signal(), Signal(), Signal()
        m.d.sync += [s2.eq(top),
                     beats_ahead.eq(top.ok & (~s2.ok | (top.v > s2.v))),
                     beats_best.eq(top.ok & (~best.ok | (top.v > best.v)))]
        gt = s2_v & Mux(won, beats_ahead, beats_best)
        with m.If(self.clear):
            m.d.sync += [best.ok.eq(0), won.eq(0)]
        with m.Else():
            m.d.sync += won.eq(gt)
            with m.If(gt):
                m.d.sync += best.eq(s2)
        busy = 0
        for v in valids:
            busy = busy | v
        m.d.comb += [self.best.eq(best.k), self.busy.eq(busy | self.push)]
        return m
