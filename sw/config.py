"""Configuration dataclasses. Both are saved inside every checkpoint (as JSON), so a model can
be rebuilt from a checkpoint alone (``sw.checkpoint.load_model``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

RNN_TYPES = ("egru", "lstm", "gru")
LEVELS = ("word", "char")


@dataclass
class ModelConfig:
    """Language model: embedding -> stacked RNN layers -> decoder tied to the embedding.

    Layer k < L-1 has ``hidden_size`` units; the last layer has ``emb_size`` units so that the
    decoder can reuse the embedding matrix.
    """

    rnn: str = "egru"  # egru | lstm | gru
    vocab_size: int = 0  # filled from the corpus
    emb_size: int = 256
    hidden_size: int = 256
    num_layers: int = 2
    # EGRU only
    variant: str = "default"  # default (hardware form) | seed (seed paper)
    gamma: float = 3.6  # surrogate height; EvNN's LM recipe value
    s: float = 3.6  # surrogate width factor: support is |c^ - theta| < 1/s
    threshold_init: float = 0.3
    min_threshold: float = 0.01
    # regularisation (AWD-LSTM names in brackets)
    dropout_emb: float = 0.1  # whole-word dropout on the embedding matrix (dropoute)
    dropout_in: float = 0.3  # locked dropout on the embedding output (dropouti)
    dropout_hid: float = 0.2  # locked dropout between layers (dropouth)
    dropout_out: float = 0.3  # locked dropout before the decoder (dropout)
    weight_drop: float = 0.2  # DropConnect on recurrent weights R (wdrop)

    def __post_init__(self):
        if self.rnn not in RNN_TYPES:
            raise ValueError(f"rnn must be one of {RNN_TYPES}, not {self.rnn!r}")
        if self.variant not in ("default", "seed"):
            raise ValueError(f"variant must be 'default' or 'seed', not {self.variant!r}")
        for name in ("emb_size", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        for name in ("dropout_emb", "dropout_in", "dropout_hid", "dropout_out", "weight_drop"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), not {getattr(self, name)}")

    def layer_sizes(self) -> list[tuple[int, int]]:
        """(input_size, hidden_size) of every layer."""
        sizes = []
        for k in range(self.num_layers):
            inp = self.emb_size if k == 0 else self.hidden_size
            hid = self.emb_size if k == self.num_layers - 1 else self.hidden_size
            sizes.append((inp, hid))
        return sizes


@dataclass
class TrainConfig:
    """Data, optimisation and run control. ``None`` data means the offline default corpus."""

    data: str | None = None  # folder, or "ptb" / "wikitext-2" (downloaded)
    level: str = "word"  # word | char
    vocab_cap: int = 10000  # 0: no cap
    batch_size: int = 32
    eval_batch_size: int = 10
    bptt: int = 35
    epochs: int = 20
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0  # cosine decays to lr * min_lr_ratio
    # "steps": cosine over epochs x windows (bit-exact resume). "time": the cosine also
    # advances with elapsed / max_minutes (whichever is further), so a time-budgeted run
    # ends its schedule on time; resuming such a run is not bit-identical.
    schedule: str = "steps"
    clip: float = 0.25
    seed: int = 1
    save_every: int = 200  # steps between resumable checkpoints
    max_steps: int = 0  # stop after this many optimizer steps (0: no limit)
    max_minutes: float = 0.0  # stop after this much training time (0: no limit)
    out: str = "runs/default"
    extra: dict = field(default_factory=dict)  # free-form notes kept with the checkpoint

    def __post_init__(self):
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, not {self.level!r}")
        for name in ("batch_size", "eval_batch_size", "bptt", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        if self.schedule not in ("steps", "time"):
            raise ValueError(f"schedule must be 'steps' or 'time', not {self.schedule!r}")
        if self.schedule == "time" and not self.max_minutes:
            raise ValueError("schedule 'time' needs max_minutes > 0")
        if self.vocab_cap < 0:
            raise ValueError(f"vocab_cap must be >= 0, not {self.vocab_cap}")


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls, d: dict):
    """Rebuild a config; unknown keys are an error (a checkpoint from a different format)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {unknown}")
    return cls(**d)
