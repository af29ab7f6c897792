"""Host <-> accelerator UART protocol (version 1): frames, CRC, commands, payloads.

This module is the single definition of the protocol. The host runtime (``sw.host``), the
gateware generator (``hw.top``, which takes its constants from here) and the cocotb testbench
(``sim/cocotb_uart``) all import it, so the three cannot drift apart. It needs only the
standard library (no torch, no amaranth). docs/host_protocol.md describes the same thing in
prose.

Frame (both directions)::

    SYNC(0xA5) | CMD (1) | LEN (2, little-endian) | PAYLOAD (LEN bytes) | CRC (2, little-endian)

CRC is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor; check value
0x29B1 for b"123456789") over CMD, LEN and PAYLOAD (not SYNC). A response has CMD = request
command | 0x80 and its payload starts with a status byte.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import struct
import zlib

__all__ = [
    "COUNTER_FIELDS",
    "MAX_PAYLOAD",
    "OPT_EMIT_LOGITS",
    "PROTOCOL_VERSION",
    "RESPONSE_FLAG",
    "SYNC",
    "WRITE_RECORD_BYTES",
    "Cmd",
    "Frame",
    "FrameParser",
    "ModelSignature",
    "ProtocolError",
    "Status",
    "crc16",
    "decode_counters",
    "decode_frame",
    "decode_logits",
    "decode_step_response",
    "encode_frame",
    "encode_options",
    "encode_step",
    "encode_weight_writes",
    "error_frame",
    "response_frame",
]

PROTOCOL_VERSION = 1
SYNC = 0xA5
RESPONSE_FLAG = 0x80
#: Default largest payload the gateware accepts (its receive buffer; one DP16KD).
MAX_PAYLOAD = 1024
#: Bytes of one WRITE_WEIGHTS record: mem (1), bank (1), addr (2), data (4), little-endian.
WRITE_RECORD_BYTES = 8
#: SET_OPTIONS flag bits.
OPT_EMIT_LOGITS = 0x01


class Cmd(enum.IntEnum):
    """Command codes (request CMD byte; the response uses ``code | 0x80``)."""
    PING = 0x01           # -> status, version, model signature
    RESET = 0x02          # -> status                   (clears state, counters kept)
    STEP = 0x03           # n x uint16 tokens -> n response frames (status, [logits], top1)
    READ_LOGITS = 0x04    # -> status, logits of the last step, top1
    READ_COUNTERS = 0x05  # -> status, 32 bytes of performance counters
    WRITE_WEIGHTS = 0x06  # n x 8-byte records -> status
    SET_OPTIONS = 0x07    # 1 byte flags -> status, flags


class Status(enum.IntEnum):
    """Status byte, the first payload byte of every response."""
    OK = 0
    BAD_CRC = 1
    UNKNOWN_CMD = 2
    BAD_LENGTH = 3
    BUSY = 4
    BAD_ARG = 5


#: Performance counters in the order and widths (bits) of the READ_COUNTERS payload
#: (the accelerator's ``counters`` struct, least significant field first, little-endian).
COUNTER_FIELDS = (("steps", 32), ("cycles", 48), ("events", 32), ("macs", 48),
                  ("last_cycles", 32), ("last_events", 32), ("last_macs", 32))
COUNTER_BYTES = sum(w for _, w in COUNTER_FIELDS) // 8


class ProtocolError(Exception):
    """A frame or payload that does not follow the protocol."""


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (poly 0x1021, init 0xFFFF, MSB first, no xor-out)."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


@dataclasses.dataclass(frozen=True)
class Frame:
    """One decoded frame: command byte and payload."""
    cmd: int
    payload: bytes = b""

    @property
    def is_response(self) -> bool:
        return bool(self.cmd & RESPONSE_FLAG)

    @property
    def status(self) -> Status:
        if not self.payload:
            raise ProtocolError(f"response 0x{self.cmd:02x} has no status byte")
        return Status(self.payload[0])

    def encode(self) -> bytes:
        return encode_frame(self.cmd, self.payload)


def encode_frame(cmd: int, payload: bytes = b"") -> bytes:
    """Frame ``payload`` for command byte ``cmd``."""
    if not 0 <= cmd <= 0xFF:
        raise ValueError(f"command byte out of range: {cmd!r}")
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload too long: {len(payload)} bytes")
    body = bytes([cmd]) + struct.pack("<H", len(payload)) + bytes(payload)
    return bytes([SYNC]) + body + struct.pack("<H", crc16(body))


def response_frame(cmd: int, status: Status, payload: bytes = b"") -> bytes:
    """The response frame to request ``cmd`` (used by models and tests)."""
    return encode_frame((cmd | RESPONSE_FLAG) & 0xFF, bytes([int(status)]) + payload)


def error_frame(cmd: int, status: Status) -> bytes:
    return response_frame(cmd, status)


def decode_frame(data: bytes) -> Frame:
    """Decode exactly one frame; raise ProtocolError on any defect."""
    if len(data) < 6:
        raise ProtocolError(f"truncated frame ({len(data)} bytes)")
    if data[0] != SYNC:
        raise ProtocolError(f"bad sync byte 0x{data[0]:02x}")
    (length,) = struct.unpack_from("<H", data, 2)
    if len(data) != 6 + length:
        raise ProtocolError(f"length field {length} but {len(data) - 6} payload bytes")
    body = data[1:4 + length]
    (crc,) = struct.unpack_from("<H", data, 4 + length)
    if crc != crc16(body):
        raise ProtocolError(f"bad CRC 0x{crc:04x}, expected 0x{crc16(body):04x}")
    return Frame(data[1], bytes(data[4:4 + length]))


class FrameParser:
    """Incremental frame parser: hunts for SYNC, drops frames with a bad CRC.

    Like the gateware's receiver, a byte that is not SYNC while hunting is dropped and a
    frame whose CRC fails is dropped (``errors`` counts it); unlike it (it can look back),
    hunting then restarts at the byte after the bad frame's SYNC, so a SYNC byte inside
    garbage cannot hide a good frame that follows, and a length above ``max_payload`` is
    refused at once. ``timeout()`` abandons a partial frame (the host calls it when the
    line has been idle; the gateware does the same after its inter-byte timeout).
    """

    def __init__(self, max_payload: int = 0xFFFF):
        self.max_payload = max_payload
        self.errors = 0
        self._buf = bytearray()

    def timeout(self) -> None:
        if self._buf:
            self.errors += 1
        self._buf.clear()

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames = []
        while True:
            start = self._buf.find(bytes([SYNC]))
            if start < 0:
                self._buf.clear()
                return frames
            del self._buf[:start]
            if len(self._buf) < 4:
                return frames
            (length,) = struct.unpack_from("<H", self._buf, 2)
            if length > self.max_payload:
                self.errors += 1
                del self._buf[:1]
                continue
            if len(self._buf) < 6 + length:
                return frames
            try:
                frames.append(decode_frame(bytes(self._buf[:6 + length])))
                del self._buf[:6 + length]
            except ProtocolError:
                self.errors += 1
                del self._buf[:1]


# --- model signature (PING response) -------------------------------------------------------

def _get(obj, key, default=None):
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


@dataclasses.dataclass(frozen=True)
class ModelSignature:
    """What the gateware was built for; returned by PING after the protocol version.

    Layout (little-endian): kind (1: 0 lm, 1 rnn), layers L (1), input_size (2),
    vocab_size (2), readout (1), banks P (1), weight_bits (1), state_bits (1), acc_bits (1),
    logit_bytes (1), max_payload (2), digest (4: CRC-32 of the canonical JSON of the
    bundle's format, model and banks), then L x hidden_size (2 each).
    """
    kind: int
    input_size: int
    vocab_size: int
    readout: bool
    banks: int
    weight_bits: int
    state_bits: int
    acc_bits: int
    max_payload: int
    digest: int
    hidden_sizes: tuple

    _HEAD = struct.Struct("<BBHHBBBBBBHI")

    @property
    def logit_bytes(self) -> int:
        return (self.acc_bits + 7) // 8

    @property
    def layers(self) -> int:
        return len(self.hidden_sizes)

    @classmethod
    def from_bundle(cls, bundle, max_payload: int = MAX_PAYLOAD) -> ModelSignature:
        fmt, model = bundle.format, bundle.model
        fmt_d = fmt if isinstance(fmt, dict) else (
            dataclasses.asdict(fmt) if dataclasses.is_dataclass(fmt) else dict(vars(fmt)))
        canon = json.dumps({"format": fmt_d, "model": model, "banks": int(bundle.banks)},
                           sort_keys=True, separators=(",", ":"), default=str)
        return cls(
            kind=0 if model.get("kind", "lm") == "lm" else 1,
            input_size=int(model.get("input_size", model.get("vocab_size", 0))),
            vocab_size=int(model.get("vocab_size", 0) or 0),
            readout=bool(model.get("readout", True)),
            banks=int(bundle.banks),
            weight_bits=int(_get(fmt, "weight_bits")),
            state_bits=int(_get(fmt, "state_bits")),
            acc_bits=int(_get(fmt, "acc_bits")),
            max_payload=max_payload,
            digest=zlib.crc32(canon.encode()),
            hidden_sizes=tuple(int(layer["hidden_size"]) for layer in model["layers"]),
        )

    def to_bytes(self) -> bytes:
        head = self._HEAD.pack(self.kind, self.layers, self.input_size, self.vocab_size,
                               int(self.readout), self.banks, self.weight_bits,
                               self.state_bits, self.acc_bits, self.logit_bytes,
                               self.max_payload, self.digest)
        return head + b"".join(struct.pack("<H", h) for h in self.hidden_sizes)

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelSignature:
        n = cls._HEAD.size
        if len(data) < n:
            raise ProtocolError(f"signature too short ({len(data)} bytes)")
        (kind, layers, input_size, vocab, readout, banks, wb, sb, ab, lb, max_payload,
         digest) = cls._HEAD.unpack_from(data)
        if len(data) != n + 2 * layers:
            raise ProtocolError(f"signature of {len(data)} bytes for {layers} layers")
        hidden = struct.unpack_from(f"<{layers}H", data, n)
        sig = cls(kind, input_size, vocab, bool(readout), banks, wb, sb, ab, max_payload,
                  digest, tuple(hidden))
        if sig.logit_bytes != lb:
            raise ProtocolError(f"logit_bytes {lb} does not match acc_bits {ab}")
        return sig


def ping_payload(signature: ModelSignature) -> bytes:
    """PING response payload after the status byte: version, then the signature."""
    return bytes([PROTOCOL_VERSION]) + signature.to_bytes()


def decode_ping(frame: Frame) -> tuple[int, ModelSignature]:
    _check_ok(frame, Cmd.PING)
    if len(frame.payload) < 2:
        raise ProtocolError("PING response too short")
    return frame.payload[1], ModelSignature.from_bytes(frame.payload[2:])


# --- payload helpers -----------------------------------------------------------------------

def _check_ok(frame: Frame, cmd: Cmd) -> None:
    if frame.cmd != (cmd | RESPONSE_FLAG):
        raise ProtocolError(f"expected response to {cmd.name}, got cmd 0x{frame.cmd:02x}")
    if frame.status != Status.OK:
        raise ProtocolError(f"{cmd.name} failed: {frame.status.name}")


def encode_step(tokens) -> bytes:
    """STEP payload: tokens as uint16 little-endian."""
    tokens = list(tokens)
    for t in tokens:
        if not 0 <= int(t) <= 0xFFFF:
            raise ValueError(f"token out of range: {t!r}")
    return struct.pack(f"<{len(tokens)}H", *tokens)


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def decode_logits(data: bytes, n: int, logit_bytes: int) -> list[int]:
    """``n`` signed little-endian logits of ``logit_bytes`` bytes each."""
    if len(data) != n * logit_bytes:
        raise ProtocolError(f"{len(data)} logit bytes, expected {n * logit_bytes}")
    bits = 8 * logit_bytes
    return [_signed(int.from_bytes(data[i * logit_bytes:(i + 1) * logit_bytes], "little"),
                    bits) for i in range(n)]


def decode_step_response(frame: Frame, vocab: int, logit_bytes: int,
                         cmd: Cmd = Cmd.STEP) -> tuple[int, list[int] | None]:
    """One STEP (or READ_LOGITS) response: (top1, logits or None)."""
    _check_ok(frame, cmd)
    body = frame.payload[1:]
    if len(body) == 2:
        return struct.unpack("<H", body)[0], None
    if len(body) != 2 + vocab * logit_bytes:
        raise ProtocolError(f"{cmd.name} response of {len(body)} bytes")
    return (struct.unpack("<H", body[-2:])[0],
            decode_logits(body[:-2], vocab, logit_bytes))


def encode_weight_writes(writes) -> bytes:
    """WRITE_WEIGHTS payload from (mem, bank, addr, data) tuples."""
    out = bytearray()
    for mem, bank, addr, data in writes:
        out += struct.pack("<BBHI", mem, bank, addr, int(data) & 0xFFFFFFFF)
    return bytes(out)


def decode_weight_writes(payload: bytes) -> list[tuple[int, int, int, int]]:
    if len(payload) % WRITE_RECORD_BYTES:
        raise ProtocolError(f"WRITE_WEIGHTS payload of {len(payload)} bytes")
    return [struct.unpack_from("<BBHI", payload, i)
            for i in range(0, len(payload), WRITE_RECORD_BYTES)]


def encode_options(emit_logits: bool) -> bytes:
    return bytes([OPT_EMIT_LOGITS if emit_logits else 0])


def decode_counters(frame: Frame) -> dict[str, int]:
    _check_ok(frame, Cmd.READ_COUNTERS)
    body = frame.payload[1:]
    if len(body) != COUNTER_BYTES:
        raise ProtocolError(f"counters payload of {len(body)} bytes")
    value = int.from_bytes(body, "little")
    out, shift = {}, 0
    for name, width in COUNTER_FIELDS:
        out[name] = (value >> shift) & ((1 << width) - 1)
        shift += width
    return out


#: Expected request payload length per command: an int (exact), or (multiple, min, max).
def request_length_ok(cmd: int, length: int, max_payload: int = MAX_PAYLOAD) -> bool:
    if cmd in (Cmd.PING, Cmd.RESET, Cmd.READ_LOGITS, Cmd.READ_COUNTERS):
        return length == 0
    if cmd == Cmd.SET_OPTIONS:
        return length == 1
    if cmd == Cmd.STEP:
        return 2 <= length <= max_payload and length % 2 == 0
    if cmd == Cmd.WRITE_WEIGHTS:
        return WRITE_RECORD_BYTES <= length <= max_payload and length % WRITE_RECORD_BYTES == 0
    return False
