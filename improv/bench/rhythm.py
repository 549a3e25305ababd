"""Grid-free timing: whether a grid explains an agent's onsets, and how an answer keeps
its own rhythm whatever grid (if any) it is on. Pure: plain times in, figures out.

An agent without a clock (one that plays back with sleeps, say) has no grid the
harness could fit: against the best-fitting 1/12-beat grid its onsets spread like
uniform noise, and onset error then measures the width of a grid step, nothing else.
:func:`spread_ratio` tells the two apart; two figures need no grid at all:

- *inter-onset error*: each interval between consecutive onsets of an answer minus
  the nearest whole number of grid steps at the harness's tempo: the rhythm the agent
  meant, where the intervals cluster on steps (the same ratio tells);
- *drift within an answer*: the answer's onsets against that intended rhythm anchored
  at its first note: the slope of a line through the deviations times the answer's
  length (negative: the answer slides early; sleeps that each overshoot slide it late).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

UNIFORM_LIMIT = 0.5
"""A grid explains errors whose median is at most half that of uniform noise..."""
ANSWER_LIMIT = 3.0
"""...and answers whose own offsets from it spread at most this times what the notes'
jitter predicts (see :func:`answer_spread_ratio`)."""
JITTER_FLOOR_MS = 0.1
"""The least spread expected of answer offsets (exact synthetic onsets have none)."""
MIN_VALUES = 8
"""Fewer errors than this tell nothing either way."""
MIN_ANSWERS = 3
"""Fewer answers (of two notes or more) than this tell nothing either way."""


def spread_ratio(errors_ms: Sequence[float], step_ms: float) -> float | None:
    """Median |error| (less the errors' circular mean) over that of uniform noise across
    a step (a quarter step).

    About 1 when the errors are what any onsets give against any grid (the fold limit
    of half a step bounds them), near 0 when the grid explains the onsets. A median, so
    a few notes off the grid (a lost message, an xrun) do not hide a grid that holds.
    None with fewer than :data:`MIN_VALUES` errors.
    """
    if len(errors_ms) < MIN_VALUES or step_ms <= 0:
        return None
    return float(np.median(np.abs(_centred(errors_ms, step_ms)))) / (step_ms / 4.0)


def _circular_mean(values: Sequence[float] | np.ndarray, step_ms: float) -> float:
    angles = np.asarray(values, dtype=np.float64) / step_ms * 2.0 * np.pi
    return float(np.arctan2(np.sin(angles).mean(), np.cos(angles).mean())) / (2 * np.pi) * step_ms


def _centred(values: Sequence[float] | np.ndarray, step_ms: float) -> np.ndarray:
    """``values`` less their circular mean, folded back into half a step either side: a
    constant delay (the transport's, against the harness's clock) is no spread."""
    shifted = np.asarray(values, dtype=np.float64) - _circular_mean(values, step_ms)
    return (shifted + step_ms / 2.0) % step_ms - step_ms / 2.0


def note_jitter_ms(ioi_errors_ms: Sequence[float]) -> float | None:
    """A note's own timing jitter, from the inter-onset errors (a robust spread: the
    median absolute deviation, scaled to a standard deviation, over root 2 since each
    interval has two onsets). No grid and no drift within an answer enters it."""
    if len(ioi_errors_ms) < MIN_VALUES:
        return None
    e = np.asarray(ioi_errors_ms, dtype=np.float64)
    return 1.4826 * float(np.median(np.abs(e - np.median(e)))) / 2**0.5


def answer_spread_ratio(
    errors_ms: Sequence[Sequence[float]], jitter_ms: float | None, step_ms: float
) -> float | None:
    """How far the answers' own offsets from the grid (each answer's circular mean
    error) move from one answer to the next, over what the notes' jitter
    (:func:`note_jitter_ms`) alone would move them: about 1 when every answer sits on
    the same grid, far above when each has a phase of its own.

    An agent without a clock that replays a rhythm puts each answer on a grid of its
    own: within an answer the onsets agree, so a grid fitted to a few answers can seem
    to explain them note by note; across answers the phases scatter. One error list per
    answer; None below :data:`MIN_ANSWERS` answers of two notes or more. From one
    answer to the next (the root mean square of the change, over root 2), so that a
    clock that slowly drifts against the harness's still counts as a grid.
    """
    answers = [np.asarray(e, dtype=np.float64) for e in errors_ms if len(e) >= 2]
    if len(answers) < MIN_ANSWERS or jitter_ms is None or step_ms <= 0:
        return None
    offsets = np.array([_circular_mean(a, step_ms) for a in answers])
    notes = float(np.mean([a.size for a in answers]))
    expected = max(jitter_ms / notes**0.5, JITTER_FLOOR_MS)
    steps = (np.diff(offsets) + step_ms / 2.0) % step_ms - step_ms / 2.0
    return float(np.sqrt(np.mean(steps**2) / 2.0)) / expected


def explains(ratio: float | None, limit: float = UNIFORM_LIMIT) -> bool | None:
    """Whether a :func:`spread_ratio` says the grid explains the errors (None: unknown)."""
    return None if ratio is None else bool(ratio <= limit)


def grid_explains(note_ratio: float | None, answer_ratio: float | None) -> bool | None:
    """Whether a grid explains an agent's onsets: note by note and answer by answer.
    None while either ratio is unknown (too few notes or answers)."""
    notes, answers = explains(note_ratio), explains(answer_ratio, ANSWER_LIMIT)
    if notes is None or answers is None:
        return None
    return notes and answers


@dataclass(frozen=True, slots=True)
class AnswerRhythm:
    """One answer's grid-free timing."""

    ioi_errors_ms: tuple[float, ...]  # signed, one per interval between onsets
    drift_ms: float | None  # None below three onsets


def answer_rhythm(onsets: Sequence[float], step_s: float) -> AnswerRhythm:
    """Inter-onset errors and drift of one answer's onsets (seconds), ``step_s`` a grid step."""
    t = np.sort(np.asarray(onsets, dtype=np.float64))
    if t.size < 2 or step_s <= 0:
        return AnswerRhythm((), None)
    intervals = np.diff(t)
    steps = np.round(intervals / step_s)
    errors = (intervals - steps * step_s) * 1000.0
    elapsed = t - t[0]
    intended = np.concatenate(([0.0], np.cumsum(steps))) * step_s
    drift = None
    if t.size >= 3 and elapsed[-1] > 0:
        slope = float(np.polyfit(elapsed, elapsed - intended, 1)[0])
        drift = slope * float(elapsed[-1]) * 1000.0
    return AnswerRhythm(tuple(float(e) for e in errors), drift)
