"""The critic: scores a candidate answer the way a musician listens (MUSICIANSHIP.md).

Each part is a number in [0, 1], higher is better; ``total`` is their weighted mean.
The parts and their weights:

- ``relation`` (0.30): developed, not copied. 0.6 for the longest run of the call's
  melodic intervals the answer reuses (exactly, or its contour within two semitones a
  step, as a tonal sequence onto another chord does, counted two notes shorter: heard
  as the same cell, less plainly), 0.4 for the
  longest reused cell (contour and rhythm together); a shared run of 2 notes is chance
  (0), of 5 or more a clear reference (1). A transposed copy of the call scores 0.1;
  an answer made almost wholly of the call's material (85 %) loses 40 %: take
  something, change something.
- ``shape`` (0.15): one line going somewhere. Mean of pitch variety (5 different
  pitches or more; none taking over 40 % of the notes), steps (1-2 semitones) between
  35 % and 90 % of the moves, leaps (a fourth or more) at most 35 %, one climax
  (the highest note neither the first notes nor repeated everywhere) and more than
  one inter-onset interval. Fewer than 3 notes score at most 0.2.
- ``ending`` (0.20): the answer lands. A chord tone (0.45, the root or 3rd 0.10 more),
  on or up to a sixteenth after a strong beat (0.15; another beat 0.09), a long last
  note (at least a beat and 1.5 times the median note: 0.15, the median: 0.075), done
  a quarter beat before the turn ends (0.10, by the end: 0.05), and closure when the
  call ended open (0.05: root, 3rd or 5th approached by step or from above).
- ``fit`` (0.15): in the harmony. Half the share of chord tones among the notes on
  strong beats: 0.3 to 0.5 scores 1, falling to 0 at none and at all of them. People
  play about half (0.52 over the WJazzD training pairs); a critic wanting them all
  picks arpeggios: scoring 1 from 0.5 up, choosing among 8 LSTM drafts raised the share
  from 0.54 to 0.74, and with 0.3 to 0.6 scoring 1 the chosen answers still had 0.06
  more than the players (the ending's chord tone on a strong beat adds to it).
  Half the notes in the chord's scale or the key's blue notes (0.9 or more: 1, 0.5 or
  fewer: 0).
- ``range`` (0.05): match, then depart. Notes outside the pitch range scale it down;
  then half the opening register (the first beat's mean pitch within 5 semitones of
  the call's last beat: 1, a bit over an octave away: 0), half the answer's range
  against the call's (0.5 to 1.6 times: 1).
- ``density`` (0.05): the first two beats as dense as the call's last two (within 1.5
  times: 1) and the whole answer as dense as the call within a factor of 2.
- ``breath`` (0.10): fills its turn and breathes. Zero when a note falls outside the
  window. In ``trade`` mode the span over the turn scores 1 from 0.6 to 0.95, less
  below, 0.5 for wall to wall; in ``phrase`` mode the span over the call's, 0.6 to 1.4.
  Answers over four beats need a rest of half a beat or more (0.3 of the part).

:func:`score` runs once per candidate inside the answer's deadline, so it must stay
well under a millisecond for a 30-note answer (``test_score_speed``); :func:`choose`
reads the call once for all of them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import median

import numpy as np

from improv.craft import measures
from improv.craft.situation import Situation
from improv.music.notes import Note

WEIGHTS: Mapping[str, float] = {
    "relation": 0.30,
    "shape": 0.15,
    "ending": 0.20,
    "fit": 0.15,
    "range": 0.05,
    "density": 0.05,
    "breath": 0.10,
}
"""Each part's weight in the total (they sum to 1)."""

COPY_RELATION = 0.1
"""The relation score of a transposed copy of the call."""


@dataclass(frozen=True)
class Scores:
    """A candidate's score: the weighted mean ``total`` and each part in [0, 1]."""

    total: float
    parts: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class _Call:
    """What the critic reads from the call once per situation."""

    notes: tuple[Note, ...]
    open_ending: bool
    last_beat_pitch: float  # mean pitch of the call's last beat
    range: float  # its pitch range, at least 5 semitones
    density: float  # notes per beat
    closing_density: float  # notes per beat over its last two beats
    intervals: list[int]
    interval_array: np.ndarray
    ioi_array: np.ndarray


