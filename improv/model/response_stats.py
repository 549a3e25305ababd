"""Musical statistics of a response phrase, and how much it echoes its call.

They judge generated answers against human ones (``improv eval``), so each is defined
for any phrase and is NaN where it has nothing to measure (no chord, no note on a strong
beat); averages skip NaN.

- ``in_scale``: share of notes (under a chord) whose pitch class is in the chord's scale
  (:func:`improv.music.chords.chord_scale`).
- ``chord_tones_strong_beats``: share of chord tones among the notes (under a chord)
  that start on a strong beat: a whole beat with an even index in its bar (beats 1 and
  3 of 4/4, beat 1 of 3/4).
- ``notes_per_beat``: notes over the phrase's span (first onset to last end, at least
  one beat).
- ``pitch_range``: highest minus lowest pitch, semitones.
- ``call_similarity``: mean of two cosine similarities between call and response, one of
  their pitch intervals (unigrams and bigrams of the semitone steps, clipped to an
  octave), one of their rhythms (unigrams and bigrams of inter-onset intervals in grid
  ticks, capped at two bars); 1 for the same line played anywhere, near 0 for lines
  sharing nothing.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import astuple, dataclass, fields
from itertools import pairwise

from improv.music.chords import Chord, chord_scale
from improv.music.notes import Phrase, chord_in_force
from improv.music.scales import Scale
from improv.music.time import TICKS_PER_BEAT, to_ticks

STAT_NAMES = (
    "in_scale",
    "chord_tones_strong_beats",
    "notes_per_beat",
    "pitch_range",
    "call_similarity",
)

_MAX_IOI_TICKS = 8 * TICKS_PER_BEAT


@dataclass(frozen=True, slots=True)
class ResponseStats:
    """The statistics of one response (see the module docstring); NaN where undefined."""

    in_scale: float
    chord_tones_strong_beats: float
    notes_per_beat: float
    pitch_range: float
    call_similarity: float

    def as_tuple(self) -> tuple[float, ...]:
        return astuple(self)


assert tuple(f.name for f in fields(ResponseStats)) == STAT_NAMES


def _share(hits: int, total: int) -> float:
    return hits / total if total else math.nan


def _chord_at(phrase: Phrase, onset: float) -> Chord | None:
    change = chord_in_force(phrase.chords, onset)
    return change.chord if change is not None else None


def _is_strong(phrase: Phrase, onset: float) -> bool:
    ticks = to_ticks(phrase.metre.beat_in_bar(onset))
    return ticks % TICKS_PER_BEAT == 0 and (ticks // TICKS_PER_BEAT) % 2 == 0


def in_scale(phrase: Phrase) -> float:
    scales: dict[str, Scale] = {}
    hits = total = 0
    for note in phrase.notes:
        chord = _chord_at(phrase, note.onset)
        if chord is None:
            continue
        scale = scales.get(chord.symbol)
        if scale is None:
            scale = scales[chord.symbol] = chord_scale(chord)
        total += 1
        hits += scale.contains(note.pitch)
    return _share(hits, total)


def chord_tones_strong_beats(phrase: Phrase) -> float:
    hits = total = 0
    for note in phrase.notes:
        chord = _chord_at(phrase, note.onset)
        if chord is None or not _is_strong(phrase, note.onset):
            continue
        total += 1
        hits += chord.contains(note.pitch)
    return _share(hits, total)


def notes_per_beat(phrase: Phrase) -> float:
    if not phrase.notes:
        return math.nan
    return len(phrase.notes) / max(1.0, phrase.duration)


def pitch_range(phrase: Phrase) -> float:
    if not phrase.notes:
        return math.nan
    pitches = [n.pitch for n in phrase.notes]
    return float(max(pitches) - min(pitches))


def _grams(values: Sequence[int]) -> Counter[Hashable]:
    grams: Counter[Hashable] = Counter(values)
    grams.update(pairwise(values))
    return grams


def _cosine(a: Counter[Hashable], b: Counter[Hashable]) -> float:
    dot = sum(count * b[key] for key, count in a.items())
    norm = math.sqrt(sum(c * c for c in a.values()) * sum(c * c for c in b.values()))
    return dot / norm if norm else math.nan


def _intervals(phrase: Phrase) -> list[int]:
    pitches = [n.pitch for n in phrase.notes]
    return [max(-12, min(12, b - a)) for a, b in pairwise(pitches)]


def _iois(phrase: Phrase) -> list[int]:
    onsets = [to_ticks(n.onset) for n in phrase.notes]
    return [min(_MAX_IOI_TICKS, b - a) for a, b in pairwise(onsets)]


def call_similarity(call: Phrase, response: Phrase) -> float:
    """Shared intervals and rhythms of two phrases, in [0, 1] (NaN below two notes)."""
    sims = [
        _cosine(_grams(_intervals(call)), _grams(_intervals(response))),
        _cosine(_grams(_iois(call)), _grams(_iois(response))),
    ]
    valid = [s for s in sims if not math.isnan(s)]
    return sum(valid) / len(valid) if valid else math.nan


def response_stats(call: Phrase, response: Phrase) -> ResponseStats:
    """Every statistic of a response to a call."""
    return ResponseStats(
        in_scale(response),
        chord_tones_strong_beats(response),
        notes_per_beat(response),
        pitch_range(response),
        call_similarity(call, response),
    )
