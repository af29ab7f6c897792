"""UART top level (simulatable) and the board top (PLL, reset, pins)."""

from amaranth.hdl import ClockDomain, ClockSignal, Instance, Module, ResetSignal, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

from .. import protocol
from ..core.skid import HoldBuffer
from ..core.target import on_ecp5
from .engine import CommandEngine
from .framing import RxFramer, TxFramer
from .uart import UARTRx, UARTTx

__all__ = ["BoardTop", "UartTop", "make_core"]


def make_core(bundle, *, stub: bool = False):
    """The accelerator for ``bundle``: ``hw.core.Accelerator``, or the stand-in."""
    if stub:
        from .stub_core import StubAccelerator
        return StubAccelerator(vocab=bundle.vocab_size, state_bits=bundle.format.state_bits,
                               acc_bits=bundle.format.acc_bits)
    from ..core import Accelerator
    return Accelerator(bundle)


class UartTop(wiring.Component):
    """Accelerator behind the framed UART protocol (hw.protocol): the whole board design
    except clocking and pins.

    Parameters
    ----------
    core : the accelerator (ports of ``hw.core.Accelerator``).
    signature : `hw.protocol.ModelSignature` reported by PING.
    divisor : clock cycles per UART bit.
    timeout_cycles : inter-byte timeout of the frame receiver.
    max_payload : receive buffer size in bytes.

    Members
    -------
    rx : In(1), serial input (idle high).
    tx : Out(1), serial output (idle high).
    busy : Out(1), a command is being executed (for an LED).
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    busy: Out(1)

    def __init__(self, core, signature: protocol.ModelSignature, *, divisor: int,
                 timeout_cycles: int, max_payload: int = protocol.MAX_PAYLOAD):
        self.core = core
        self.model_signature = signature
        self.divisor = divisor
        self.timeout_cycles = timeout_cycles
        self.max_payload = max_payload
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        m.submodules.uart_rx = rx = UARTRx(self.divisor)
        m.submodules.uart_tx = tx = UARTTx(self.divisor)
        m.submodules.rx_framer = rxf = RxFramer(max_payload=self.max_payload,
                                                timeout_cycles=self.timeout_cycles)
        m.submodules.tx_framer = txf = TxFramer()
        m.submodules.engine = eng = CommandEngine(self.model_signature,
                                                  max_payload=self.max_payload)

        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx), self.busy.eq(~eng.accept)]
        wiring.connect(m, producer=rx.o_stream, consumer=rxf.i_stream)
        m.d.comb += [
            rxf.accept.eq(eng.accept),
            eng.done.eq(rxf.done), eng.cmd.eq(rxf.cmd), eng.length.eq(rxf.length),
            eng.status.eq(rxf.status), eng.stored.eq(rxf.stored),
            rxf.rd_addr.eq(eng.rd_addr), eng.rd_data.eq(rxf.rd_data),
        ]
        wiring.connect(m, producer=eng.tx, consumer=txf.i_stream)
        wiring.connect(m, producer=txf.o_stream, consumer=tx.i_stream)

        # Commands and weight writes reach the core through skid buffers, so that the
        # core's ready (its event FIFO's level, its write port) is a flip-flop at the engine:
        # decoded straight into the engine's response registers, it was the tiny build's
        # latest path on one seed (9.5 ns, 8 of it routing; `python -m bench.bench_fmax`).
        # (Order holds: a write waits in its buffer at most until the core is idle again, a
        # few cycles, and the next command comes only after the write's response and another
        # whole frame over the UART.) Half throughput (`HoldBuffer`) is ample for words
        # that come one per frame, and keeps the core's ready off the payloads' enables.
        for name, producer, consumer in (("cmd_skid", eng.c_cmd, core.i_stream),
                                         ("write_skid", eng.c_write, core.w_stream)):
            m.submodules[name] = skid = HoldBuffer(producer.payload.shape())
            wiring.connect(m, producer=producer, consumer=skid.i)
            wiring.connect(m, producer=skid.o, consumer=consumer)
        # Output words reach the engine through a buffer next to it: from the core's output
        # buffer straight into the engine's response register's enables, the route crossed
        # the die (10.9 ns of routing, one seed's build at round thirteen)
        m.submodules.out_hold = out_hold = HoldBuffer(core.o_stream.payload.shape())
        wiring.connect(m, producer=core.o_stream, consumer=out_hold.i)
        wiring.connect(m, producer=out_hold.o, consumer=eng.c_out)
        m.d.comb += [core.emit_logits.eq(eng.c_emit),
                     eng.c_counters.eq(core.counters)]
        return m


class BoardTop(wiring.Component):
    """ULX3S (ECP5) board top: 25 MHz -> EHXPLLL -> ``sync``, reset synchronizer, FTDI UART.

    Parameters
    ----------
    design_factory : callable(clk_hz) -> UartTop, made once the achieved clock is known.
    pll : `hw.top.pll.PLLSettings`, or None to run from the board clock directly.
    """

    def __init__(self, design_factory, *, pll=None):
        self.design_factory = design_factory
        self.pll = pll
        super().__init__({})

    def elaborate(self, platform):
        from .pll import ECP5PLL
        m = Module()
        clk_res = platform.request(platform.default_clk, dir="-")
        m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_res)
        # Asynchronous assertion, synchronous release (ResetSynchronizer): the PLL's output
        # clock does not run before it locks, so only an asynchronous reset holds the
        # flip-flops while it does. nextpnr still times the release: the synchronizer ->
        # LSR paths of thousands of control registers over the whole die. On the ECP5 the
        # synchronizer's output therefore goes through a DCCA onto a primary (global)
        # network, which reaches every slice's LSR with a short, uniform delay; in general
        # routing this one net was the default build's critical path (docs/build.md).
        m.domains.sync = cd_sync = ClockDomain("sync", async_reset=True)
        m.domains.rst_src = ClockDomain("rst_src", async_reset=True, local=True)
        m.d.comb += ClockSignal("rst_src").eq(ClockSignal("sync"))
        if on_ecp5(platform):
            m.submodules.rst_gbuf = Instance("DCCA", i_CLKI=ResetSignal("rst_src"), i_CE=1,
                                             o_CLKO=ResetSignal("sync"))
        else:
            m.d.comb += ResetSignal("sync").eq(ResetSignal("rst_src"))
        locked = Signal()
        if self.pll is not None:
            m.submodules.pll = pll = ECP5PLL(self.pll)
            m.d.comb += [pll.clk_in.eq(clk_buf.i), locked.eq(pll.locked)]
            clk_hz = self.pll.f_out
            platform.add_clock_constraint(cd_sync.clk, clk_hz)
        else:
            m.d.comb += [ClockSignal("sync").eq(clk_buf.i), locked.eq(1)]
            clk_hz = platform.default_clk_frequency
        # Reset held until the PLL locks, released synchronously.
        m.submodules.rst_sync = ResetSynchronizer(~locked, domain="rst_src")

        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.submodules.design = design = self.design_factory(clk_hz)
        m.d.comb += [design.rx.eq(rx_buf.i), tx_buf.o.eq(design.tx)]

        leds = [platform.request("led", i, dir="-") for i in range(2)]
        m.submodules.led0 = led0 = io.Buffer("o", leds[0])
        m.submodules.led1 = led1 = io.Buffer("o", leds[1])
        # the busy LED through a flip-flop: ``busy`` is an OR over the core, and its route to
        # the pin was the second-latest endpoint of the default build
        busy_q = Signal()
        m.d.sync += busy_q.eq(design.busy)
        m.d.comb += [led0.o.eq(locked), led1.o.eq(busy_q)]
        return m