def _read_call(situation: Situation) -> _Call:
    call = situation.call
    intervals = measures.intervals(call)
    arrays = np.asarray(intervals, dtype=np.int64), np.asarray(measures.iois(call), np.int64)
    if not call:
        return _Call(call, False, math.nan, 5.0, math.nan, math.nan, intervals, *arrays)
    last = call[-1].onset
    tail = [n.pitch for n in call if n.onset >= last - 1.0]
    closing = sum(n.onset > last - 2.0 for n in call) / 2.0
    return _Call(
        call,
        measures.is_open_ending(call, situation.chords),
        sum(tail) / len(tail),
        max(5.0, measures.pitch_range(call)),
        measures.notes_per_beat(call),
        closing,
        intervals,
        *arrays,
    )


def _clip(value: float) -> float:
    return 0.0 if value < 0.0 else 1.0 if value > 1.0 else value


def _band(value: float, low: float, high: float, fall: float) -> float:
    """1 inside [low, high], falling linearly to 0 at ``fall`` beyond either edge."""
    if value < low:
        return _clip(1.0 - (low - value) / fall)
    if value > high:
        return _clip(1.0 - (value - high) / fall)
    return 1.0


def _ratio_band(value: float, reference: float, factor: float) -> float:
    """1 when ``value`` is within ``factor`` times ``reference`` either way, then less."""
    if math.isnan(reference) or reference <= 0 or value <= 0:
        return 0.5
    ratio = max(value / reference, reference / value)
    return _clip(1.0 - (ratio - factor) / factor)


# --------------------------------------------------------------------------- the parts


def _relation(answer: Sequence[Note], iois: list[int], call: _Call) -> float:
    if len(answer) < 2 or len(call.notes) < 2:
        return 0.0
    if measures.is_transposed_copy(call.notes, answer):
        return COPY_RELATION
    intervals = measures.intervals(answer)
    contour, cell = measures.contour_and_cell(
        call.interval_array,
        call.ioi_array,
        np.asarray(intervals, dtype=np.int64),
        np.asarray(iois, dtype=np.int64),
    )
    melodic = max(measures.shared_run(call.intervals, intervals), contour - 2)
    score = 0.6 * _clip((melodic - 2) / 3) + 0.4 * _clip((cell - 2) / 3)
    if len(answer) >= 4 and melodic / len(answer) > 0.85:
        score *= 0.6
    return score


def _shape(answer: Sequence[Note], iois: list[int]) -> float:
    n = len(answer)
    if n < 3:
        return 0.1 * n
    pitches = [note.pitch for note in answer]
    counts = Counter(pitches)
    variety = _clip((len(counts) - 1) / 4)
    if max(counts.values()) / n > 0.4:
        variety *= 0.5
    steps = measures.step_share(answer)
    leaps = measures.leap_share(answer)
    step_score = 0.0 if math.isnan(steps) else _band(steps, 0.35, 0.9, 0.35)
    leap_score = 0.0 if math.isnan(leaps) else _band(leaps, 0.0, 0.35, 0.45)
    top = max(pitches)
    peak = measures.peak_position(answer)
    climax = 0.3 if peak < 0.15 else 0.7 if peak > 0.95 else 1.0
    if counts[top] > 2:
        climax *= 0.7
    rhythm = 1.0 if len(set(iois)) > 1 else 0.5
    return (variety + step_score + leap_score + climax + rhythm) / 5


def _ending(answer: Sequence[Note], situation: Situation, call: _Call) -> float:
    if not answer:
        return 0.0
    last = answer[-1]
    chord = situation.chord_at(last.onset)
    score = 0.0
    closed = False
    if chord is not None and chord.chord is not None:
        degree = (last.pitch - chord.chord.root) % 12
        if chord.chord.contains(last.pitch):
            score += 0.45
            score += 0.10 * (degree in (0, 3, 4))
            closed = degree in (0, 3, 4, 7)
    metre = situation.metre
    half_bar = metre.beats_per_bar / 2 if metre.numerator % 2 == 0 else metre.beats_per_bar
    after_strong = metre.beat_in_bar(last.onset) % half_bar
    if after_strong <= 0.25 + 1e-9:
        score += 0.15
    elif after_strong % 1.0 < 1e-6:
        score += 0.09
    typical = median(n.duration for n in answer)
    if last.duration >= max(1.0, 1.5 * typical) - 1e-9:
        score += 0.15
    elif last.duration >= typical - 1e-9:
        score += 0.075
    if last.end <= situation.end - 0.25 + 1e-9:
        score += 0.10
    elif last.end <= situation.end + 1e-9:
        score += 0.05
    if call.open_ending and closed and len(answer) > 1:
        move = last.pitch - answer[-2].pitch
        score += 0.05 * (move < 0 or abs(move) <= 2)
    elif not call.open_ending:
        score += 0.05
    return _clip(score)


