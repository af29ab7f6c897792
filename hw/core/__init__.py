"""The event-driven EGRU accelerator core (docs/accelerator.md).

`Accelerator` is the top; `memory_map` and `weight_writes` describe and produce the run-time
weight writes for its ``w_stream`` port.
"""

from .accelerator import COUNTERS_SETTLE, Accelerator, Op, in_cmd_layout
from .banks import wwrite_layout
from .counters import counters_layout, part_counters_layout
from .layer import trace_layout
from .params import core_params, memory_map, weight_writes
from .readout import out_word_layout

__all__ = [
           "COUNTERS_SETTLE",
           "Accelerator",
           "Op",
           "core_params",
           "counters_layout",
           "in_cmd_layout",
           "memory_map",
           "out_word_layout",
           "part_counters_layout",
           "trace_layout",
           "weight_writes",
           "wwrite_layout",
]
