"""The end of an accumulation: every source and pipeline of a layer (or the readout) empty,
with its input final.

The condition is an AND over the layer's P MAC lanes, its P streamer banks, its event store
and the part below, spread over the die. Computed in one cycle and registered, it was the
default build's latest path (11 logic levels from the input FIFO's level through the
streamer's busy OR, 9.64 ns at round twelve, docs/build.md). So every term is registered
once, next to its source (`ColumnStreamer.busy_q`, `MacLane.busy_q`, and here the terms
of the layer's own inputs), and only the AND of those flip-flops is registered again.

Why a cycle-old snapshot is safe: every term is delayed by exactly one cycle, so the
flip-flops together show the whole layer as it was in one earlier cycle. A word handed from
one block to the next at a clock edge is held by the first before the edge and by the second
after it, so in any single cycle some term shows it; registering all terms alike keeps that.
And the condition is monotone once the input is final: nothing arrives after that, so
"everything was idle, input final" in cycle t - 2 means the same in cycle t. What a caller
must do is ignore ``drained`` for the first two cycles after it starts a pass: until then
the snapshot may be of the previous pass (the layer's and readout's ACC_GO states).
"""

from amaranth.hdl import Signal

__all__ = ["SNAPSHOT_LATENCY", "drained_flag"]

#: cycles from the start of a pass until ``drained`` describes that pass
SNAPSHOT_LATENCY = 2


def drained_flag(m, *, local_busy, source_busy_q, final):
    """Return the registered ``drained`` flag.

    local_busy : busy terms to register here (the block's own inputs).
    source_busy_q : busy terms already registered once at their sources.
    final : "the input source has started" (registered here with the local terms).
    """
    local_q, final_q = Signal(name="local_busy_q"), Signal(name="final_q")
    busy = local_busy[0]
    for t in local_busy[1:]:
        busy = busy | t
    m.d.sync += [local_q.eq(busy), final_q.eq(final)]
    idle = final_q & ~local_q
    for t in source_busy_q:
        idle = idle & ~t
    drained = Signal(name="drained")
    m.d.sync += drained.eq(idle)
    return drained
