"""The streaming interface every model speaks (LSTM, transformer, Markov, rules).

The real-time engine advances a model token by token as the performer plays, asks it
for the next-token distribution, drafts a response speculatively and rolls back. So a
model is a small state machine over integer token ids (``improv.tokens.VOCAB``):

- ``reset()`` puts it at the start of a stream (nothing seen yet; ``next_log_probs()``
  is then the distribution of a stream's first token).
- ``advance(tokens)`` feeds one or more tokens that happened.
- ``next_log_probs()`` gives float32 log-probabilities of the next token, shape
  ``(vocab_size,)``; every entry finite or ``-inf``, ``logsumexp`` of them 0. Calling it
  twice without an ``advance`` in between is cheap (cached).
- ``snapshot()`` / ``restore(state)`` save and return to a point of the stream in
  O(state) time, without copying anything that grows with the stream's length, so the
  engine can draft a response and roll back when the performer keeps playing.
  A snapshot stays valid after further ``advance`` calls and can be restored many times.

One instance is driven by one thread at a time (the engine's worker); there is no
locking inside. Models that learn during a session (the Markov model) also implement
:class:`OnlineLearner`; models that can score a whole sequence faster than step by step
(the neural ones, with one full forward pass) implement :class:`SequenceScorer`, and
:func:`sequence_log_likelihoods` uses it when present.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class StreamingLM(Protocol):
    """A next-token model over ``improv.tokens`` ids, advanced one token at a time."""

    @property
    def name(self) -> str:
        """Short human name, e.g. ``"lstm-s"``, ``"markov-o6"``."""
        ...

    @property
    def vocab_size(self) -> int:
        """Number of token ids; ``next_log_probs()`` has this length."""
        ...

    def reset(self) -> None:
        """Forget the stream: back to its start."""
        ...

    def advance(self, tokens: Sequence[int]) -> None:
        """Feed tokens that happened, oldest first (one or more; empty is a no-op)."""
        ...

    def next_log_probs(self) -> np.ndarray:
        """Log-probabilities of the next token: float32, shape ``(vocab_size,)``."""
        ...

    def snapshot(self) -> object:
        """An opaque, cheap copy of the current state, for :meth:`restore`."""
        ...

    def restore(self, state: object) -> None:
        """Return to a state taken by :meth:`snapshot` of this same instance."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-able facts for logs and model cards (kind, size, orders, ...)."""
        ...


@runtime_checkable
class OnlineLearner(Protocol):
    """A model that learns from new material during a session (milliseconds per call)."""

    def learn(self, tokens: Sequence[int]) -> None:
        """Add one token sequence (e.g. the performer's last call) to what the model knows."""
        ...


@runtime_checkable
class SequenceScorer(Protocol):
    """A model that scores a whole sequence at once, from the start of a stream."""

    def score(self, tokens: Sequence[int]) -> np.ndarray:
        """``out[i] = log p(tokens[i] | tokens[:i])`` (natural log), float64, shape (len,)."""
        ...


def sequence_log_likelihoods(model: StreamingLM, tokens: Sequence[int]) -> np.ndarray:
    """Natural-log likelihood of each token given those before it, from a fresh stream.

    Uses the model's :class:`SequenceScorer` fast path when it has one, otherwise steps
    the stream. Leaves the model reset.
    """
    if isinstance(model, SequenceScorer):
        return np.asarray(model.score(tokens), dtype=np.float64)
    model.reset()
    out = np.empty(len(tokens), dtype=np.float64)
    for i, token in enumerate(tokens):
        out[i] = float(model.next_log_probs()[token])
        model.advance((token,))
    model.reset()
    return out
