"""Model construction: architectures, named sizes, devices, streaming wrappers.

One place that knows every architecture, so training, checkpoints and benchmarks build
and wrap models the same way.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from improv.errors import ImprovError
from improv.model.api import StreamingLM
from improv.model.lstm import LSTMLM, LSTMConfig, LSTMStream
from improv.model.transformer import TransformerConfig, TransformerLM, TransformerStream

ARCHS = ("lstm", "transformer")

SIZES: dict[str, dict[str, dict[str, int]]] = {
    "lstm": {
        "xs": {"n_embd": 32, "n_hidden": 64, "n_layer": 1},
        "s": {"n_embd": 64, "n_hidden": 256, "n_layer": 2},
        "m": {"n_embd": 96, "n_hidden": 384, "n_layer": 2},
        "l": {"n_embd": 128, "n_hidden": 512, "n_layer": 2},
    },
    "transformer": {
        "xs": {"n_layer": 1, "n_head": 2, "n_embd": 32, "window": 64},
        "s": {"n_layer": 4, "n_head": 4, "n_embd": 128, "window": 256},
        "m": {"n_layer": 4, "n_head": 6, "n_embd": 192, "window": 256},
        "l": {"n_layer": 6, "n_head": 6, "n_embd": 192, "window": 384},
    },
}
"""Named sizes; ``s`` is the default, ``xs`` serves tests."""


def build_model(
    arch: str,
    size: str,
    vocab_size: int,
    dropout: float = 0.1,
    key_ids: tuple[int, int] | None = None,
    pitch_ids: tuple[int, int] | None = None,
    chord_ids: tuple[int, int] | None = None,
    pos_ids: tuple[int, int] | None = None,
) -> nn.Module:
    """A fresh model of a named architecture and size.

    ``key_ids`` (id of the first KEY token, number of keys) gives the model the key in
    force as an input (:mod:`improv.model.keys`); with ``pitch_ids`` (id of the first
    PITCH token, number of pitches) too, pitches are read relative to that key;
    ``chord_ids`` (id of the first CHORD token, number of chords) gives the chord in
    force as an input in the same way; ``pos_ids`` (id of BAR, 1 + number of positions)
    with all three adds the harmony bias (:class:`improv.model.keys.HarmonyBias`).
    """
    if arch not in SIZES:
        raise ImprovError(f"unknown architecture {arch!r} (choose from {', '.join(ARCHS)})")
    if size not in SIZES[arch]:
        choices = ", ".join(SIZES[arch])
        raise ImprovError(f"unknown size {size!r} for {arch} (choose from {choices})")
    kwargs: dict[str, Any] = dict(SIZES[arch][size])
    if key_ids is not None:
        kwargs.update(key_start=key_ids[0], n_keys=key_ids[1])
    if pitch_ids is not None and key_ids is not None:
        kwargs.update(pitch_start=pitch_ids[0], n_pitches=pitch_ids[1])
    if chord_ids is not None:
        kwargs.update(chord_start=chord_ids[0], n_chords=chord_ids[1])
    if pos_ids is not None:
        kwargs.update(pos_start=pos_ids[0], n_pos=pos_ids[1])
    if arch == "lstm":
        return LSTMLM(LSTMConfig(vocab_size=vocab_size, dropout=dropout, **kwargs))
    return TransformerLM(TransformerConfig(vocab_size=vocab_size, dropout=dropout, **kwargs))


def model_from_config(arch: str, config: dict[str, Any]) -> nn.Module:
    """A model of an architecture from its stored config (as in a checkpoint)."""
    if arch == "lstm":
        return LSTMLM(LSTMConfig(**config))
    if arch == "transformer":
        return TransformerLM(TransformerConfig(**config))
    raise ImprovError(f"unknown architecture {arch!r}")


def stream_for(model: nn.Module, name: str) -> StreamingLM:
    """The streaming wrapper of a trained model (numpy steps on the CPU; the module
    itself stays where it is, for :meth:`score`)."""
    if isinstance(model, LSTMLM):
        return LSTMStream(model.eval(), name)
    if isinstance(model, TransformerLM):
        return TransformerStream(model.eval(), name)
    raise TypeError(f"not an improv model: {type(model).__name__}")


def arch_of(model: nn.Module) -> str:
    return "lstm" if isinstance(model, LSTMLM) else "transformer"


def resolve_device(device: str) -> torch.device:
    """``auto`` is CUDA when present, the CPU otherwise; ``cuda`` without one is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ImprovError("--device cuda: no CUDA device here (use auto or cpu)")
    if device not in ("cpu", "cuda"):
        raise ImprovError(f"unknown device {device!r} (auto, cpu or cuda)")
    return torch.device(device)
