"""hw.protocol: frames, CRC, payloads; round trips and rejection of bad input."""

import random
import struct

import pytest

from hw import protocol
from hw.protocol import Cmd, Frame, FrameParser, ProtocolError, Status


def test_crc16_ccitt_false_check_value():
    assert protocol.crc16(b"123456789") == 0x29B1
    assert protocol.crc16(b"") == 0xFFFF


def test_crc_gateware_matrix_matches_software():
    from hw.top.framing import _CRC_MATRIX
    rng = random.Random(1)
    for _ in range(200):
        crc, byte = rng.randrange(1 << 16), rng.randrange(256)
        inputs = crc | (byte << 16)
        out = 0
        for bit, taps in enumerate(_CRC_MATRIX):
            out |= (sum((inputs >> i) & 1 for i in taps) & 1) << bit
        assert out == protocol.crc16(bytes([byte]), crc)


@pytest.mark.parametrize("cmd,payload", [
    (Cmd.PING, b""), (Cmd.STEP, protocol.encode_step([0, 1, 65535])),
    (Cmd.WRITE_WEIGHTS, protocol.encode_weight_writes([(1, 2, 300, 0xDEADBEEF)])),
    (0x85, bytes(range(256)) * 3), (Cmd.STEP, bytes([protocol.SYNC]) * 10),
])
def test_frame_round_trip(cmd, payload):
    data = protocol.encode_frame(cmd, payload)
    assert data[0] == protocol.SYNC
    assert struct.unpack_from("<H", data, 2)[0] == len(payload)
    assert protocol.decode_frame(data) == Frame(cmd, payload)
    assert FrameParser().feed(data) == [Frame(cmd, payload)]


def test_decode_rejects():
    good = protocol.encode_frame(Cmd.STEP, b"\x01\x00")
    with pytest.raises(ProtocolError, match="truncated"):
        protocol.decode_frame(good[:5])
    with pytest.raises(ProtocolError, match="sync"):
        protocol.decode_frame(b"\x00" + good[1:])
    with pytest.raises(ProtocolError, match="length"):
        protocol.decode_frame(good[:-1])
    bad = bytearray(good)
    bad[4] ^= 1
    with pytest.raises(ProtocolError, match="CRC"):
        protocol.decode_frame(bytes(bad))
    with pytest.raises(ValueError):
        protocol.encode_frame(256)
    with pytest.raises(ValueError):
        protocol.encode_step([70000])


def test_parser_recovers_from_garbage_bad_crc_and_truncation():
    rng = random.Random(7)
    frames = [Frame(Cmd.STEP, protocol.encode_step([rng.randrange(100) for _ in range(k)]))
              for k in range(1, 6)]
    parser = FrameParser(max_payload=64)   # a false length from garbage is refused at once
    out = []
    # garbage (with SYNC bytes inside) before every frame, byte-by-byte feeding
    for frame in frames:
        junk = bytes(rng.randrange(256) for _ in range(13)) + bytes([protocol.SYNC])
        for b in junk + frame.encode():
            out += parser.feed(bytes([b]))
    assert frames[-1] in out and len([f for f in out if f in frames]) >= 4
    # a bad CRC frame followed directly by a good one: the good one is found
    bad = bytearray(frames[0].encode())
    bad[-2] ^= 0xFF
    parser = FrameParser()
    assert parser.feed(bytes(bad) + frames[1].encode()) == [frames[1]]
    assert parser.errors >= 1
    # a truncated frame, a timeout, then a good frame
    parser = FrameParser()
    assert parser.feed(frames[2].encode()[:-3]) == []
    parser.timeout()
    assert parser.feed(frames[3].encode()) == [frames[3]]
    # an oversized length is rejected without waiting for the bytes
    parser = FrameParser(max_payload=16)
    hdr = bytes([protocol.SYNC, Cmd.STEP]) + (1000).to_bytes(2, "little")
    assert parser.feed(hdr + frames[0].encode()) == [frames[0]]


def test_signature_round_trip():
    sig = protocol.ModelSignature(kind=0, input_size=96, vocab_size=96, readout=True, banks=8,
                                  weight_bits=8, state_bits=16, acc_bits=32, max_payload=1024,
                                  digest=0xCAFEBABE, hidden_sizes=(128, 64))
    assert protocol.ModelSignature.from_bytes(sig.to_bytes()) == sig
    assert sig.logit_bytes == 4 and sig.layers == 2
    with pytest.raises(ProtocolError):
        protocol.ModelSignature.from_bytes(sig.to_bytes()[:-1])
    frame = Frame(Cmd.PING | protocol.RESPONSE_FLAG, b"\x00" + protocol.ping_payload(sig))
    assert protocol.decode_ping(frame) == (protocol.PROTOCOL_VERSION, sig)


def test_signature_from_bundle(tmp_path):
    from hw.bundle import load_bundle
    from sim.random_bundle import random_bundle
    b = load_bundle(random_bundle(tmp_path / "b", layers=2, hidden=[8, 6], vocab=10, banks=2,
                                  seed=3))
    sig = protocol.ModelSignature.from_bundle(b)
    assert sig.hidden_sizes == (8, 6) and sig.vocab_size == 10 and sig.banks == 2
    assert sig.acc_bits == b.format.acc_bits
    assert protocol.ModelSignature.from_bundle(b) == sig      # digest is deterministic


