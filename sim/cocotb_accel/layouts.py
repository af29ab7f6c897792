"""Pack / unpack Amaranth data layouts to and from the flat integers of Verilog ports."""

from __future__ import annotations

from amaranth.hdl import Shape
from amaranth.lib import data

__all__ = ["pack", "unpack"]


def _to_signed(x: int, width: int) -> int:
    return x - (1 << width) if width and x >> (width - 1) & 1 else x


def unpack(layout, value: int):
    """A flat integer -> nested dicts / lists of ints (signed fields sign-extended)."""
    if isinstance(layout, data.StructLayout):
        out = {}
        for name, field in layout:
            out[name] = unpack(field.shape, (value >> field.offset) & ((1 << field.width) - 1))
        return out
    if isinstance(layout, data.ArrayLayout):
        w = Shape.cast(layout.elem_shape).width
        return [unpack(layout.elem_shape, (value >> (i * w)) & ((1 << w) - 1))
                for i in range(layout.length)]
    shape = Shape.cast(layout)
    return _to_signed(value, shape.width) if shape.signed else value


def pack(layout, fields) -> int:
    """Nested dicts / lists of ints -> a flat integer."""
    if isinstance(layout, data.StructLayout):
        v = 0
        for name, field in layout:
            if name in fields:
                v |= pack(field.shape, fields[name]) << field.offset
        return v
    if isinstance(layout, data.ArrayLayout):
        w = Shape.cast(layout.elem_shape).width
        return sum(pack(layout.elem_shape, x) << (i * w) for i, x in enumerate(fields))
    shape = Shape.cast(layout)
    return int(fields) & ((1 << shape.width) - 1)
