"""One-hot state registers for Amaranth FSMs, in synthesis only.

Amaranth encodes an FSM's state in binary, and gives the register an initial value. Yosys'
``fsm`` pass (part of ``synth_ecp5``) re-encodes only registers without one ("Register has
an initialization value"), so every FSM of the design kept its binary code: each state bit
then fans out to every decode of every state, and on the tiny build (`bench.bench_fmax`) the
command engine's state into its 40-bit response shift register was the latest path on one
seed (4 logic levels, 7.3 ns of routing). The ``fsm_encoding`` attribute asks Yosys to
recode the register all the same: one flip-flop per state, each feeding only what its state
does. Yosys warns that the initial value is then ignored; that is safe here because every
FSM of the board top starts in reset (held asynchronously until the PLL locks), which
loads the reset state's one-hot code. Simulation runs the Amaranth design as written.
"""

__all__ = ["one_hot"]


def one_hot(fsm):
    """Ask synthesis to encode ``fsm`` (the object ``with m.FSM() as fsm`` gives) one-hot,
    after its ``with`` block (Amaranth makes the state register when the block closes);
    returns it."""
    fsm.state.attrs["fsm_encoding"] = "one-hot"
    return fsm
