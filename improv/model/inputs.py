"""What both language models share around their core: the input and output ends.

In: the token's embedding plus embeddings of the key and the chord in force
(:mod:`improv.model.keys`), pitches read relative to the key. Out: the harmony bias
and the pitch frame written back to absolute pitches. The LSTM and the transformer
differ only in what lies between; attribute names (``wte``, ``wke``, ``wce``, ``frame``,
``harmony``) are those of the shipped checkpoints' weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


class Backend:
    """Where a batched stream's arrays live: numpy (``device`` None), or torch on a
    device. The few operations the batched cores need, under one name for both."""

    def __init__(self, device: str | None = None) -> None:
        self.device = torch.device(device) if device is not None else None
        ops: tuple[Callable[..., Any], ...] = (
            (np.tanh, np.exp, np.einsum, np.sqrt)
            if self.device is None
            else (torch.tanh, torch.exp, torch.einsum, torch.sqrt)
        )
        self.tanh, self.exp, self.einsum, self.sqrt = ops

    @property
    def name(self) -> str:
        return "numpy" if self.device is None else f"torch-{self.device.type}"

    def array(self, a: np.ndarray) -> Any:
        """A float32 array (weights, state) on the backend."""
        a = np.ascontiguousarray(a, dtype=np.float32)
        return a if self.device is None else torch.from_numpy(a).to(self.device)

    def index(self, a: np.ndarray) -> Any:
        a = np.asarray(a, dtype=np.int64)
        return a if self.device is None else torch.from_numpy(a).to(self.device)

    def host(self, a: Any) -> np.ndarray:
        return a if self.device is None else a.detach().cpu().numpy()

    def copy(self, a: Any) -> Any:
        return a.copy() if self.device is None else a.clone()

    def cat(self, xs: Sequence[Any], axis: int) -> Any:
        return (
            np.concatenate(xs, axis=axis) if self.device is None else torch.cat(list(xs), dim=axis)
        )

    def amax(self, x: Any, axis: int) -> Any:
        if self.device is None:
            return x.max(axis=axis, keepdims=True)
        return x.amax(dim=axis, keepdim=True)

    def sum(self, x: Any, axis: int) -> Any:
        if self.device is None:
            return x.sum(axis=axis, keepdims=True)
        return x.sum(dim=axis, keepdim=True)

    def mean(self, x: Any, axis: int) -> Any:
        if self.device is None:
            return x.mean(axis=axis, keepdims=True)
        return x.mean(dim=axis, keepdim=True)


class BatchStream:
    """B streams of one model advanced together, one token per row and step: the
    candidates of an answer drafted at once. Rows start from one single stream's
    snapshot (:meth:`fill`); :meth:`advance` feeds a token to the rows marked active
    and leaves the others as they are. Subclasses hold the core's state with a leading
    batch axis and implement ``_fill_core``, ``_core`` and ``_core_logits``.
    """

    def __init__(self, stream: NumpyStream, rows: int, backend: Backend) -> None:
        if rows < 1:
            raise ValueError(f"a batch needs at least one row: {rows}")
        cfg = stream.config
        self.rows = rows
        self.backend = backend
        self.config = cfg
        self.frame = stream.frame
        self.harmony = stream.harmony
        self.beat_class = stream.beat_class
        self._key = np.full(rows, cfg.n_keys, dtype=np.int64)
        self._chord = np.full(rows, cfg.n_chords, dtype=np.int64)
        self._where = np.full(rows, cfg.n_pos, dtype=np.int64)
        self._log_probs: np.ndarray | None = None

    @property
    def vocab_size(self) -> int:
        return int(self.config.vocab_size)

    def fill(self, state: object) -> None:
        """Every row at a point of the single stream (a ``snapshot()`` of it)."""
        key, chord, where = self._fill_core(state)
        self._key[:], self._chord[:], self._where[:] = key, chord, where
        self._log_probs = None

    def advance(self, tokens: np.ndarray, active: np.ndarray) -> None:
        """Feed ``tokens[r]`` to every row ``r`` where ``active[r]``; (B,) each."""
        cfg = self.config
        tokens = np.asarray(tokens, dtype=np.int64)
        active = np.asarray(active, dtype=bool)
        if tokens.shape != (self.rows,) or active.shape != (self.rows,):
            raise ValueError(f"tokens and active must have shape ({self.rows},)")
        if not active.any():
            return
        live = tokens[active]
        if live.min() < 0 or live.max() >= self.vocab_size:
            raise ValueError(f"token id out of range 0..{self.vocab_size - 1}")
        tokens = np.where(active, tokens, 0)
        for track, start, n in (
            (self._key, cfg.key_start, cfg.n_keys),
            (self._chord, cfg.chord_start, cfg.n_chords),
            (self._where, cfg.pos_start, cfg.n_pos),
        ):
            hit = active & (tokens >= start) & (tokens < start + n)
            track[hit] = tokens[hit] - start
        read = tokens if self.frame is None else self.frame.read[self._key, tokens]
        self._core(np.asarray(read, dtype=np.int64), active)
        self._log_probs = None

    def next_log_probs(self) -> np.ndarray:
        """(B, V) float32 log-probabilities of each row's next token."""
        if self._log_probs is None:
            logits = self.backend.host(self._core_logits()).astype(np.float64)
            if self.harmony is not None:
                logits += self.harmony[self._chord, self.beat_class[self._where]]
            if self.frame is not None:
                write = self.frame.write[self._key]
                logits = np.take_along_axis(logits, write, axis=1) + self.frame.bias[self._key]
            m = logits.max(axis=1, keepdims=True)
            lp = logits - (m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True)))
            self._log_probs = lp.astype(np.float32)
        return self._log_probs

    def snapshot_row(self, row: int) -> object:
        """Row ``row``'s state, for :meth:`restore_row` (of any row of this batch)."""
        tracked = (int(self._key[row]), int(self._chord[row]), int(self._where[row]))
        return tracked, self._core_row(row)

    def restore_row(self, row: int, state: object) -> None:
        assert isinstance(state, tuple)
        (key, chord, where), core = state
        self._key[row], self._chord[row], self._where[row] = key, chord, where
        self._restore_core_row(row, core)
        self._log_probs = None

    def _fill_core(self, state: object) -> tuple[int, int, int]:
        """Set every row's core from a single stream's snapshot; its (key, chord, where)."""
        raise NotImplementedError

    def _core(self, read: np.ndarray, active: np.ndarray) -> None:
        """Tokens (as the pitch frame reads them) through the core, active rows only."""
        raise NotImplementedError

    def _core_logits(self) -> Any:
        """(B, V) logits of the last step of each row, before the output end."""
        raise NotImplementedError

    def _core_row(self, row: int) -> object:
        raise NotImplementedError

    def _restore_core_row(self, row: int, core: object) -> None:
        raise NotImplementedError
