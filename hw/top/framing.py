"""Frame receiver (SYNC hunt, CRC check, inter-byte timeout) and frame transmitter.

The frame format and the CRC are defined in ``hw.protocol``; the constants used here come
from there.
"""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import protocol
from ..core.ram import SyncRead, ram

__all__ = ["RxFramer", "TxByte", "TxFramer", "crc16_next"]

#: One byte of a frame body (CMD, LEN, PAYLOAD) going to the transmitter.
TxByte = data.StructLayout({"data": 8, "last": 1})


def _crc16_matrix():
    """CRC-16/CCITT-FALSE of one byte as a GF(2)-linear map: output bit -> input bits.

    Inputs 0..15 are the CRC register bits, 16..23 the data byte bits.
    """
    state = [{i} for i in range(16)]
    for i in range(8):
        state[8 + i] = state[8 + i] ^ {16 + i}
    for _ in range(8):
        top = state[15]
        state = [set()] + state[:15]
        for bit in range(16):
            if (0x1021 >> bit) & 1:
                state[bit] = state[bit] ^ top
    return state


_CRC_MATRIX = _crc16_matrix()


def crc16_next(crc, byte):
    """The CRC register after shifting in ``byte`` (an XOR network, one level of logic)."""
    inputs = Cat(crc, byte)
    bits = []
    for taps in _CRC_MATRIX:
        term = Const(0, 1)
        for i in sorted(taps):
            term = term ^ inputs[i]
        bits.append(term)
    return Cat(*bits)


class RxFramer(wiring.Component):
    """Parses frames from a byte stream into a payload buffer.

    Hunts for SYNC, takes CMD and LEN, stores the payload in a buffer (when ``accept`` was
    high at the SYNC byte; otherwise it only checks it), and checks the CRC. At the end of
    a frame ``done`` pulses for one cycle with ``cmd``, ``length``, ``status`` (OK, BAD_CRC,
    or BAD_LENGTH for a length above ``max_payload``, reported right after the LEN bytes)
    and ``stored``. A frame that stalls for ``timeout_cycles`` between two bytes is
    abandoned without a response and the parser hunts for SYNC again. After a bad frame
    hunting restarts after the frame's last byte.

    Parameters
    ----------
    max_payload : payload buffer size in bytes.
    timeout_cycles : inter-byte timeout in clock cycles.

    Members
    -------
    i_stream : In(stream.Signature(8)), received bytes (always ready), **at most one every
        two cycles**: the length's compares are made between the byte's two registers,
        from the length's low byte taken a byte earlier (the UART receiver gives one byte
        per character, tens of cycles apart; `tests/test_hw_framing.py` shows what one
        byte a cycle breaks).
    accept : In(1), the command engine is idle and will take the next frame.
    done, cmd, length, status, stored : the frame report.
    rd_addr, rd_data : buffer read port (data two cycles after the address).
    """

    def __init__(self, *, max_payload: int = protocol.MAX_PAYLOAD, timeout_cycles: int):
        if not 1 <= max_payload <= 0xFFFF:
            raise ValueError(f"max_payload must be in 1..65535, got {max_payload!r}")
        if timeout_cycles < 16:
            raise ValueError(f"timeout_cycles must be >= 16, got {timeout_cycles!r}")
        self.max_payload = max_payload
        self.timeout_cycles = timeout_cycles
        super().__init__({
            "i_stream": In(stream.Signature(8)),
            "accept": In(1),
            "done": Out(1),
            "cmd": Out(8),
            "length": Out(16),
            "status": Out(3),
            "stored": Out(1),
            "rd_addr": In(range(max_payload)),
            "rd_data": Out(8),
        })

    def elaborate(self, platform):
        m = Module()
        # (bytes are stored only for a frame that began while the engine was idle; the
        # engine reads them after the frame is done: `hw.core.ram`)
        m.submodules.buf = buf = ram(shape=8, depth=self.max_payload)
        wr = buf.write_port()
        rd = SyncRead(m, buf, name="buf_rd")
        # Read data registered once more: a DP16KD's unregistered output is slow (~5 ns).
        # Without reset, so that `hw.build.outreg` can make it the output register.
        rd_q = Signal(8, name="buf_rd_q2", reset_less=True)
        m.d.comb += [rd.addr.eq(self.rd_addr), self.rd_data.eq(rd_q)]
        m.d.sync += rd_q.eq(rd.data)

        # The received byte passes two registers before the FSM, and the compares that
        # decide its next state are made between them (``is_sync``, the length's class):
        # the receiver sits by its pin, and its valid and byte through those compares into
        # the state's and the CRC's enables were round fifteen's latest paths at seed 3
        # (9.4 ns). Bytes arrive at most one per UART character (tens of cycles apart), so
        # two cycles of latency cost nothing, and ``length``'s low byte (LEN0) is in place
        # before the high byte reaches the compare.
        m.d.comb += self.i_stream.ready.eq(1)
        got1, got = Signal(name="got1"), Signal(name="got")
        byte1 = Signal(8, name="byte1", reset_less=True)
        byte = Signal(8, name="byte", reset_less=True)
        is_sync, len_over, len_zero, len_one = Signal(), Signal(), Signal(), Signal()
        length1 = Cat(self.length[:8], byte1)
        m.d.sync += [got1.eq(self.i_stream.valid), byte1.eq(self.i_stream.payload),
                     got.eq(got1), byte.eq(byte1), is_sync.eq(byte1 == protocol.SYNC),
                     len_over.eq(length1 > self.max_payload), len_zero.eq(length1 == 0),
                     len_one.eq(length1 == 1)]

        crc = Signal(16)
        crc_lo = Signal(8)
        count = Signal(16)
        # payload bytes still to come, and whether one is (``last``, a flip-flop): not
        # `count == length - 1` (a subtraction, then a compare, into the FSM state's
        # enable: the tiny build's latest path on one seed, 8.8 ns)
        left = Signal(16)
        last = Signal()
        idle = Signal(range(self.timeout_cycles + 1))
        m.d.sync += self.done.eq(0)
        m.d.comb += [wr.addr.eq(count), wr.data.eq(byte)]

        # Inter-byte timeout: a partial frame idle for timeout_cycles is abandoned.
        # ``timed_out`` is ``idle == timeout_cycles`` kept in a flip-flop (set when the
        # count reaches it): the compare reached every state's enable in this FSM
        timed_out = Signal()
        m.d.sync += timed_out.eq(~got & ~timed_out & (idle == self.timeout_cycles - 1))
        with m.If(got | timed_out):
            m.d.sync += idle.eq(0)
        with m.Else():
            m.d.sync += idle.eq(idle + 1)

        with m.FSM(name="rx_frame"):
            with m.State("HUNT"), m.If(got & is_sync):
                m.d.sync += [crc.eq(0xFFFF), self.stored.eq(self.accept)]
                m.next = "CMD"
            with m.State("CMD"):
                with m.If(got):
                    m.d.sync += [self.cmd.eq(byte), crc.eq(crc16_next(crc, byte))]
                    m.next = "LEN0"
                with m.Elif(timed_out):
                    m.next = "HUNT"
            with m.State("LEN0"):
                with m.If(got):
                    m.d.sync += [self.length[:8].eq(byte), crc.eq(crc16_next(crc, byte))]
                    m.next = "LEN1"
                with m.Elif(timed_out):
                    m.next = "HUNT"
            with m.State("LEN1"):
                with m.If(got):
                    length = Cat(self.length[:8], byte)
                    m.d.sync += [self.length[8:].eq(byte), crc.eq(crc16_next(crc, byte)),
                                 count.eq(0), left.eq(length), last.eq(len_one)]
                    with m.If(len_over):
                        m.d.sync += [self.done.eq(1),
                                     self.status.eq(protocol.Status.BAD_LENGTH)]
                        m.next = "HUNT"
                    with m.Elif(len_zero):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "PAYLOAD"
                with m.Elif(timed_out):
                    m.next = "HUNT"
            with m.State("PAYLOAD"):
                with m.If(got):
                    m.d.comb += wr.en.eq(self.stored)
                    m.d.sync += [crc.eq(crc16_next(crc, byte)), count.eq(count + 1),
                                 left.eq(left - 1), last.eq(left == 2)]
                    with m.If(last):
                        m.next = "CRC0"
                with m.Elif(timed_out):
                    m.next = "HUNT"
            with m.State("CRC0"):
                with m.If(got):
                    m.d.sync += crc_lo.eq(byte)
                    m.next = "CRC1"
                with m.Elif(timed_out):
                    m.next = "HUNT"
            with m.State("CRC1"):
                with m.If(got):
                    m.d.sync += [
                        self.done.eq(1),
                        self.status.eq(Cat(crc_lo, byte) != crc),  # OK = 0, BAD_CRC = 1
                    ]
                    m.next = "HUNT"
                with m.Elif(timed_out):
                    m.next = "HUNT"
        return m


