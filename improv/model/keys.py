"""The key in force at each position of a token stream, as an extra model input.

Chord tokens name roots relative to the key, pitches are absolute, and the key is
stated once, in the stream's header. A window of a long stream (a training window, a
transformer's attention span, a session hours long) has long lost that header, so the
models do not have to remember it: both add an embedding of the key in force to every
token's. The key in force is a plain function of the tokens seen (the last ``KEY``
token; ``n_keys`` meaning none yet), tracked the same way in the full pass and in the
streaming step.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def key_track(
    idx: torch.Tensor, key_start: int, n_keys: int, key0: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, T) key index in force at each position of ``idx`` (B, T), the token included.

    ``key0`` (B,) is the key in force before the first position (default: none yet).
    """
    batch, t = idx.shape
    is_key = (idx >= key_start) & (idx < key_start + n_keys)
    pos = torch.arange(t, device=idx.device).expand(batch, t)
    last = torch.where(is_key, pos, torch.full_like(pos, -1)).cummax(dim=1).values  # (B, T)
    values = idx.gather(1, last.clamp(min=0)) - key_start
    if key0 is None:
        key0 = torch.full((batch,), n_keys, dtype=torch.long, device=idx.device)
    return torch.where(last >= 0, values, key0[:, None].expand(batch, t))


def key_of(token: int, key_start: int, n_keys: int, current: int) -> int:
    """The key in force after ``token`` (the streaming step's counterpart)."""
    return token - key_start if key_start <= token < key_start + n_keys else current


UNPLAYABLE = -1e4
"""Logit bias of pitches a key frame cannot reach (below the key's tonic in octave -1)."""


class PitchFrame:
    """Pitches read and predicted relative to the key in force: a transposition-free view.

    Chord tokens name roots relative to the key, pitch tokens are absolute. Inside the
    model, a ``PITCH_p`` heard in key ``k`` is read as ``PITCH_(p - k)``, and the logit of
    ``PITCH_p`` is the model's logit of ``PITCH_(p - k)``: the network sees every solo as
    if in C (the key embedding still tells it the register), so what it learns about a
    chord and the notes over it holds in every key. Other tokens map to themselves, as do
    all tokens while no key is known. Tables are indexed ``[key, token]``.
    """

    def __init__(self, vocab_size: int, pitch_start: int, n_pitches: int, n_keys: int) -> None:
        keys = np.arange(n_keys + 1)[:, None]  # (K + 1, 1); row n_keys: no key yet
        shift = np.where(keys < n_keys, keys, 0)
        tokens = np.arange(vocab_size + 1)[None, :]  # input side includes BOS
        pitch = tokens - pitch_start
        is_pitch = (pitch >= 0) & (pitch < n_pitches)
        self.read = np.where(is_pitch, pitch_start + np.maximum(pitch - shift, 0), tokens)
        out = tokens[:, :vocab_size]
        out_pitch = pitch[:, :vocab_size]
        out_is_pitch = is_pitch[:, :vocab_size]
        below = out_is_pitch & (out_pitch < shift)
        self.write = np.where(
            out_is_pitch, pitch_start + np.maximum(out_pitch - shift, 0), out
        )  # (K + 1, V): logit of token v comes from frame logit write[k, v]
        self.bias = np.where(below, UNPLAYABLE, 0.0).astype(np.float32)  # (K + 1, V)
        self.read_t = torch.from_numpy(self.read.astype(np.int64))
        self.write_t = torch.from_numpy(self.write.astype(np.int64))
        self.bias_t = torch.from_numpy(self.bias)

    def read_tokens(self, idx: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Frame tokens (B, T) of tokens ``idx`` under ``keys`` (B, T)."""
        return self.read_t.to(idx.device)[keys, idx]

    def write_logits(self, logits: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Logits over the vocabulary (B, T, V) from frame logits (B, T, V)."""
        index = self.write_t.to(logits.device)[keys]  # (B, T, V)
        return logits.gather(-1, index) + self.bias_t.to(logits.device)[keys]


HARMONY_GAIN = 10.0
"""The harmony table is this times its parameter: Adam moves a parameter by about the
learning rate a step, and a useful bias is a few units, so the table learns 10x faster."""

BEAT_CLASSES = 5
"""Where a note starts: half-bar beat (1, 3), other beat, eighth off-beat, finer, unknown."""


def beat_classes(n_pos: int) -> np.ndarray:
    """Beat class of each position state: 0 a bar line just crossed (no POS yet: unknown),
    ``t + 1`` the position ``POS_t``, ``n_pos`` none yet (unknown)."""
    out = np.full(n_pos + 1, BEAT_CLASSES - 1, dtype=np.int64)
    ticks = np.arange(n_pos - 1)  # POS_0 .. POS_(n_pos - 2)
    cls = np.where(ticks % 24 == 0, 0, np.where(ticks % 12 == 0, 1, np.where(ticks % 6 == 0, 2, 3)))
    out[1:n_pos] = cls
    return out


class HarmonyBias(nn.Module):
    """A learned bias of each pitch class by chord in force and beat class.

    Chords and (framed) pitches are both relative to the key, so one table of
    ``(chords + 1) x beat classes x 12`` says which notes sit well on which chord, and
    more so on strong beats. A network learns melodic continuation long before it
    learns harmony from the chord tokens; this direct path lets harmony be learned in
    minutes of training. Added to the frame's logits before they are written out.
    """

    def __init__(
        self, n_chords: int, n_pos: int, pitch_start: int, n_pitches: int, vocab_size: int
    ) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(n_chords + 1, BEAT_CLASSES, 12))
        self.beat_class = torch.from_numpy(beat_classes(n_pos))
        pc = torch.full((vocab_size,), 12, dtype=torch.long)  # 12: not a pitch (zero bias)
        pc[pitch_start : pitch_start + n_pitches] = torch.arange(n_pitches) % 12
        self.pitch_class = pc

    def forward(
        self, logits: torch.Tensor, chords: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        """Frame logits (B, T, V) plus the bias of the chord and position states (B, T)."""
        classes = self.beat_class.to(positions.device)[positions]
        rows = HARMONY_GAIN * self.table[chords, classes]  # (B, T, 12)
        rows = torch.cat((rows, rows.new_zeros(*rows.shape[:-1], 1)), dim=-1)  # (B, T, 13)
        return logits + rows[..., self.pitch_class.to(logits.device)]

    def vectors(self) -> np.ndarray:
        """(chords + 1, beat classes, V) bias vectors for the numpy streaming steps
        (index the classes with :attr:`beat_class` of the position state)."""
        table = HARMONY_GAIN * self.table.detach().cpu().float().numpy()
        table = np.concatenate((table, np.zeros((*table.shape[:-1], 1), np.float32)), axis=-1)
        index = self.pitch_class.cpu().numpy()
        return np.ascontiguousarray(np.take(table, index, axis=-1))
