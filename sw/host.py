"""Host runtime: talk to the accelerator on a board over the UART (docs/host_protocol.md).

    python -m sw.host --port /dev/ttyUSB0 [--baud N] [--bundle DIR] COMMAND

Commands: ping, reset, counters, generate, perplexity FILE, load-bundle DIR. Frames are
made and parsed by hw.protocol, the code the gateware's testbench uses. Needs pyserial; no
torch. Token handling follows sw.data: word level splits on whitespace and ends every line
with ``<eos>``; char level keeps every character (newlines included); unknown tokens map
to ``<unk>``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

from hw import protocol
from hw.protocol import Cmd, FrameParser, ProtocolError, Status
from sw.tokens import detokenize, log_softmax, tokenize

__all__ = ["Board", "HostError", "main"]



class HostError(RuntimeError):
    """The board did not answer as the protocol says."""


class Board:
    """A connection to the board: one request at a time, with retries.

    Parameters
    ----------
    port : a serial port name, or any object with pyserial's ``read``/``write``/
        ``reset_input_buffer`` (tests pass a fake).
    baud : must match the build.
    timeout : seconds to wait for a response frame.
    retries : resends on BUSY, BAD_CRC or a lost response.
    """

    def __init__(self, port, baud: int = 1_000_000, *, timeout: float = 2.0,
                 retries: int = 3):
        if isinstance(port, str):
            import serial
            port = serial.Serial(port, baud, timeout=0.05)
        self.ser = port
        self.timeout = timeout
        self.retries = retries
        self.parser = FrameParser()
        self.pending = []
        self.signature: protocol.ModelSignature | None = None

    def close(self):
        if hasattr(self.ser, "close"):
            self.ser.close()

    # -- frames ---------------------------------------------------------------------------

    def _recv(self, timeout=None) -> protocol.Frame | None:
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.pending:
            if time.monotonic() > deadline:
                self.parser.timeout()
                return None
            data = self.ser.read(max(1, getattr(self.ser, "in_waiting", 0) or 1))
            self.pending += self.parser.feed(data)
        return self.pending.pop(0)

    def request(self, cmd: Cmd, payload: bytes = b"", *, responses: int = 1):
        """Send one frame, return its ``responses`` response frames (status OK).

        A BUSY, BAD_CRC or missing answer to the first response is retried (the request
        has not been executed then); errors after that are raised.
        """
        for attempt in range(self.retries + 1):
            if hasattr(self.ser, "reset_input_buffer"):
                self.ser.reset_input_buffer()
            self.pending.clear()
            self.ser.write(protocol.encode_frame(int(cmd), payload))
            first = self._recv()
            if first is None or (first.is_response and first.status in
                                 (Status.BUSY, Status.BAD_CRC)):
                if attempt < self.retries:
                    time.sleep(0.03)      # > the board's inter-byte timeout
                    continue
                raise HostError(f"{cmd.name}: no valid answer after {attempt + 1} tries "
                                f"({'timeout' if first is None else first.status.name})")
            frames = [first]
            while len(frames) < responses and frames[-1].status == Status.OK:
                frame = self._recv()
                if frame is None:
                    raise HostError(f"{cmd.name}: response {len(frames) + 1} of "
                                    f"{responses} timed out")
                frames.append(frame)
            for frame in frames:
                if frame.cmd != (int(cmd) | protocol.RESPONSE_FLAG):
                    raise HostError(f"{cmd.name}: unexpected frame 0x{frame.cmd:02x}")
                if frame.status != Status.OK:
                    raise HostError(f"{cmd.name} failed: {frame.status.name}")
            return frames
        raise HostError(f"{cmd.name}: no answer")

    # -- commands -------------------------------------------------------------------------

    def ping(self) -> protocol.ModelSignature:
        (frame,) = self.request(Cmd.PING)
        version, sig = protocol.decode_ping(frame)
        if version != protocol.PROTOCOL_VERSION:
            raise HostError(f"board speaks protocol {version}, this host "
                            f"{protocol.PROTOCOL_VERSION}")
        self.signature = sig
        self.parser.max_payload = 3 + sig.vocab_size * sig.logit_bytes + 64
        return sig

    def reset(self):
        self.request(Cmd.RESET)

    def set_options(self, *, emit_logits: bool):
        self.request(Cmd.SET_OPTIONS, protocol.encode_options(emit_logits))
        self._emit = emit_logits

    def step(self, tokens, *, logits: bool = False):
        """Run tokens; returns [(top1, logits or None)] (sets the emit option first)."""
        sig = self.signature or self.ping()
        if getattr(self, "_emit", None) != logits:
            self.set_options(emit_logits=logits)
        out = []
        per_frame = sig.max_payload // 2
        tokens = list(tokens)
        for i in range(0, len(tokens), per_frame):
            chunk = tokens[i:i + per_frame]
            frames = self.request(Cmd.STEP, protocol.encode_step(chunk),
                                  responses=len(chunk))
            out += [protocol.decode_step_response(f, sig.vocab_size, sig.logit_bytes)
                    for f in frames]
        return out

    def read_logits(self):
        sig = self.signature or self.ping()
        (frame,) = self.request(Cmd.READ_LOGITS)
        return protocol.decode_step_response(frame, sig.vocab_size, sig.logit_bytes,
                                             Cmd.READ_LOGITS)

    def counters(self) -> dict:
        (frame,) = self.request(Cmd.READ_COUNTERS)
        return protocol.decode_counters(frame)

    def write_weights(self, records):
        sig = self.signature or self.ping()
        per_frame = sig.max_payload // protocol.WRITE_RECORD_BYTES
        records = list(records)
        for i in range(0, len(records), per_frame):
            self.request(Cmd.WRITE_WEIGHTS,
                         protocol.encode_weight_writes(records[i:i + per_frame]))
        return len(records)


# -- text -------------------------------------------------------------------------------------

def load_vocab(bundle_dir) -> tuple[list[str], str]:
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / "vocab.json"
    if not path.exists():
        raise HostError(f"{path} not found: generation and perplexity need the bundle's "
                        f"vocab.json (pass --bundle DIR)")
    vocab = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(vocab, dict):
        vocab = vocab.get("tokens", vocab.get("itos"))
    level = "char"
    manifest = bundle_dir / "manifest.json"
    if manifest.exists():
        level = json.loads(manifest.read_text()).get("model", {}).get("tokens", "char")
    return list(vocab), level


# -- command line -----------------------------------------------------------------------------

def _acc_scale(bundle_dir) -> float:
    manifest = json.loads((Path(bundle_dir) / "manifest.json").read_text())
    fmt = manifest["format"]
    return float(2 ** (fmt["state_frac"] + fmt["weight_frac"]))


def _check_signature(board: Board, bundle_dir):
    from hw.bundle import load_bundle
    sig = board.ping()
    mine = protocol.ModelSignature.from_bundle(load_bundle(bundle_dir),
                                               max_payload=sig.max_payload)
    if mine != sig:
        raise HostError(f"the board was built for another model: board {sig}, "
                        f"bundle {bundle_dir}: {mine}")
    return sig


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sw.host", description=__doc__.splitlines()[0])
    ap.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    ap.add_argument("--baud", type=int, default=1_000_000)
    ap.add_argument("--bundle", default="models/default",
                    help="the bundle the board was built from (vocab.json, signature)")
    ap.add_argument("--timeout", type=float, default=2.0)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("ping", help="protocol version and model signature")
    sub.add_parser("reset", help="reset the model state")
    sub.add_parser("counters", help="performance counters")
    g = sub.add_parser("generate", help="generate text from a prompt")
    g.add_argument("--prompt", default="")
    g.add_argument("-n", "--tokens", type=int, default=100)
    g.add_argument("--temperature", type=float, default=0.0, help="0: greedy (top1)")
    g.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("perplexity", help="perplexity of a text file on the board")
    p.add_argument("file")
    p.add_argument("--max-tokens", type=int, default=0, help="0: the whole file")
    lb = sub.add_parser("load-bundle", help="write another bundle's weights (same "
                        "architecture and capacity) into the running accelerator")
    lb.add_argument("dir")
    args = ap.parse_args(argv)

    try:
        board = Board(args.port, args.baud, timeout=args.timeout)
    except OSError as exc:          # serial.SerialException is an OSError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        if args.cmd == "ping":
            sig = board.ping()
            print(json.dumps({"protocol": protocol.PROTOCOL_VERSION, **{
                k: getattr(sig, k) for k in ("kind", "input_size", "vocab_size", "readout",
                                             "banks", "weight_bits", "state_bits",
                                             "acc_bits", "max_payload", "hidden_sizes")},
                "digest": f"{sig.digest:08x}"}))
        elif args.cmd == "reset":
            board.reset()
            print("reset")
        elif args.cmd == "counters":
            print(json.dumps(board.counters()))
        elif args.cmd == "generate":
            _check_signature(board, args.bundle)
            vocab, level = load_vocab(args.bundle)
            board.reset()
            prompt = tokenize(args.prompt, vocab, level) if args.prompt else [0]
            if level == "word" and args.prompt and not args.prompt.endswith("\n"):
                prompt = prompt[:-1]                 # no <eos> after an unfinished line
            sample = args.temperature > 0
            scale = _acc_scale(args.bundle)
            rng = random.Random(args.seed)
            res = board.step(prompt, logits=sample)
            out = []
            top1, lg = res[-1]
            for _ in range(args.tokens):
                if sample:
                    lp = log_softmax(lg, scale * args.temperature)
                    nxt = rng.choices(range(len(lp)), weights=[math.exp(x) for x in lp])[0]
                else:
                    nxt = top1
                out.append(nxt)
                (top1, lg), = board.step([nxt], logits=sample)
            sys.stdout.write(args.prompt + detokenize(out, vocab, level) + "\n")
        elif args.cmd == "perplexity":
            _check_signature(board, args.bundle)
            vocab, level = load_vocab(args.bundle)
            ids = tokenize(Path(args.file).read_text(encoding="utf-8"), vocab, level)
            if args.max_tokens:
                ids = ids[:args.max_tokens + 1]
            if len(ids) < 2:
                raise HostError(f"{args.file}: fewer than 2 tokens")
            board.reset()
            scale = _acc_scale(args.bundle)
            t0 = time.monotonic()
            res = board.step(ids[:-1], logits=True)
            nll = -sum(log_softmax(lg, scale)[nxt] for (_, lg), nxt in zip(res, ids[1:]))
            n = len(ids) - 1
            print(json.dumps({"tokens": n, "perplexity": math.exp(nll / n),
                              "tokens_per_s": n / (time.monotonic() - t0)}))
        elif args.cmd == "load-bundle":
            from hw.bundle import load_bundle
            from hw.core import weight_writes
            sig = _check_signature(board, args.bundle)
            new = load_bundle(args.dir)
            theirs = protocol.ModelSignature.from_bundle(new, max_payload=sig.max_payload)
            if (theirs.hidden_sizes, theirs.vocab_size, theirs.banks, theirs.weight_bits,
                    theirs.state_bits, theirs.acc_bits) != (
                    sig.hidden_sizes, sig.vocab_size, sig.banks, sig.weight_bits,
                    sig.state_bits, sig.acc_bits):
                raise HostError(f"{args.dir} has another architecture than the board's")
            records = list(weight_writes(new, like=load_bundle(args.bundle)))
            n = board.write_weights(records)
            board.reset()
            print(f"wrote {n} words from {args.dir}")
    except (HostError, ProtocolError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        board.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
