"""cocotb testbench of the UART top level (hw.top.UartTop), through the real protocol code.

Driver: a UART transmitter on ``rx``; monitor: a UART receiver on ``tx`` feeding
``hw.protocol.FrameParser``; model: the stub's formula, or the golden outputs in
expect.json; checker: the tests below. Framing errors are injected (garbage bytes, bad CRC,
truncated frame, oversized length, unknown command, a frame sent while busy) and the link
must answer each as documented and then serve a good frame. Every scenario runs with and
without idle gaps between bytes.
"""

import json
import os
import random
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.queue import Queue
from cocotb.triggers import ClockCycles, FallingEdge, with_timeout

from hw import protocol
from hw.protocol import Cmd, FrameParser, Status

CFG = json.loads((Path(os.environ["UART_TOP_DIR"]) / "config.json").read_text())
EXPECT_PATH = Path(os.environ["UART_TOP_DIR"]) / "expect.json"
DIV = CFG["divisor"]
V = CFG["vocab"]
LB = CFG["logit_bytes"]
BYTE_CYCLES = 10 * DIV


class Link:
    """UART driver and monitor around the DUT, speaking hw.protocol."""

    def __init__(self, dut, gap: int = 0):
        self.dut = dut
        self.gap = gap
        self.rxq = Queue()
        self.parser = FrameParser()
        dut.rx.value = 1
        cocotb.start_soon(self._monitor())

    async def _monitor(self):
        dut = self.dut
        while True:
            await FallingEdge(dut.tx)
            await ClockCycles(dut.clk, DIV // 2)
            assert int(dut.tx.value) == 0, "start bit glitch on tx"
            byte = 0
            for i in range(8):
                await ClockCycles(dut.clk, DIV)
                byte |= int(dut.tx.value) << i
            await ClockCycles(dut.clk, DIV)
            assert int(dut.tx.value) == 1, "bad stop bit on tx"
            for frame in self.parser.feed(bytes([byte])):
                self.rxq.put_nowait(frame)

    async def send_bytes(self, data: bytes):
        dut = self.dut
        for byte in data:
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                dut.rx.value = bit
                await ClockCycles(dut.clk, DIV)
            if self.gap:
                await ClockCycles(dut.clk, self.gap)

    async def send(self, cmd, payload: bytes = b""):
        await self.send_bytes(protocol.encode_frame(int(cmd), payload))

    async def recv(self, timeout_bytes: int = 800) -> protocol.Frame:
        return await with_timeout(self.rxq.get(), timeout_bytes * BYTE_CYCLES * 10, "ns")

    async def request(self, cmd, payload: bytes = b"", status=Status.OK) -> protocol.Frame:
        await self.send(cmd, payload)
        frame = await self.recv()
        assert frame.cmd == (int(cmd) | protocol.RESPONSE_FLAG), frame
        assert frame.status == status, (frame.status, status)
        return frame

    async def idle(self, byte_times: int):
        await ClockCycles(self.dut.clk, byte_times * BYTE_CYCLES)

    def assert_quiet(self):
        assert self.rxq.empty(), f"unexpected frame {self.rxq.get_nowait()}"


async def setup(dut, gap=0) -> Link:
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.rx.value = 1
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 5)
    return Link(dut, gap)


def stub_top1(token, bias=0):
    return (token + bias) % V


def stub_logits(token, bias=0):
    t = stub_top1(token, bias)
    return [1000 if k == t else k for k in range(V)]


async def step(link, tokens, *, logits: bool):
    await link.send(Cmd.STEP, protocol.encode_step(tokens))
    out = []
    for _ in tokens:
        frame = await link.recv()
        top1, lg = protocol.decode_step_response(frame, V, LB)
        assert (lg is not None) == logits
        out.append((top1, lg))
    return out


@cocotb.test()
@cocotb.parametrize(gap=[0, 3])
async def test_commands(dut, gap):
    """PING, SET_OPTIONS, STEP (one and many tokens), READ_LOGITS, counters, weights."""
    link = await setup(dut, gap)
    frame = await link.request(Cmd.PING)
    version, sig = protocol.decode_ping(frame)
    assert version == protocol.PROTOCOL_VERSION
    assert sig.to_bytes().hex() == CFG["signature"]

    await link.request(Cmd.RESET)
    await link.request(Cmd.SET_OPTIONS, protocol.encode_options(False))
    tokens = [1, 5, 0, V - 1, 7 % V]
    res = await step(link, tokens[:1], logits=False)
    res += await step(link, tokens[1:], logits=False)
    if CFG["stub"]:
        assert [t for t, _ in res] == [stub_top1(t) for t in tokens]
    assert all(0 <= t < V for t, _ in res)

    frame = await link.request(Cmd.SET_OPTIONS, protocol.encode_options(True))
    assert frame.payload[1] == protocol.OPT_EMIT_LOGITS
    res = await step(link, [3], logits=True)
    top1, lg = res[0]
    if CFG["stub"]:
        assert top1 == stub_top1(3) and lg == stub_logits(3)
    # READ_LOGITS returns the last step's logits (also when they were not sent).
    frame = await link.request(Cmd.READ_LOGITS)
    assert protocol.decode_step_response(frame, V, LB, Cmd.READ_LOGITS) == (top1, lg)
    await link.request(Cmd.SET_OPTIONS, protocol.encode_options(False))
    (top1b, _), = await step(link, [4], logits=False)
    frame = await link.request(Cmd.READ_LOGITS)
    top1c, lgc = protocol.decode_step_response(frame, V, LB, Cmd.READ_LOGITS)
    assert top1c == top1b and lgc[top1b] == max(lgc)

    counters = protocol.decode_counters(await link.request(Cmd.READ_COUNTERS))
    # seven steps since power-up (RESET keeps the totals); each total covers its last step
    # (a byte out of place in the engine's counter pipeline breaks these)
    assert counters["steps"] == 7, counters
    assert 0 < counters["last_cycles"] <= counters["cycles"] < 1 << 32, counters
    assert counters["last_events"] <= counters["events"] < 1 << 24, counters
    assert counters["last_macs"] <= counters["macs"] < 1 << 32, counters

    if CFG["stub"]:
        # The stub's "weights": the last write's data shifts top1.
        writes = [(0, 0, a, 2) for a in range(3)]
        await link.request(Cmd.WRITE_WEIGHTS, protocol.encode_weight_writes(writes))
        (top1, _), = await step(link, [3], logits=False)
        assert top1 == stub_top1(3, bias=2)
    link.assert_quiet()


