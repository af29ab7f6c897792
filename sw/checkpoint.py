"""Checkpoints: one safetensors file, tensors + a JSON document in the header metadata.

No pickle anywhere: tensors go through safetensors, everything else through JSON, so loading
an untrusted checkpoint cannot run code. A single file makes the write atomic (temp file +
os.replace) and lets a reader check it as a whole.

Tensors:      ``model.<state_dict key>`` (always); for resumable checkpoints also
              ``optim.<param index>.<key>`` (AdamW moments and step), ``train.state.<k>.<i>``
              (carried RNN state, (world, 1, B, H)), ``train.rng`` (torch RNG state per rank,
              (world, n) uint8).
Metadata key ``egru_checkpoint``: JSON with ``format``, ``version``, ``model_config``,
``train_config``, ``vocab`` ({"level", "tokens"}), ``progress`` (epoch, batch, step, elapsed,
...), ``optimizer`` (param_groups without tensors), ``metrics``, ``sha256`` (of all tensors).
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from sw.atomic import atomic_write_bytes

from .config import ModelConfig, TrainConfig, from_dict, to_dict
from .data import Vocab
from .models.lm import LanguageModel

FORMAT, VERSION = "egru-lm-checkpoint", 1
META_KEY = "egru_checkpoint"


class CheckpointError(ValueError):
    """An unreadable or inconsistent checkpoint; the message names the file."""


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous().reshape(-1)
        h.update(name.encode())
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def unwrap(model):
    return model.module if hasattr(model, "module") else model


def save_checkpoint(path, model, train_cfg: TrainConfig, vocab: Vocab, optimizer=None,
                    progress: dict | None = None, train_tensors: dict | None = None,
                    metrics: dict | None = None) -> None:
    """Write atomically. ``train_tensors`` (state, rng) make it resumable with ``optimizer``."""
    model = unwrap(model)
    tensors = {f"model.{k}": v.detach().cpu().contiguous()
               for k, v in model.state_dict().items()}
    doc = {"format": FORMAT, "version": VERSION, "model_config": to_dict(model.cfg),
           "train_config": to_dict(train_cfg), "vocab": vocab.to_json(),
           "progress": progress or {}, "metrics": metrics or {}}
    if optimizer is not None:
        sd = optimizer.state_dict()
        for idx, st in sd["state"].items():
            for key, val in st.items():
                tensors[f"optim.{idx}.{key}"] = torch.as_tensor(val).detach().cpu().clone()
        doc["optimizer"] = {"param_groups": sd["param_groups"]}
    for k, v in (train_tensors or {}).items():
        tensors[f"train.{k}"] = v.detach().cpu().contiguous()
    doc["sha256"] = _digest(tensors)
    blob = st_save(tensors, metadata={META_KEY: json.dumps(doc)})
    atomic_write_bytes(path, blob)


def load_checkpoint(path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read and verify a checkpoint: (tensors, document). Any problem -> CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    data = path.read_bytes()
    try:
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8: 8 + n])
        doc = json.loads(header["__metadata__"][META_KEY])
        tensors = st_load(data)
    except Exception as e:  # truncated, garbage, not ours: all the same to the user
        raise CheckpointError(f"checkpoint {path} is corrupted or not an EGRU checkpoint "
                              f"({type(e).__name__}: {e})") from e
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path}: unsupported format "
                              f"{doc.get('format')!r} version {doc.get('version')!r}")
    if _digest(tensors) != doc.get("sha256"):
        raise CheckpointError(f"checkpoint {path} is corrupted: tensor checksum mismatch")
    return tensors, doc


def model_from_checkpoint(tensors: dict, doc: dict, path="checkpoint") -> LanguageModel:
    try:
        cfg = from_dict(ModelConfig, doc["model_config"])
        model = LanguageModel(cfg)
        sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        model.load_state_dict(sd)
    except (KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {path}: cannot rebuild the model ({e})") from e
    return model


def load_model(path, device="cpu") -> tuple[LanguageModel, ModelConfig, Vocab]:
    """Rebuild a trained model from a checkpoint alone: (model in eval mode, config, vocab)."""
    tensors, doc = load_checkpoint(path)
    model = model_from_checkpoint(tensors, doc, path).to(device).eval()
    try:
        vocab = Vocab.from_json(doc["vocab"])
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: bad vocabulary ({e})") from e
    if len(vocab) != model.cfg.vocab_size:
        raise CheckpointError(f"checkpoint {path}: vocabulary has {len(vocab)} tokens, "
                              f"model {model.cfg.vocab_size}")
    return model, model.cfg, vocab


def restore_optimizer(optimizer, tensors: dict, doc: dict, path="checkpoint") -> None:
    if "optimizer" not in doc:
        raise CheckpointError(f"checkpoint {path} holds no optimizer state (not resumable)")
    state: dict[int, dict] = {}
    for name, t in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = t
    groups = doc["optimizer"]["param_groups"]
    for g in groups:  # JSON turned tuples into lists
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def train_config_of(doc: dict) -> TrainConfig:
    return from_dict(TrainConfig, doc["train_config"])
