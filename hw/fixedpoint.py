"""The fixed-point contract (docs/fixed_point.md) as numpy primitives.

Torch-free on purpose: the hardware generator, the bundle reader and the integer golden model
all share these definitions, so a rounding rule exists in exactly one place.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

FIXED_POINT_VERSION = 1

__all__ = [
    "FIXED_POINT_VERSION",
    "Format",
    "FormatError",
    "make_tables",
    "quantize",
    "rshift_round",
    "sat",
    "table_index",
]


class FormatError(ValueError):
    """A fixed-point format whose parameters violate the contract."""


@dataclasses.dataclass(frozen=True)
class Format:
    """Bit widths and binary points of every quantity (docs/fixed_point.md section 2).

    Parameters
    ----------
    weight_bits, weight_frac : format W of all weights.
    state_bits, state_frac : format S of states, events and thresholds.
    acc_bits : width of the accumulators; their binary point is ``state_frac + weight_frac``.
    pre_bits, pre_frac : format P of gate pre-activations.
    gate_bits, gate_frac : format G of sigmoid outputs.
    table_bits : log2 of the number of table entries.
    table_range_log2 : the tables cover pre-activations in ``[-2**r, 2**r)``.
    """

    weight_bits: int = 8
    weight_frac: int = 6
    state_bits: int = 16
    state_frac: int = 12
    acc_bits: int = 32
    pre_bits: int = 16
    pre_frac: int = 10
    gate_bits: int = 16
    gate_frac: int = 14
    table_bits: int = 8
    table_range_log2: int = 3

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise FormatError(f"format field {field.name} must be an int, not {value!r}")
        checks = [
            (2 <= self.weight_bits <= 18, "weight_bits must be in 2..18"),
            (2 <= self.state_bits <= 18, "state_bits must be in 2..18"),
            (0 <= self.weight_frac < 32, "weight_frac must be in 0..31"),
            (0 <= self.state_frac < self.state_bits, "state_frac must be in 0..state_bits-1"),
            (self.acc_bits <= 48, "acc_bits must be <= 48"),
            (self.acc_bits >= self.state_bits + self.weight_bits,
             "acc_bits must hold one product: >= state_bits + weight_bits"),
            (2 <= self.pre_bits <= 18, "pre_bits must be in 2..18"),
            (self.acc_frac >= self.pre_frac, "state_frac + weight_frac must be >= pre_frac"),
            (self.gate_frac <= self.gate_bits - 2, "gate_frac must be <= gate_bits - 2"),
            (2 <= self.gate_bits <= 18, "gate_bits must be in 2..18"),
            (1 <= self.table_bits <= 14, "table_bits must be in 1..14"),
            (self.table_shift >= 0,
             "pre_frac - (table_bits - 1 - table_range_log2) must be >= 0"),
            (2 ** self.state_frac <= self.state_max,
             "state format must represent 1.0 (tanh outputs and token events)"),
        ]
        for ok, message in checks:
            if not ok:
                raise FormatError(f"invalid fixed-point format {self}: {message}")

    @property
    def acc_frac(self) -> int:
        return self.state_frac + self.weight_frac

    @property
    def table_shift(self) -> int:
        return self.pre_frac - (self.table_bits - 1 - self.table_range_log2)

    @property
    def table_size(self) -> int:
        return 2 ** self.table_bits

    @property
    def state_max(self) -> int:
        return 2 ** (self.state_bits - 1) - 1

    @property
    def weight_max(self) -> int:
        return 2 ** (self.weight_bits - 1) - 1

    @property
    def one(self) -> int:
        """1.0 in state format: the value of a token event."""
        return 2 ** self.state_frac

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Format:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise FormatError(f"unknown fixed-point format keys {sorted(unknown)}")
        return cls(**d)

    def range_of(self, kind: str) -> tuple[int, int]:
        """Inclusive integer range of a quantity kind: 'W', 'S', 'A', 'P' or 'G'."""
        bits = {"W": self.weight_bits, "S": self.state_bits, "A": self.acc_bits,
                "P": self.pre_bits, "G": self.gate_bits}[kind]
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def rshift_round(x, s: int):
    """Shift right by ``s`` rounding half up; ``s <= 0`` shifts left (exact)."""
    x = np.asarray(x, dtype=np.int64)
    if s > 0:
        return (x + (1 << (s - 1))) >> s
    return x << (-s)


def sat(x, bits: int):
    """Clamp to a signed ``bits``-bit two's-complement range."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return np.clip(np.asarray(x, dtype=np.int64), lo, hi)


def wrap(x, bits: int):
    """Reduce modulo 2**bits into the signed range: what a wrapping adder computes."""
    x = np.asarray(x, dtype=np.int64)
    half = 1 << (bits - 1)
    return ((x + half) & ((1 << bits) - 1)) - half


def quantize(x, bits: int, frac: int, *, saturate: bool = True):
    """Float -> integer by the contract's rule ``floor(x * 2**frac + 0.5)``, then saturate.

    Raises ``ValueError`` on NaN/inf. With ``saturate=False`` a value out of range raises
    instead of being clamped.
    """
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("cannot quantize NaN or infinite values")
    q = np.floor(x * float(2 ** frac) + 0.5).astype(np.int64)
    if not saturate:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        bad = (q < lo) | (q > hi)
        if bad.any():
            worst = float(x.flat[int(np.argmax(np.abs(x).ravel() * bad.ravel()))])
            raise ValueError(
                f"{int(bad.sum())} values do not fit Q({bits},{frac}) "
                f"(range [{lo / 2 ** frac}, {hi / 2 ** frac}]), e.g. {worst}")
        return q
    return sat(q, bits)


def table_index(p, fmt: Format):
    """Index of a pre-activation (format P) into the sigmoid/tanh tables."""
    n = fmt.table_size
    return np.clip((np.asarray(p, dtype=np.int64) >> fmt.table_shift) + n // 2, 0, n - 1)


def make_tables(fmt: Format) -> tuple[np.ndarray, np.ndarray]:
    """The sigmoid (format G) and tanh (format S) tables, sampled at interval midpoints."""
    n = fmt.table_size
    step = 2.0 ** (fmt.table_range_log2 + 1 - fmt.table_bits)
    x = (np.arange(n, dtype=np.float64) - n / 2 + 0.5) * step
    sig = np.floor(1.0 / (1.0 + np.exp(-x)) * 2.0 ** fmt.gate_frac + 0.5).astype(np.int64)
    tanh = np.floor(np.tanh(x) * 2.0 ** fmt.state_frac + 0.5).astype(np.int64)
    return sig, tanh


def bits_for(n: int) -> int:
    """Bits needed to index ``n`` distinct values (at least 1)."""
    return max(1, math.ceil(math.log2(n))) if n > 1 else 1
