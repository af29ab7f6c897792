"""Board glue: UART, framed protocol engine, PLL, reset, and the top levels."""

from .top import BoardTop, UartTop, make_core

__all__ = ["BoardTop", "UartTop", "make_core"]
