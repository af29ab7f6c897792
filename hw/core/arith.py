"""Fixed-point helpers on Amaranth values (docs/fixed_point.md section 1), mirroring hw.fixedpoint."""

from amaranth.hdl import Const, Mux, signed

__all__ = ["narrow", "rshift_round", "sat", "table_index"]


def rshift_round(x, s: int):
    """``(x + 2**(s-1)) >> s`` with an arithmetic shift (round half up); ``s <= 0`` shifts left."""
    if s > 0:
        return (x + Const(1 << (s - 1), signed(s + 1))) >> s
    if s < 0:
        return x << (-s)
    return x


def sat(x, bits: int):
    """Clamp a signed value to ``bits`` bits; the result has shape ``signed(bits)``."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return Mux(x > hi, Const(hi, signed(bits)),
               Mux(x < lo, Const(lo, signed(bits)), x[:bits].as_signed()))


def narrow(x, fmt):
    """Format A -> P: ``sat(rshift_round(x, af - pf), pb)``."""
    return sat(rshift_round(x, fmt.acc_frac - fmt.pre_frac), fmt.pre_bits)


def table_index(p, fmt):
    """``clamp((p >> shift) + N/2, 0, N-1)``: the SIG/TANH table address of a pre-activation."""
    n = fmt.table_size
    t = (p >> fmt.table_shift) + Const(n // 2, signed(fmt.table_bits + 1))
    return Mux(t < 0, 0, Mux(t > n - 1, n - 1, t[:fmt.table_bits]))[:fmt.table_bits]