@cocotb.test()
async def test_golden(dut):
    """After RESET, a token sequence gives the golden model's top1 and logits."""
    if not EXPECT_PATH.exists():
        return
    expect = json.loads(EXPECT_PATH.read_text())
    link = await setup(dut)
    await link.request(Cmd.RESET)
    await link.request(Cmd.SET_OPTIONS, protocol.encode_options(True))
    res = await step(link, expect["tokens"], logits=True)
    assert [t for t, _ in res] == expect["top1"]
    assert [lg for _, lg in res] == expect["logits"]


@cocotb.test()
@cocotb.parametrize(gap=[0, 2])
async def test_framing_errors(dut, gap):
    """Garbage, bad CRC, truncation, bad lengths, unknown commands, busy: link recovers."""
    link = await setup(dut, gap)
    rng = random.Random(5)
    max_payload = CFG["max_payload"]
    ping = protocol.encode_frame(Cmd.PING)

    # Garbage without SYNC is ignored; a good frame right after it is served.
    garbage = bytes(b for b in rng.randbytes(40) if b != protocol.SYNC)
    await link.send_bytes(garbage + ping)
    frame = await link.recv()
    assert frame.cmd == Cmd.PING | protocol.RESPONSE_FLAG and frame.status == Status.OK

    # Bad CRC: BAD_CRC error frame, then a good frame works.
    bad = bytearray(protocol.encode_frame(Cmd.STEP, protocol.encode_step([1, 2])))
    bad[-1] ^= 0x5A
    await link.send_bytes(bytes(bad))
    frame = await link.recv()
    assert frame.status == Status.BAD_CRC and frame.cmd == Cmd.STEP | protocol.RESPONSE_FLAG
    await link.request(Cmd.RESET)

    # Corrupted payload byte: also a CRC error.
    bad = bytearray(protocol.encode_frame(Cmd.SET_OPTIONS, b"\x01"))
    bad[4] ^= 0x01
    await link.send_bytes(bytes(bad))
    assert (await link.recv()).status == Status.BAD_CRC

    # Truncated frame: no answer; after the inter-byte timeout a good frame works.
    await link.send_bytes(protocol.encode_frame(Cmd.STEP, protocol.encode_step([1, 2, 3]))[:7])
    await link.idle(2 * CFG["timeout_cycles"] // BYTE_CYCLES + 2)
    link.assert_quiet()
    await link.request(Cmd.PING)

    # Garbage containing SYNC bytes followed by idle, then a good frame.
    await link.send_bytes(bytes([protocol.SYNC, 0x03, 0x10]))
    await link.idle(2 * CFG["timeout_cycles"] // BYTE_CYCLES + 2)
    await link.request(Cmd.PING)

    # Length above the buffer: BAD_LENGTH at once (the rest of the frame is noise).
    await link.send_bytes(bytes([protocol.SYNC, Cmd.STEP]) +
                          (max_payload + 2).to_bytes(2, "little"))
    assert (await link.recv()).status == Status.BAD_LENGTH
    await link.idle(2 * CFG["timeout_cycles"] // BYTE_CYCLES + 2)

    # Lengths that do not suit the command, and an unknown command.
    await link.request(Cmd.STEP, b"\x01\x00\x02", status=Status.BAD_LENGTH)
    await link.request(Cmd.PING, b"\x00", status=Status.BAD_LENGTH)
    await link.request(Cmd.WRITE_WEIGHTS, bytes(7), status=Status.BAD_LENGTH)
    await link.request(0x55, b"abc", status=Status.UNKNOWN_CMD)
    await link.request(Cmd.STEP, protocol.encode_step([V + 3]), status=Status.BAD_ARG)

    # A frame that arrives while a command runs: BUSY after the running one's answers.
    await link.request(Cmd.SET_OPTIONS, protocol.encode_options(True))
    tokens = [1, 2]
    await link.send(Cmd.STEP, protocol.encode_step(tokens))
    await link.send(Cmd.PING)
    frames = [await link.recv() for _ in range(len(tokens) + 1)]
    assert [f.status for f in frames[:2]] == [Status.OK, Status.OK]
    assert frames[2].cmd == Cmd.PING | protocol.RESPONSE_FLAG
    assert frames[2].status == Status.BUSY
    await link.request(Cmd.SET_OPTIONS, protocol.encode_options(False))
    await link.request(Cmd.PING)
    link.assert_quiet()
