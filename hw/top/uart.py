"""8N1 UART receiver and transmitter with a fixed clock divisor."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx", "divisor_for"]


def divisor_for(clk_hz: float, baud: int) -> int:
    """Clock cycles per bit; refuses a baud rate the clock cannot make within 2 %."""
    if baud <= 0:
        raise ValueError(f"baud must be positive, got {baud!r}")
    divisor = round(clk_hz / baud)
    if divisor < 4:
        raise ValueError(f"clock {clk_hz / 1e6:.3f} MHz is too slow for {baud} baud "
                         f"(needs >= 4 cycles per bit)")
    error = abs(clk_hz / divisor - baud) / baud
    if error > 0.02:
        raise ValueError(f"{baud} baud from {clk_hz / 1e6:.3f} MHz is off by {error:.1%} "
                         f"(divisor {divisor}); choose another baud rate or clock")
    return divisor


class _Serial(wiring.Component):
    """What the receiver and the transmitter share: the bit time, in clock cycles."""

    def __init__(self, divisor: int):
        if not isinstance(divisor, int) or divisor < 4:
            raise ValueError(f"divisor must be an int >= 4, got {divisor!r}")
        self.divisor = divisor
        super().__init__()


class UARTRx(_Serial):
    """UART receiver: 8 data bits, no parity, 1 stop bit, LSB first.

    The line goes through a 2-FF synchronizer; a start bit is confirmed at its middle and
    the data bits are sampled at theirs. A byte with a bad stop bit is dropped
    (``o_error`` pulses). The output stream has no back-pressure: a byte not taken in the
    cycle it is offered is lost (the protocol layer always takes it).

    Parameters
    ----------
    divisor : clock cycles per bit (>= 4).

    Members
    -------
    rx : In(1), the serial line (idle high).
    o_stream : Out(stream.Signature(8)).
    o_error : Out(1), framing error pulse.
    """

    rx: In(1, init=1)
    o_stream: Out(stream.Signature(8))
    o_error: Out(1)

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(self.divisor + 1))
        bits = Signal(range(9))
        shreg = Signal(8)
        m.d.sync += [self.o_stream.valid.eq(0), self.o_error.eq(0)]
        m.d.comb += self.o_stream.payload.eq(shreg)

        with m.FSM(name="rx_fsm"):
            with m.State("IDLE"), m.If(~rx):
                m.d.sync += timer.eq(self.divisor // 2 - 1)
                m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(rx):
                        m.next = "IDLE"       # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(self.divisor - 1), bits.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(self.divisor - 1), shreg.eq(Cat(shreg[1:], rx)),
                                 bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(rx):
                        m.d.sync += self.o_stream.valid.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += self.o_error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"), m.If(rx):
                m.next = "IDLE"
        return m


class UARTTx(_Serial):
    """UART transmitter: 8N1, LSB first; takes a byte when idle.

    Parameters
    ----------
    divisor : clock cycles per bit (>= 4).

    Members
    -------
    i_stream : In(stream.Signature(8)).
    tx : Out(1), the serial line (idle high).
    """

    i_stream: In(stream.Signature(8))
    tx: Out(1, init=1)

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        shreg = Signal(10, init=0x3FF)   # stop bit, 8 data bits, start bit (LSB first)
        left = Signal(range(11))
        m.d.comb += self.i_stream.ready.eq(left == 0)
        m.d.sync += self.tx.eq(shreg[0])
        with m.If(left == 0), m.If(self.i_stream.valid):
            m.d.sync += [shreg.eq((1 << 9) | (self.i_stream.payload << 1)),
                         left.eq(10), timer.eq(self.divisor - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
            with m.If(timer == 0):
                m.d.sync += [timer.eq(self.divisor - 1), shreg.eq((1 << 9) | (shreg >> 1)),
                             left.eq(left - 1)]
        return m
