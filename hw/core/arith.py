"""Fixed-point helpers on Amaranth values (docs/fixed_point.md section 1), mirroring hw.fixedpoint."""

from amaranth.hdl import Cat, Const, Mux, Value, signed

__all__ = ["add_rounded_post", "add_rounded_pre", "exceeds", "narrow", "narrow_biased",
           "round_bias", "rshift_round", "sat", "table_index"]


def round_bias(s: int) -> int:
    """What `rshift_round` adds before its shift: ``2**(s-1)`` for ``s > 0``, else 0."""
    return 1 << (s - 1) if s > 0 else 0


def _shift(x, s: int):
    """Arithmetic shift right by ``s`` (left for ``s < 0``): wiring, no logic."""
    return x >> s if s > 0 else x << (-s) if s < 0 else x


def rshift_round(x, s: int):
    """``(x + 2**(s-1)) >> s`` with an arithmetic shift (round half up); ``s <= 0`` shifts left."""
    if s > 0:
        return _shift(x + Const(round_bias(s), signed(s + 1)), s)
    return _shift(x, s)


def add_rounded_pre(x, y, s: int):
    """The carry chain of ``x + rshift_round(y, s)``; `add_rounded_post` finishes it.

    For ``s > 0``, ``x + floor((y + b) / 2**s) == floor((x * 2**s + b + y) / 2**s)`` with
    ``b = 2**(s-1)``, exactly, because ``x * 2**s`` is a multiple of ``2**s``. And
    ``x * 2**s + b`` is ``x`` above the ``s`` bits of ``b`` (wiring): so the rounding add and
    the sum are one adder, and the shift after it is wiring too. ``x`` must be signed.
    """
    x = Value.cast(x)
    if not x.shape().signed:
        raise ValueError(f"add_rounded_pre() takes a signed x, got {x.shape()}")
    if s > 0:
        return Cat(Const(round_bias(s), s), x).as_signed() + y
    return x + _shift(y, s)


def add_rounded_post(t, s: int):
    """``x + rshift_round(y, s)`` from ``t = add_rounded_pre(x, y, s)``: wiring."""
    return _shift(t, s) if s > 0 else t


def exceeds(d, k: int):
    """``d > k`` for a difference ``d`` (signed, as Amaranth's ``a - b`` is) and a small
    constant ``k`` in 0..2, read off the bits of ``d``: the subtraction is the only carry
    chain, not a subtraction followed by a compare."""
    d = Value.cast(d)
    if not d.shape().signed or not 0 <= k <= 2 or len(d) < 4:
        raise ValueError(f"exceeds() takes a signed difference of >= 4 bits and k in 0..2, "
                         f"got {d.shape()} and {k}")
    mag = d[:-1]
    above = {0: mag.any(), 1: mag[1:].any(), 2: mag[2:].any() | (mag[1] & mag[0])}[k]
    return ~d[-1] & above


def sat(x, bits: int):
    """Clamp a signed value to ``bits`` bits; the result has shape ``signed(bits)``.

    Overflow is read off the bits above ``bits - 1`` (they must all equal the sign), an AND
    or OR of flip-flop outputs, rather than from two magnitude compares: each compare would
    be a carry chain as long as ``x`` behind the adder that produced it.
    """
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    x = Value.cast(x)
    width, is_signed = len(x), x.shape().signed
    if width <= bits and (is_signed or width < bits):
        return x.as_signed() if is_signed else Cat(x, Const(0, 1)).as_signed()
    low = x[:bits].as_signed()
    top = x[bits - 1:]                          # the sign bit of the result and all above
    if is_signed:
        neg = x[-1]
        too_high = ~neg & top.any()
        too_low = neg & ~top.all()
    else:
        too_high = top.any()
        too_low = Const(0)
    return Mux(too_high, Const(hi, signed(bits)), Mux(too_low, Const(lo, signed(bits)), low))


def narrow(x, fmt):
    """Format A -> P: ``sat(rshift_round(x, af - pf), pb)``."""
    return sat(rshift_round(x, fmt.acc_frac - fmt.pre_frac), fmt.pre_bits)


def narrow_biased(x, fmt):
    """`narrow` of ``x - round_bias(af - pf)``: for a sum that already holds the rounding
    bias (added to one operand a stage earlier), so this stage has no carry chain, only the
    shift (wiring) and the saturation."""
    return sat(_shift(x, fmt.acc_frac - fmt.pre_frac), fmt.pre_bits)


def table_index(p, fmt):
    """``clamp((p >> shift) + N/2, 0, N-1)``: the SIG/TANH table address of a pre-activation.

    N is a power of two, so this is ``sat(p >> shift, log2 N)`` read as offset binary (the
    top bit flipped): no adder and no compare.
    """
    tb = fmt.table_bits
    q = sat(p >> fmt.table_shift, tb).as_unsigned()
    return q ^ Const(1 << (tb - 1), tb)
