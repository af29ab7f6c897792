"""Command engine: executes received frames on the accelerator and builds the responses.

Every response body (CMD | 0x80, LEN, status, payload) goes out through one shift register,
one byte per transmitter handshake; the command-specific states load it and say where to go
after it has drained. See docs/host_protocol.md for the commands.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import protocol
from ..core.fsm import one_hot
from ..core.ram import SyncRead, ram
from ..protocol import Cmd, Status
from .framing import TxByte
from .stub_core import (
    COUNTERS_LAYOUT,
    OP_RESET,
    OP_STEP_TOKEN,
    WRITE_LAYOUT,
    in_cmd_layout,
    out_word_layout,
)

__all__ = ["CommandEngine"]

# Where to go after the shift register has drained.
RET_IDLE, RET_STEP_WORD, RET_NEXT_TOKEN, RET_LOGIT, RET_PING, RET_COUNTERS = range(6)


class CommandEngine(wiring.Component):
    """Runs one frame at a time from the receiver's payload buffer.

    Parameters
    ----------
    signature : `hw.protocol.ModelSignature` of the model the core was built for
        (language models with a readout).
    max_payload : the receiver's buffer size.

    Members
    -------
    Receiver side: ``done``, ``cmd``, ``length``, ``status``, ``stored`` (In), ``rd_addr``
    (Out), ``rd_data`` (In), ``accept`` (Out: idle, the next frame will be executed).
    ``tx`` : Out(stream.Signature(TxByte)), response bodies to the `TxFramer`.
    Core side: ``c_cmd``, ``c_out``, ``c_emit``, ``c_counters``, ``c_write`` (the
    accelerator's ``i_stream``, ``o_stream``, ``emit_logits``, ``counters``, ``w_stream``).
    """

    def __init__(self, signature: protocol.ModelSignature, *,
                 max_payload: int = protocol.MAX_PAYLOAD):
        if signature.kind != 0 or not signature.readout or signature.vocab_size < 2:
            raise ValueError("the UART command engine serves language models with a readout "
                             f"(kind lm, readout true, vocab >= 2), got {signature!r}")
        self.model_signature = signature
        self.max_payload = max_payload
        self.vocab = signature.vocab_size
        self.logit_bytes = signature.logit_bytes
        self.ping_bytes = bytes([0]) + protocol.ping_payload(signature)
        # header + status + one option byte, or one logit: kept small (its enable fans out)
        self.sh_bytes = max(5, self.logit_bytes)
        super().__init__({
            "done": In(1), "cmd": In(8), "length": In(16), "status": In(3), "stored": In(1),
            "rd_addr": Out(range(max_payload)), "rd_data": In(8), "accept": Out(1),
            "tx": Out(stream.Signature(TxByte)),
            "c_cmd": Out(stream.Signature(in_cmd_layout(signature.state_bits))),
            "c_out": In(stream.Signature(out_word_layout(signature.acc_bits))),
            "c_emit": Out(1),
            "c_counters": In(COUNTERS_LAYOUT),
            "c_write": Out(stream.Signature(WRITE_LAYOUT)),
        })

    def elaborate(self, platform):
        m = Module()
        V, LB = self.vocab, self.logit_bytes

        # Response shift register, loaded only in state LOAD from ``stage`` (what the state
        # before it chose to send), so its enable is LOAD or a byte handed to the
        # transmitter: loaded straight from the ten states that send, its enable decoded
        # those states with their conditions (the core's output word, the command), 3-4
        # levels of LUTs spread between the engine and the transmitter (8.2-10.6 ns, the
        # latest path of two builds at round sixteen).
        sh = Signal(8 * self.sh_bytes)
        sh_n = Signal(range(self.sh_bytes + 1))
        sh_last = Signal()
        stage = Signal.like(sh)
        stage_n = Signal.like(sh_n)
        stage_last = Signal()
        ret = Signal(range(6))

        def send(data, n, last, then):
            """Send ``n`` bytes of ``data`` (then the state ``then`` names), via LOAD."""
            m.d.sync += [stage.eq(data), stage_n.eq(n), stage_last.eq(last), ret.eq(then)]
            m.next = "LOAD"

        def respond(cmd, length, status, extra=None, *, n=None, last=True, then=RET_IDLE):
            """Send a response header (+ status, + extra bytes)."""
            parts = [Const(cmd | protocol.RESPONSE_FLAG, 8) if isinstance(cmd, int)
                     else (cmd | protocol.RESPONSE_FLAG)[:8], Const(length, 16)
                     if isinstance(length, int) else length, status]
            if extra is not None:
                parts.append(extra)
            send(Cat(*parts), n or 4, last, then)

        # Current frame and the error slot (one pending error response).
        cmd = Signal(8)
        length = Signal(16)
        ptr = Signal(16)                      # next payload byte to read
        at_end = Signal()                     # registered ptr == length (timing)
        m.d.comb += self.rd_addr.eq(ptr)
        # Gathered payload bytes, shifted in at the top: after n bytes, the first is at
        # byte 8 - n. Its enable is one flip-flop (`take`, set in the state before a byte
        # arrives): decoded from the FSM state and the byte index, and cleared in four
        # states, the enable of these 64 flip-flops was the tiny build's latest path on one
        # seed (9.1 ns, 7.5 of it routing).
        gbuf = Signal(64)
        take = Signal()
        gi = Signal(range(9))
        gn = Signal(range(9))
        pend = Signal()
        pend_cmd = Signal(8)
        pend_status = Signal(3)

        emit = Signal()                       # SET_OPTIONS: logits in STEP responses
        m.d.comb += self.c_emit.eq(1)         # the core always sends logits: READ_LOGITS
        token = Signal(16)
        bad_token = Signal()
        k = Signal(range(max(V, len(self.ping_bytes), protocol.COUNTER_BYTES) + 1))
        k_end = Signal()
        nbyte = Signal(8)                     # the next PING or counter byte ...
        nlast = Signal()                      # ... and whether it is the last
        top1 = Signal(16)
        snap = Signal(8 * protocol.COUNTER_BYTES)     # counters, frozen for READ_COUNTERS
        # snap follows the counters except while a READ_COUNTERS response is out, from the
        # edge that dispatches it (which loads the value sent) to its last byte. Its enable
        # is then one flip-flop: decoded from the FSM state and the command, the enable of
        # these 768 flip-flops was the tiny model's latest path on one seed of three (6 logic
        # levels, 9.6 ns; `python -m bench.bench_fmax`).
        snap_hold = Signal()
        with m.If(~snap_hold):
            m.d.sync += snap.eq(self.c_counters.as_value())

        # (a logit is read only after the step that wrote it: `hw.core.ram`)
        m.submodules.logits = lmem = ram(shape=8 * LB, depth=V)
        lw = lmem.write_port()
        lr = SyncRead(m, lmem, name="logit_rd")
        lq = Signal(8 * LB, reset_less=True)    # (no reset: `hw.build.outreg` takes it)
        wide = Signal(signed(8 * LB))         # the logit sign-extended to whole bytes
        # The write is registered (enable, address, word), a cycle after the word is
        # taken: decoded from STEP_WORD, the core's valid and the word's kind straight into
        # the block RAM's write enables (its byte enables, ADA0-3), it was 8.1 ns (round
        # seventeen's build K at seed 3).
        lw_en = Signal()
        lw_addr = Signal.like(k)
        lw_data = Signal(8 * LB, reset_less=True)
        m.d.sync += [lw_en.eq(0), lw_addr.eq(k), lw_data.eq(wide.as_unsigned())]   # (below)
        m.d.comb += [wide.eq(self.c_out.payload.data), lw.en.eq(lw_en), lw.addr.eq(lw_addr),
                     lw.data.eq(lw_data), lr.addr.eq(k)]

        # The core's output words are taken in STEP_WORD only; ``crdy`` is that state as a
        # flip-flop of its own (set on the edge that enters it, cleared on the one that
        # leaves it). Decoded from the FSM state, the ready went through the core's output
        # skid buffer into the enable of its 66 flip-flops: 30 of the tiny build's 64 late
        # endpoints on one seed (8.7 ns).
        crdy = Signal()
        m.d.comb += self.c_out.ready.eq(crdy)

        idle = Signal()
        m.d.comb += self.accept.eq(idle & ~pend)
        ok_len = Signal()
        # the length's classes, registered with it: the compares and the command decode
        # in one cycle were the tiny build's latest path on one seed (12 levels, 8.3 ns)
        lcls = Signal(_LengthClasses)
        known = Signal()
        rsp_len = Signal(16)                  # the header of DISPATCH's own responses
        rsp_ret = Signal.like(ret)

        frame_ok = self.done & (self.status == Status.OK) & self.stored

        step_len = Signal(16)
        m.d.comb += step_len.eq(Mux(emit, 3 + V * LB, 3))

        # The command and write streams to the core are registers (valid and payload): the
        # core takes them through skid buffers (`hw.top.top`), so no path crosses from the
        # engine's state into the core's logic or back.
        cvalid = Signal()
        cop = Signal.like(self.c_cmd.payload.op)
        wvalid = Signal()
        m.d.comb += [self.c_cmd.valid.eq(cvalid), self.c_cmd.payload.op.eq(cop),
                     self.c_cmd.payload.index.eq(token),
                     # (the core ignores the value of STEP_TOKEN and RESET)
                     self.c_cmd.payload.value.eq(gbuf[16:16 + self.model_signature.state_bits]),
                     self.c_write.valid.eq(wvalid),
                     self.c_write.payload.mem.eq(gbuf[0:8]),
                     self.c_write.payload.bank.eq(gbuf[8:16]),
                     self.c_write.payload.addr.eq(gbuf[16:32]),
                     self.c_write.payload.data.eq(gbuf[32:64])]

        m.d.sync += take.eq(0)                # set for one cycle by the gather's _W states
        with m.If(take):
            m.d.sync += gbuf.eq(Cat(gbuf[8:], self.rd_data))

        with m.FSM(name="engine") as fsm:
            with m.State("START"):
                # One cycle out of reset: Icarus evaluates `always @*` blocks only on a
                # change, so the FSM must leave its initial state once for `idle` to settle.
                m.next = "IDLE"
            with m.State("IDLE"):
                m.d.comb += idle.eq(1)
                with m.If(frame_ok):
                    m.d.sync += [cmd.eq(self.cmd), length.eq(self.length), ptr.eq(0),
                                 lcls.eq(_length_classes(self.length, self.max_payload))]
                    m.next = "CHECK"
                with m.Elif(pend):
                    m.next = "PEND"
            with m.State("PEND"):
                # The pending error's response, a state of its own: loaded in IDLE, the
                # frame's "done" and ``pend`` were decoded into the enable of the reply
                # shift register's 40 flip-flops (8.7 ns, round fourteen's build at seed 3).
                m.d.sync += pend.eq(0)
                respond(pend_cmd, 1, Cat(pend_status, Const(0, 5)))

            with m.State("CHECK"):
                # Registered checks: keeps the length comparisons off the dispatch path.
                # So is the header of the commands answered from DISPATCH (its length and
                # where to go after it).
                m.d.sync += [ok_len.eq(_length_ok(cmd, lcls)),
                             known.eq(_known(cmd)), rsp_len.eq(0), rsp_ret.eq(RET_IDLE)]
                for c, n_, r_ in ((Cmd.PING, len(self.ping_bytes), RET_PING),
                                  (Cmd.READ_LOGITS, 3 + V * LB, RET_LOGIT),
                                  (Cmd.READ_COUNTERS, 1 + protocol.COUNTER_BYTES,
                                   RET_COUNTERS)):
                    with m.If(cmd == c):
                        m.d.sync += [rsp_len.eq(n_), rsp_ret.eq(r_)]
                m.next = "DISPATCH"

            with m.State("DISPATCH"):
                # k (the index of the byte, logit or counter sent next) is cleared for every
                # command, so that its enable does not decode the command (a path of 6
                # levels, 8.9 ns, from `cmd` on the tiny build)
                m.d.sync += k.eq(0)
                # The header is staged whatever the command (an error, or PING, READ_LOGITS,
                # READ_COUNTERS; the others load ``stage`` again later): the stage's enable
                # is then this state, not the command's decode (8.9 ns, round seventeen's
                # build K at seed 3).
                err = ~known | ~ok_len
                status = Mux(~known, Status.UNKNOWN_CMD,
                             Mux(~ok_len, Status.BAD_LENGTH, Status.OK))
                m.d.sync += [stage.eq(Cat((cmd | protocol.RESPONSE_FLAG)[:8],
                                          Mux(err, 1, rsp_len), Const(0, 8) | status)),
                             stage_n.eq(4), stage_last.eq(err),
                             ret.eq(Mux(err, RET_IDLE, rsp_ret))]
                with m.If(err):
                    m.next = "LOAD"
                with m.Else(), m.Switch(cmd):
                    with m.Case(Cmd.PING, Cmd.READ_LOGITS):
                        m.next = "LOAD"
                    with m.Case(Cmd.RESET):
                        m.d.sync += [cvalid.eq(1), cop.eq(OP_RESET)]
                        m.next = "RESET"
                    with m.Case(Cmd.STEP):
                        m.d.sync += [gi.eq(0), gn.eq(2)]
                        m.next = "TOKEN"
                    with m.Case(Cmd.READ_COUNTERS):
                        m.d.sync += snap_hold.eq(1)
                        m.next = "LOAD"
                    with m.Case(Cmd.WRITE_WEIGHTS):
                        m.d.sync += [gi.eq(0), gn.eq(8)]
                        m.next = "RECORD"
                    with m.Case(Cmd.SET_OPTIONS):
                        m.d.sync += [gi.eq(0), gn.eq(1)]
                        m.next = "OPTIONS"

            # -- gather gn payload bytes into gbuf (3 cycles a byte), then continue --------
            for name, after in (("TOKEN", "ISSUE"), ("RECORD", "WRITE"),
                                ("OPTIONS", "SET")):
                with m.State(name):
                    m.next = name + "_W"       # rd_addr = ptr now, data two cycles later
                with m.State(name + "_W"):
                    m.d.sync += take.eq(1)
                    m.next = name + "_B"
                with m.State(name + "_B"):
                    m.d.sync += [gi.eq(gi + 1), ptr.eq(ptr + 1),
                                 at_end.eq(ptr + 1 == length)]
                    with m.If(gi + 1 == gn):
                        if after == "WRITE":
                            m.d.sync += wvalid.eq(1)
                        m.next = after
                    with m.Else():
                        m.next = name

            # PING payload (after status) and counter bytes go out one by one by index k,
            # from registers loaded every cycle (`nbyte`, `nlast`, below the FSM): three
            # wait states after each byte let them follow k.
            for name, last_k in (("PING", len(self.ping_bytes) - 2),
                                 ("COUNTERS", protocol.COUNTER_BYTES - 1)):
                with m.State(name):
                    m.d.comb += [self.tx.valid.eq(1), self.tx.payload.data.eq(nbyte),
                                 self.tx.payload.last.eq(nlast)]
                    with m.If(self.tx.ready):
                        m.d.sync += k.eq(k + 1)
                        with m.If(nlast):
                            if name == "COUNTERS":
                                m.d.sync += snap_hold.eq(0)
                            m.next = "IDLE"
                        with m.Else():
                            m.next = name + "_W"
                with m.State(name + "_W"):
                    m.next = name + "_W2"
                with m.State(name + "_W2"):
                    m.next = name + "_W3"
                with m.State(name + "_W3"):
                    m.next = name

            # The core's readies (``c_cmd.ready``, ``c_write.ready``) end at the handshake:
            # the response is loaded in the state after it. Loaded in the same cycle, a
            # ready from the skid buffers in the top level reached the enable of the
            # reply shift register through its whole decode (11.2 ns, round fifteen's
            # build at seed 1).
            with m.State("RESET"), m.If(self.c_cmd.ready):
                m.d.sync += cvalid.eq(0)
                m.next = "RESET_R"
            with m.State("RESET_R"):
                respond(Cmd.RESET, 1, Const(Status.OK, 8))

            with m.State("SET"):
                m.d.sync += emit.eq(gbuf[56])
                respond(Cmd.SET_OPTIONS, 2, Const(Status.OK, 8),
                        Cat(gbuf[56], Const(0, 7)), n=5)

            with m.State("WRITE"), m.If(self.c_write.ready):
                m.d.sync += wvalid.eq(0)
                m.next = "WRITE_R"
            with m.State("WRITE_R"):
                respond(Cmd.WRITE_WEIGHTS, 1, Const(Status.OK, 8))    # (staged either way)
                with m.If(~at_end):
                    m.d.sync += gi.eq(0)
                    m.next = "RECORD"

            with m.State("ISSUE"):
                # The range check is registered: the compare's carry chain decoded straight
                # into the response register's enable was the tiny build's latest path on
                # one seed (8.9 ns; `python -m bench.bench_fmax`). The command's valid is
                # set a cycle later from that register: set from the compare itself, it was
                # the shipped model's latest path (10.9 ns, 81% routing, round eleven).
                in_range = gbuf[48:] < self.model_signature.input_size
                m.d.sync += [token.eq(gbuf[48:]), k.eq(0), bad_token.eq(~in_range),
                             cop.eq(OP_STEP_TOKEN)]
                m.next = "ISSUE_V"
            with m.State("ISSUE_V"):
                # a bad token's response in a state of its own: ``bad_token`` decoded into
                # the reply shift register's enable was 9.9 ns (round fifteen, seed 2)
                with m.If(bad_token):
                    m.next = "BAD_TOKEN"
                with m.Else():
                    m.d.sync += cvalid.eq(1)
                    m.next = "ISSUE_B"
            with m.State("BAD_TOKEN"):
                respond(Cmd.STEP, 1, Const(Status.BAD_ARG, 8))
            with m.State("ISSUE_B"), m.If(self.c_cmd.ready):
                m.d.sync += cvalid.eq(0)
                m.next = "ISSUE_R"
            with m.State("ISSUE_R"):
                respond(Cmd.STEP, step_len, Const(Status.OK, 8), last=False,
                        then=RET_STEP_WORD)

            with m.State("STEP_WORD"):
                word = self.c_out.payload
                top = word.kind != 0
                # ``stage`` and its fields follow the word in every cycle of this state
                # (an empty word is not sent): their enable is then the state alone,
                # without the core's valid and kind.
                m.d.sync += [stage.eq(Mux(top, word.data[:16], wide.as_unsigned())),
                             stage_n.eq(Mux(top, 2, LB)), stage_last.eq(top),
                             ret.eq(Mux(top, RET_NEXT_TOKEN, RET_STEP_WORD))]
                with m.If(self.c_out.valid):
                    # leaving STEP_WORD: no word is taken before it is back (`crdy`)
                    with m.If(top | emit):
                        m.d.sync += crdy.eq(0)
                        m.next = "LOAD"
                    with m.If(~top):
                        m.d.sync += lw_en.eq(k < V)
                        m.d.sync += k.eq(k + 1)
                    with m.Else():
                        m.d.sync += top1.eq(word.data[:16])

            with m.State("LOGIT"):
                m.next = "LOGIT_W"             # lr.addr = k now, data next cycle
            with m.State("LOGIT_W"):
                m.d.sync += [lq.eq(lr.data),   # registered: keeps the BRAM output path short
                             k_end.eq(k == V)]  # ... and the compare off the shift register
                m.next = "LOGIT_B"
            with m.State("LOGIT_B"):
                with m.If(k_end):
                    send(top1, 2, 1, RET_IDLE)
                with m.Else():
                    m.d.sync += k.eq(k + 1)
                    send(lq, LB, 0, RET_LOGIT)

            with m.State("LOAD"):
                m.d.sync += [sh.eq(stage), sh_n.eq(stage_n), sh_last.eq(stage_last)]
                m.next = "SHIFT"

            with m.State("SHIFT"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.data.eq(sh[:8]),
                             self.tx.payload.last.eq(sh_last & (sh_n == 1))]
                with m.If(self.tx.ready):
                    m.d.sync += [sh.eq(sh >> 8), sh_n.eq(sh_n - 1)]
                    with m.If(sh_n == 1), m.Switch(ret):
                        with m.Case(RET_IDLE):
                            m.next = "IDLE"
                        with m.Case(RET_STEP_WORD):
                            m.d.sync += crdy.eq(1)
                            m.next = "STEP_WORD"
                        with m.Case(RET_LOGIT):
                            m.next = "LOGIT"
                        with m.Case(RET_PING):
                            m.next = "PING"
                        with m.Case(RET_COUNTERS):
                            m.next = "COUNTERS"
                        with m.Case(RET_NEXT_TOKEN):
                            with m.If(at_end):
                                m.next = "IDLE"
                            with m.Else():
                                m.d.sync += gi.eq(0)
                                m.next = "TOKEN"

        one_hot(fsm)                          # (its state exists once the block is closed)

        # The next PING or counter byte, from k in three register stages loaded every cycle
        # (no enable): the counter snapshot's 96-way byte multiplexer, indexed by k straight
        # into the transmitter's input register, was the tiny build's latest path on one
        # seed (8.7 ns, 80% routing), and still 9.4-9.6 ns into one register. The PING ROM's
        # byte is registered twice to keep step. (Switches in the sync domain: an `always
        # @*` that assigns constants runs in Icarus only when k changes, and k often does
        # not.)
        rom = self.ping_bytes[1:]
        groups = -(-protocol.COUNTER_BYTES // 8)
        quads = -(-groups // 4)
        snap_w = Cat(snap, Const(0, 64 * 4 * quads - len(snap)))
        # Stage one: in each quad of groups, the group that k[3:5] names (the 12-way group
        # multiplexer from the snapshot into one register was 18 late endpoints, 9.3 ns,
        # at round fourteen); stage two: the quad, by k's top bits; stage three: the byte.
        quad = [Signal(64, name=f"quad{j}") for j in range(quads)]
        grp = Signal(64)
        rom_q, rom_q2 = Signal(8), Signal(8)
        m.d.sync += [grp.eq(0), rom_q.eq(0), rom_q2.eq(rom_q)]
        for j in range(quads):
            m.d.sync += quad[j].eq(0)
            with m.Switch(k[3:5]):
                for i in range(4):
                    with m.Case(i):
                        g = 4 * j + i
                        m.d.sync += quad[j].eq(snap_w[64 * g:64 * g + 64])
        k1, k2 = Signal.like(k), Signal.like(k)
        with m.Switch(k1[5:]):
            for j in range(quads):
                with m.Case(j):
                    m.d.sync += grp.eq(quad[j])
        with m.Switch(k):
            for i, b in enumerate(rom):
                with m.Case(i):
                    m.d.sync += rom_q.eq(b)
        in_counters = ret == RET_COUNTERS
        m.d.sync += [k1.eq(k), k2.eq(k1),
                     nbyte.eq(Mux(in_counters, grp.word_select(k2[:3], 8), rom_q2)),
                     nlast.eq(Mux(in_counters, k2 == protocol.COUNTER_BYTES - 1,
                                  k2 == len(rom) - 1))]

        # A frame that cannot run now (bad CRC or length, or the engine was busy) gets an
        # error response when the engine is next idle. After the FSM: it wins over the
        # clearing of `pend` when a new error arrives in the cycle the old one is taken.
        with m.If(self.done & ~(frame_ok & idle)):
            m.d.sync += [pend.eq(1), pend_cmd.eq(self.cmd),
                         pend_status.eq(_mux_status(self.status))]
        return m


def _mux_status(status):
    """Receiver status -> response status: a good frame that was not stored means BUSY."""
    return (status == Status.OK).replicate(3) & Const(Status.BUSY, 3) | status


def _known(cmd):
    return (cmd >= min(Cmd)) & (cmd <= max(Cmd))


_LengthClasses = data.StructLayout({
    "zero": 1, "one": 1, "steps": 1, "records": 1})


def _length_classes(length, max_payload):
    """What `_length_ok` needs of a payload length: empty, one byte, whole tokens (2-byte
    words) and whole weight records, within ``max_payload``."""
    fits = length <= max_payload
    rec = protocol.WRITE_RECORD_BYTES
    assert rec & (rec - 1) == 0, "a record's size is a power of two"
    return Cat(length == 0, length == 1, (length >= 2) & fits & ~length[0],
               (length >= rec) & fits & (length[:rec.bit_length() - 1] == 0))


def _length_ok(cmd, cls):
    ok = Const(0, 1)
    for c in Cmd:
        if c in (Cmd.PING, Cmd.RESET, Cmd.READ_LOGITS, Cmd.READ_COUNTERS):
            cond = cls.zero
        elif c == Cmd.SET_OPTIONS:
            cond = cls.one
        elif c == Cmd.STEP:
            cond = cls.steps
        else:
            cond = cls.records
        ok = ok | ((cmd == c) & cond)
    return ok