class TxFramer(wiring.Component):
    """Frames a body (CMD, LEN, PAYLOAD bytes, ``last`` on the final one) for the UART.

    Sends SYNC, then the body, then the CRC-16/CCITT-FALSE of the body, low byte first.

    Members
    -------
    i_stream : In(stream.Signature(TxByte)).
    o_stream : Out(stream.Signature(8)), to the UART transmitter.
    """

    i_stream: In(stream.Signature(TxByte))
    o_stream: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        crc = Signal(16)
        # One-byte input register: the CRC is computed from it, not from the producer's
        # combinational output (timing). The UART takes a byte every 10 bit times, so the
        # bubble this costs is never seen.
        hold = Signal(TxByte)
        full = Signal()
        m.d.comb += self.i_stream.ready.eq(~full)
        with m.If(self.i_stream.valid & ~full):
            m.d.sync += [hold.eq(self.i_stream.payload), full.eq(1)]
        with m.FSM(name="tx_frame"):
            with m.State("IDLE"):
                m.d.comb += [self.o_stream.payload.eq(protocol.SYNC),
                             self.o_stream.valid.eq(full)]
                with m.If(full & self.o_stream.ready):
                    m.d.sync += crc.eq(0xFFFF)
                    m.next = "BODY"
            with m.State("BODY"):
                m.d.comb += [self.o_stream.payload.eq(hold.data),
                             self.o_stream.valid.eq(full)]
                with m.If(full & self.o_stream.ready):
                    m.d.sync += [crc.eq(crc16_next(crc, hold.data)), full.eq(0)]
                    with m.If(hold.last):
                        m.next = "CRC0"
            with m.State("CRC0"):
                m.d.comb += [self.o_stream.payload.eq(crc[:8]), self.o_stream.valid.eq(1)]
                with m.If(self.o_stream.ready):
                    m.next = "CRC1"
            with m.State("CRC1"):
                m.d.comb += [self.o_stream.payload.eq(crc[8:]), self.o_stream.valid.eq(1)]
                with m.If(self.o_stream.ready):
                    m.next = "IDLE"
        return m
