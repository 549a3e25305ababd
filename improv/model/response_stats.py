"""Musical statistics of an answer to a call, as ``improv eval`` reports them.

They judge generated answers against human ones, so each is defined for any answer
and is NaN where it has nothing to measure (no chord, no note on a strong beat);
averages skip NaN. The measures themselves live in :mod:`improv.craft.measures`, shared
with the critic, so what the critic rewards is what the evaluation reports.

Per answer (the report gives their means):

- ``in_scale``: share of notes (under a chord) in the chord's scale.
- ``chord_tones_strong_beats``: share of chord tones among the notes (under a chord) on
  a strong beat (beats 1 and 3 of 4/4).
- ``notes_per_beat``: notes over the answer's span (at least one beat).
- ``pitch_range``: highest minus lowest pitch, semitones.
- ``call_similarity``: mean of two cosine similarities between call and answer, one of
  their pitch intervals (unigrams and bigrams of the semitone steps, clipped to an
  octave), one of their rhythms (unigrams and bigrams of inter-onset intervals in grid
  ticks, capped at two bars); 1 for the same line played anywhere.
- ``notes_per_answer``: notes in the answer.
- ``span_share``: the answer's span (first onset to last end) over its turn.
- ``ends_on_chord_tone``: 1 when the last note is a tone of the chord under it.
- ``motif_reuse``: the longest run of consecutive melodic intervals shared with the
  call, in notes; ``motif_reuse_shuffled`` the same against another pair's call (the
  level chance alone reaches).
- ``copy_share``: 1 when the answer is the call transposed (a parrot).

Pooled over all the answers of a source (:func:`pooled_stats`):

- ``velocity_127_share``: share of notes at velocity 127.
- ``velocity_distinct``: how many different velocities the answers use.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import astuple, dataclass, fields
from itertools import pairwise

from improv.craft import measures
from improv.craft.situation import Situation
from improv.music.notes import Note

STAT_NAMES = (
    "in_scale",
    "chord_tones_strong_beats",
    "notes_per_beat",
    "pitch_range",
    "call_similarity",
    "notes_per_answer",
    "span_share",
    "ends_on_chord_tone",
    "motif_reuse",
    "motif_reuse_shuffled",
    "copy_share",
)
POOLED_NAMES = ("velocity_127_share", "velocity_distinct")


@dataclass(frozen=True, slots=True)
class ResponseStats:
    """The statistics of one answer (see the module docstring); NaN where undefined."""

    in_scale: float
    chord_tones_strong_beats: float
    notes_per_beat: float
    pitch_range: float
    call_similarity: float
    notes_per_answer: float
    span_share: float
    ends_on_chord_tone: float
    motif_reuse: float
    motif_reuse_shuffled: float
    copy_share: float

    def as_tuple(self) -> tuple[float, ...]:
        return astuple(self)


assert tuple(f.name for f in fields(ResponseStats)) == STAT_NAMES


def _grams(values: Sequence[int]) -> Counter[Hashable]:
    grams: Counter[Hashable] = Counter(values)
    grams.update(pairwise(values))
    return grams


def _cosine(a: Counter[Hashable], b: Counter[Hashable]) -> float:
    dot = sum(count * b[key] for key, count in a.items())
    norm = math.sqrt(sum(c * c for c in a.values()) * sum(c * c for c in b.values()))
    return dot / norm if norm else math.nan


def _clipped_intervals(notes: Sequence[Note]) -> list[int]:
    return [max(-12, min(12, i)) for i in measures.intervals(notes)]


def call_similarity(call: Sequence[Note], answer: Sequence[Note]) -> float:
    """Shared intervals and rhythms of two lines, in [0, 1] (NaN below two notes)."""
    sims = [
        _cosine(_grams(_clipped_intervals(call)), _grams(_clipped_intervals(answer))),
        _cosine(_grams(measures.iois(call)), _grams(measures.iois(answer))),
    ]
    valid = [s for s in sims if not math.isnan(s)]
    return sum(valid) / len(valid) if valid else math.nan


def response_stats(
    situation: Situation, answer: Sequence[Note], other_call: Sequence[Note]
) -> ResponseStats:
    """Every statistic of an answer to ``situation.call``; ``other_call`` is a random
    other pair's call, for ``motif_reuse_shuffled``."""
    call = situation.call
    return ResponseStats(
        in_scale=measures.in_scale_share(answer, situation.chords),
        chord_tones_strong_beats=measures.chord_tones_strong_beats(
            answer, situation.chords, situation.metre
        ),
        notes_per_beat=measures.notes_per_beat(answer),
        pitch_range=measures.pitch_range(answer),
        call_similarity=call_similarity(call, answer),
        notes_per_answer=float(len(answer)),
        span_share=measures.span_share(answer, situation),
        ends_on_chord_tone=measures.ends_on_chord_tone(answer, situation.chords),
        motif_reuse=float(measures.motif_reuse(call, answer)),
        motif_reuse_shuffled=float(measures.motif_reuse(other_call, answer)),
        copy_share=float(measures.is_transposed_copy(call, answer)),
    )


def pooled_stats(notes: Sequence[Note]) -> dict[str, float]:
    """The pooled statistics of every note a source played."""
    return {
        "velocity_127_share": measures.velocity_127_share(notes),
        "velocity_distinct": float(measures.velocity_distinct(notes)),
    }