def test_step_and_counters_payloads():
    logits = [-5, 0, 2**31 - 1, -2**31]
    body = b"".join(v.to_bytes(4, "little", signed=True) for v in logits) + b"\x02\x00"
    frame = Frame(Cmd.STEP | protocol.RESPONSE_FLAG, b"\x00" + body)
    assert protocol.decode_step_response(frame, 4, 4) == (2, logits)
    short = Frame(Cmd.STEP | protocol.RESPONSE_FLAG, b"\x00\x03\x00")
    assert protocol.decode_step_response(short, 4, 4) == (3, None)
    err = Frame(Cmd.STEP | protocol.RESPONSE_FLAG, bytes([Status.BAD_ARG]))
    with pytest.raises(ProtocolError, match="BAD_ARG"):
        protocol.decode_step_response(err, 4, 4)
    values = {"steps": 3, "cycles": 2**40 + 5, "events": 7, "macs": 2**47, "last_cycles": 9,
              "last_events": 1, "last_macs": 2}
    raw, shift = 0, 0
    for name, width in protocol.COUNTER_FIELDS:
        raw |= values[name] << shift
        shift += width
    frame = Frame(Cmd.READ_COUNTERS | protocol.RESPONSE_FLAG,
                  b"\x00" + raw.to_bytes(protocol.COUNTER_BYTES, "little"))
    assert protocol.decode_counters(frame) == values
    writes = [(0, 1, 2, 3), (255, 7, 65535, 0xFFFFFFFF)]
    assert protocol.decode_weight_writes(protocol.encode_weight_writes(writes)) == writes


def test_request_lengths():
    assert protocol.request_length_ok(Cmd.PING, 0)
    assert not protocol.request_length_ok(Cmd.PING, 1)
    assert protocol.request_length_ok(Cmd.STEP, 2)
    assert not protocol.request_length_ok(Cmd.STEP, 3)
    assert not protocol.request_length_ok(Cmd.STEP, protocol.MAX_PAYLOAD + 2)
    assert protocol.request_length_ok(Cmd.WRITE_WEIGHTS, 16)
    assert not protocol.request_length_ok(Cmd.WRITE_WEIGHTS, 12)
    assert not protocol.request_length_ok(0x7E, 0)


class FakeSerial:
    """A pyserial stand-in that answers like the board (a Python model of the engine)."""

    def __init__(self, vocab=5, busy_first=0):
        self.sig = protocol.ModelSignature(kind=0, input_size=vocab, vocab_size=vocab,
                                           readout=True, banks=1, weight_bits=8,
                                           state_bits=16, acc_bits=32, max_payload=8,
                                           digest=1, hidden_sizes=(4,))
        self.parser = FrameParser()
        self.out = bytearray()
        self.busy_first = busy_first
        self.emit = False
        self.writes = []

    def reset_input_buffer(self):
        self.out.clear()

    def write(self, data):
        for f in self.parser.feed(data):
            if self.busy_first:
                self.busy_first -= 1
                self.out += protocol.error_frame(f.cmd, Status.BUSY)
                continue
            V = self.sig.vocab_size
            if f.cmd == Cmd.PING:
                self.out += protocol.response_frame(f.cmd, Status.OK,
                                                    protocol.ping_payload(self.sig))
            elif f.cmd == Cmd.SET_OPTIONS:
                self.emit = bool(f.payload[0] & 1)
                self.out += protocol.response_frame(f.cmd, Status.OK, f.payload)
            elif f.cmd == Cmd.STEP:
                for (t,) in struct.iter_unpack("<H", f.payload):
                    top1 = (t + 1) % V
                    lg = b"".join(((k == top1) * 100).to_bytes(4, "little", signed=True)
                                  for k in range(V)) if self.emit else b""
                    self.out += protocol.response_frame(f.cmd, Status.OK,
                                                        lg + struct.pack("<H", top1))
            elif f.cmd == Cmd.WRITE_WEIGHTS:
                self.writes += protocol.decode_weight_writes(f.payload)
                self.out += protocol.response_frame(f.cmd, Status.OK)
            else:
                self.out += protocol.response_frame(f.cmd, Status.OK)

    def read(self, n=1):
        data, self.out[:] = bytes(self.out[:n]), self.out[n:]
        return data


def test_host_board_with_retries_and_chunking():
    from sw.host import Board
    ser = FakeSerial(busy_first=1)
    board = Board(ser, timeout=0.5)
    sig = board.ping()                               # first answer BUSY: retried
    assert sig.max_payload == 8
    res = board.step([0, 1, 2, 3, 4, 0], logits=False)   # 2 frames (4 tokens max each)
    assert [t for t, _ in res] == [1, 2, 3, 4, 0, 1]
    res = board.step([2], logits=True)
    assert res[0][0] == 3 and res[0][1][3] == 100
    assert board.write_weights([(0, 0, a, a) for a in range(3)]) == 3
    assert ser.writes == [(0, 0, a, a) for a in range(3)]


def test_host_tokenize_round_trip():
    from sw.tokens import detokenize, tokenize
    vocab = ["<unk>", "<eos>", "the", "cat"]
    ids = tokenize("the cat\nthe dog\n", vocab, "word")
    assert ids == [2, 3, 1, 2, 0, 1]
    assert detokenize([2, 3, 1], vocab, "word") == "the cat \n"
    assert tokenize("ab", ["<unk>", "a", "b"], "char") == [1, 2]