def _fit(answer: Sequence[Note], situation: Situation) -> float:
    if not answer:
        return 0.0
    strong = measures.chord_tones_strong_beats(answer, situation.chords, situation.metre)
    inside = measures.in_scale_share(answer, situation.chords, measures.blues_scale(situation.key))
    if math.isnan(strong):
        strong_score = 0.5
    elif strong < 0.3:
        strong_score = strong / 0.3
    else:
        strong_score = _band(strong, 0.3, 0.5, 0.5)
    inside_score = 1.0 if math.isnan(inside) else _clip((inside - 0.5) / 0.4)
    return 0.5 * strong_score + 0.5 * inside_score


def _range(answer: Sequence[Note], situation: Situation, call: _Call) -> float:
    if not answer:
        return 0.0
    low, high = situation.pitch_range
    inside = sum(low <= n.pitch <= high for n in answer) / len(answer)
    first = answer[0].onset
    opening = [n.pitch for n in answer if n.onset < first + 1.0]
    if math.isnan(call.last_beat_pitch):
        handover = 0.5
    else:
        distance = abs(sum(opening) / len(opening) - call.last_beat_pitch)
        handover = _band(distance, 0.0, 5.0, 12.0)
    spread = _band(measures.pitch_range(answer) / call.range, 0.5, 1.6, 0.5)
    return inside**2 * (0.5 * handover + 0.5 * spread)


def _density(answer: Sequence[Note], length: float, call: _Call) -> float:
    if not answer:
        return 0.0
    first = answer[0].onset
    opening = sum(n.onset < first + 2.0 for n in answer) / 2.0
    overall = len(answer) / max(1.0, length)  # measures.notes_per_beat, span known
    return 0.5 * _ratio_band(opening, call.closing_density, 1.5) + 0.5 * _ratio_band(
        overall, call.density, 2.0
    )


def _breath(answer: Sequence[Note], length: float, situation: Situation, call: _Call) -> float:
    if not answer:
        return 0.0
    first = answer[0].onset  # sorted by onset: the span gives the last end
    if first < situation.start - 1e-6 or first + length > situation.end + 1e-6:
        return 0.0  # outside the window
    if situation.mode == "trade":
        share = min(1.0, length / situation.length)  # measures.span_share, span known
        fill = share / 0.6 if share < 0.6 else 1.0 if share <= 0.95 else 0.5
    else:
        reference = measures.span(call.notes) or situation.length
        fill = _band(length / reference, 0.6, 1.4, 0.6) if reference > 0 else 0.5
    rests = 1.0 if length <= 4.0 or measures.rests(answer) > 0 else 0.3
    return 0.7 * fill + 0.3 * rests


# --------------------------------------------------------------------------- the critic


def _score(answer: Sequence[Note], situation: Situation, call: _Call) -> Scores:
    iois = measures.iois(answer)
    length = measures.span(answer)
    parts = {
        "relation": _relation(answer, iois, call),
        "shape": _shape(answer, iois),
        "ending": _ending(answer, situation, call),
        "fit": _fit(answer, situation),
        "range": _range(answer, situation, call),
        "density": _density(answer, length, call),
        "breath": _breath(answer, length, situation, call),
    }
    return Scores(sum(WEIGHTS[k] * v for k, v in parts.items()), parts)


def score(answer: Sequence[Note], situation: Situation) -> Scores:
    """How well ``answer`` (notes sorted by onset, absolute beats) answers the situation."""
    return _score(answer, situation, _read_call(situation))


def choose(candidates: Sequence[Sequence[Note]], situation: Situation) -> tuple[int, Scores]:
    """The index of the best candidate (ties: the first) and its scores.

    Empty candidates score 0; with no candidate at all the index is -1.
    """
    call = _read_call(situation)
    best, best_scores = -1, Scores(0.0, dict.fromkeys(WEIGHTS, 0.0))
    for index, candidate in enumerate(candidates):
        scores = _score(candidate, situation, call)
        if best < 0 or scores.total > best_scores.total:
            best, best_scores = index, scores
    return best, best_scores
