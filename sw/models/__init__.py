"""Recurrent models: the EGRU layer and the language model built on it (and on LSTM/GRU)."""

from .egru import EGRU, EGRUState, LayerTrace, heaviside_surrogate
from .lm import LanguageModel, build_model

__all__ = ["EGRU", "EGRUState", "LanguageModel", "LayerTrace", "build_model", "heaviside_surrogate"]
