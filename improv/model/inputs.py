"""What both language models share around their core: the input and output ends.

In: the token's embedding plus embeddings of the key and the chord in force
(:mod:`improv.model.keys`), pitches read relative to the key. Out: the harmony bias
and the pitch frame written back to absolute pitches. The LSTM and the transformer
differ only in what lies between; attribute names (``wte``, ``wke``, ``wce``, ``frame``,
``harmony``) are those of the shipped checkpoints' weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from improv.model.keys import HarmonyBias, PitchFrame, key_of, key_track


@dataclass
class InputsConfig:
    """The vocabulary and where its conditioning tokens lie (both architectures)."""

    vocab_size: int
    key_start: int = 0  # id of KEY_0; the key in force is an input (see improv.model.keys)
    n_keys: int = 0  # 0: no key input (a vocabulary without KEY tokens)
    pitch_start: int = 0  # id of PITCH_0: pitches read relative to the key (keys.PitchFrame)
    chord_start: int = 0  # id of the first CHORD token; the chord in force is an input
    n_chords: int = 0  # 0: no chord input
    pos_start: int = 0  # id of BAR (POS_t follow it): the position in force, for the
    n_pos: int = 0  # harmony bias (keys.HarmonyBias; with the pitch frame and chords)
    n_pitches: int = 0  # 0: pitches read as they are


class Tracks(NamedTuple):
    """The stream as heard, and the key and chord in force at each position."""

    idx: torch.Tensor  # (B, T) the tokens as heard
    keys: torch.Tensor | None  # (B, T), None without a key input
    chords: torch.Tensor | None  # (B, T), None without a chord input


class ConditionedLM(nn.Module):
    """Base of :class:`~improv.model.lstm.LSTMLM` and
    :class:`~improv.model.transformer.TransformerLM`; ``config`` has the fields they share."""

    def __init__(self, config: Any) -> None:
        """``config``: an :class:`InputsConfig` with ``n_embd`` and ``dropout`` too."""
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size + 1, config.n_embd)  # +1: BOS
        # key in force, n_keys + 1 rows: the last one is "no key yet"
        self.wke = nn.Embedding(config.n_keys + 1, config.n_embd) if config.n_keys else None
        # chord in force, n_chords + 1 rows: the last one is "no chord yet"
        self.wce = nn.Embedding(config.n_chords + 1, config.n_embd) if config.n_chords else None
        self.frame = (
            PitchFrame(config.vocab_size, config.pitch_start, config.n_pitches, config.n_keys)
            if config.n_keys and config.n_pitches
            else None
        )
        self.harmony = (
            HarmonyBias(
                config.n_chords,
                config.n_pos,
                config.pitch_start,
                config.n_pitches,
                config.vocab_size,
            )
            if self.frame is not None and config.n_chords and config.n_pos
            else None
        )
        self.drop = nn.Dropout(config.dropout)

    @property
    def bos(self) -> int:
        return int(self.config.vocab_size)

    def embed(
        self, idx: torch.Tensor, key0: torch.Tensor | None, chord0: torch.Tensor | None
    ) -> tuple[torch.Tensor, Tracks]:
        """(B, T) ids -> (B, T, E) inputs (dropout applied), and what was tracked."""
        c = self.config
        keys = key_track(idx, c.key_start, c.n_keys, key0) if self.wke is not None else None
        read = (
            self.frame.read_tokens(idx, keys)
            if self.frame is not None and keys is not None
            else idx
        )
        x = self.wte(read)
        if self.wke is not None and keys is not None:
            x = x + self.wke(keys)
        chords = None
        if self.wce is not None:
            chords = key_track(idx, c.chord_start, c.n_chords, chord0)
            x = x + self.wce(chords)
        return self.drop(x), Tracks(idx, keys, chords)

    def read_out(
        self, logits: torch.Tensor, tracks: Tracks, pos0: torch.Tensor | None
    ) -> torch.Tensor:
        """The core's logits (B, T, V) -> next-token logits over the stream's own ids."""
        c = self.config
        if self.harmony is not None and tracks.chords is not None:
            positions = key_track(tracks.idx, c.pos_start, c.n_pos, pos0)
            logits = self.harmony(logits, tracks.chords, positions)
        if self.frame is not None and tracks.keys is not None:
            logits = self.frame.write_logits(logits, tracks.keys)
        return logits


def lm_loss(logits: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor | None:
    """Mean cross-entropy over the scored positions (targets -1 are not scored)."""
    if targets is None:
        return None
    flat = logits.reshape(-1, logits.size(-1))
    return F.cross_entropy(flat, targets.reshape(-1), ignore_index=-1)


class NumpyStream:
    """Base of the streaming steps (:class:`~improv.model.api.StreamingLM`): what the
    LSTM's and the transformer's share around their cores. A subclass sets up its
    arrays, then calls :meth:`reset`; it implements ``_core`` (one token through the
    core, the tracked state already advanced) and ``_core_logits`` (the last step's
    logits before the output end)."""

    def __init__(self, model: ConditionedLM, name: str) -> None:
        cfg = model.config
        self.model = model.eval()
        self.config = cfg
        self._name = name
        self.frame = model.frame
        self.harmony = model.harmony.vectors() if model.harmony is not None else None
        self.beat_class = (
            model.harmony.beat_class.numpy() if model.harmony is not None else np.zeros(1, int)
        )
        self._key = cfg.n_keys  # none yet
        self._chord = cfg.n_chords
        self._where = cfg.n_pos  # position state (BAR, POS_t or none), for the harmony bias
        self._log_probs: np.ndarray | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def vocab_size(self) -> int:
        return int(self.config.vocab_size)

    def reset(self) -> None:
        cfg = self.config
        self._key, self._chord, self._where = cfg.n_keys, cfg.n_chords, cfg.n_pos
        self._reset_core()
        self._step(self.model.bos)

    def advance(self, tokens: Sequence[int]) -> None:
        for token in tokens:
            if not 0 <= token < self.vocab_size:
                raise ValueError(f"token id out of range 0..{self.vocab_size - 1}: {token}")
            self._step(token)

    def _step(self, token: int) -> None:
        cfg = self.config
        self._key = key_of(token, cfg.key_start, cfg.n_keys, self._key)
        self._chord = key_of(token, cfg.chord_start, cfg.n_chords, self._chord)
        self._where = key_of(token, cfg.pos_start, cfg.n_pos, self._where)
        read = token if self.frame is None else int(self.frame.read[self._key, token])
        self._core(read)
        self._log_probs = None

    def next_log_probs(self) -> np.ndarray:
        if self._log_probs is None:
            logits = self._core_logits().astype(np.float64)
            if self.harmony is not None:
                logits += self.harmony[self._chord, self.beat_class[self._where]]
            if self.frame is not None:
                logits = logits[self.frame.write[self._key]] + self.frame.bias[self._key]
            m = logits.max()
            lp = logits - (m + np.log(np.exp(logits - m).sum()))
            self._log_probs = lp.astype(np.float32)
        return self._log_probs

    def score(self, tokens: Sequence[int]) -> np.ndarray:
        """Log-likelihood of each token from a fresh stream, in one full pass."""
        if len(tokens) == 0:
            return np.zeros(0)
        with torch.inference_mode():
            idx = torch.tensor([[self.model.bos, *tokens[:-1]]], dtype=torch.long)
            logits, _ = self.model(idx.to(next(self.model.parameters()).device))
            lp = F.log_softmax(logits[0].double().cpu(), dim=-1)
            target = torch.tensor(list(tokens), dtype=torch.long)
            result: np.ndarray = lp.gather(1, target[:, None])[:, 0].numpy()
            return result

    def _reset_core(self) -> None:
        raise NotImplementedError

    def _core(self, read: int) -> None:
        """One token (as the pitch frame reads it) through the core."""
        raise NotImplementedError

    def _core_logits(self) -> np.ndarray:
        raise NotImplementedError
