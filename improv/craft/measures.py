"""Measures of an answer and its call, shared by the critic and ``improv eval``.

Pure functions over notes (:class:`~improv.music.notes.Note`, beats) and a
:class:`~improv.craft.situation.Situation`; one implementation, so what the critic
rewards is what the evaluation reports. Shares are NaN where there is nothing to
measure (no chord, no note on a strong beat); counts are 0 for too few notes.

Cheap by design: the engine scores dozens of candidates per turn, so nothing here
builds a scale or parses a chord more than once (:func:`scale_of` is cached).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from itertools import pairwise

import numpy as np

from improv.craft.situation import Situation
from improv.music.chords import Chord, chord_scale
from improv.music.notes import ChordChange, Note, chord_in_force
from improv.music.pitch import Key
from improv.music.scales import Scale
from improv.music.time import TICKS_PER_BEAT, Metre

MAX_IOI_TICKS = 8 * TICKS_PER_BEAT
"""Inter-onset intervals are capped at two bars: a longer rest is just 'a long rest'."""
COPY_TOLERANCE = 0.25
"""How far (beats) a note of a transposed copy may sit from the call's rhythm."""


# --------------------------------------------------------------------------- chords


_SCALES: dict[str, frozenset[int]] = {}


def scale_of(chord: Chord) -> frozenset[int]:
    """Pitch classes of the chord's scale (:func:`improv.music.chords.chord_scale`),
    cached by symbol (a symbol always parses to the same chord)."""
    found = _SCALES.get(chord.symbol)
    if found is None:
        found = _SCALES[chord.symbol] = chord_scale(chord).pitch_classes
    return found


@lru_cache(maxsize=24)
def blues_scale(key: Key) -> frozenset[int]:
    """Pitch classes of the key's blues scale and major blues scale: the blue notes."""
    return (
        Scale.named("blues", key.tonic).pitch_classes
        | Scale.named("major_blues", key.tonic).pitch_classes
    )


def chord_at(chords: Sequence[ChordChange], beats: float) -> Chord | None:
    change = chord_in_force(chords, beats)
    return change.chord if change is not None else None


def _share(hits: int, total: int) -> float:
    return hits / total if total else math.nan


def in_scale_share(
    notes: Sequence[Note], chords: Sequence[ChordChange], extra: frozenset[int] = frozenset()
) -> float:
    """Share of the notes under a chord whose pitch class is in the chord's scale (or in
    ``extra``, e.g. the key's blue notes)."""
    hits = total = 0
    for note in notes:
        chord = chord_at(chords, note.onset)
        if chord is None:
            continue
        total += 1
        pc = note.pitch % 12
        hits += pc in scale_of(chord) or pc in extra
    return _share(hits, total)


def chord_tones_strong_beats(
    notes: Sequence[Note], chords: Sequence[ChordChange], metre: Metre
) -> float:
    """Share of chord tones among the notes (under a chord) that start on a strong beat
    (as :func:`improv.music.transforms.is_strong_beat`: beats 1 and 3 of 4/4; inlined
    here, where the critic calls it for every note of every candidate)."""
    bar = metre.ticks_per_bar
    half = bar // 2 if metre.numerator % 2 == 0 else 0
    hits = total = 0
    for note in notes:
        if round(note.onset * TICKS_PER_BEAT) % bar not in (0, half):
            continue
        chord = chord_at(chords, note.onset)
        if chord is None:
            continue
        total += 1
        hits += chord.contains(note.pitch)
    return _share(hits, total)


def _ending(notes: Sequence[Note], chords: Sequence[ChordChange]) -> tuple[Note, Chord] | None:
    """The last note and the chord in force at its onset (None: no note or no chord)."""
    if not notes:
        return None
    chord = chord_at(chords, notes[-1].onset)
    return None if chord is None else (notes[-1], chord)


def ends_on_chord_tone(notes: Sequence[Note], chords: Sequence[ChordChange]) -> float:
    """1.0 when the last note is a tone of the chord in force at its onset, else 0.0
    (NaN: no note, or no chord)."""
    ending = _ending(notes, chords)
    return math.nan if ending is None else float(ending[1].contains(ending[0].pitch))


def ends_on_root(notes: Sequence[Note], chords: Sequence[ChordChange]) -> float:
    """1.0 when the last note is the root of the chord in force (NaN as above)."""
    ending = _ending(notes, chords)
    return math.nan if ending is None else float(ending[0].pitch % 12 == ending[1].root)


def is_open_ending(notes: Sequence[Note], chords: Sequence[ChordChange]) -> bool:
    """Whether a phrase ends asking a question: on a 2nd, 4th, 6th, 7th or 9th of its
    chord (anything but root, 3rd or 5th), or leaping up into its last note (a step up
    into a root, 3rd or 5th resolves: that is closed)."""
    if not notes:
        return False
    last = notes[-1]
    chord = chord_at(chords, last.onset)
    if chord is not None and (last.pitch - chord.root) % 12 not in (0, 3, 4, 7):
        return True
    return len(notes) > 1 and last.pitch - notes[-2].pitch > 2


# --------------------------------------------------------------------------- time


def span(notes: Sequence[Note]) -> float:
    """First onset to last end, beats (0 for no note)."""
    if not notes:
        return 0.0
    return max(n.end for n in notes) - notes[0].onset


def span_share(notes: Sequence[Note], situation: Situation) -> float:
    """The answer's span over its turn (the window), in [0, 1]."""
    if not notes or situation.length <= 0:
        return 0.0
    return min(1.0, span(notes) / situation.length)


def in_window(notes: Sequence[Note], situation: Situation, slack: float = 1e-6) -> bool:
    """Whether every note starts at or after the window's start and ends by its end."""
    return all(n.onset >= situation.start - slack and n.end <= situation.end + slack for n in notes)


def notes_per_beat(notes: Sequence[Note]) -> float:
    """Notes over the span (at least one beat); NaN for no note."""
    if not notes:
        return math.nan
    return len(notes) / max(1.0, span(notes))


def iois(notes: Sequence[Note]) -> list[int]:
    """Inter-onset intervals in grid ticks, capped at :data:`MAX_IOI_TICKS`."""
    ticks = [round(n.onset * TICKS_PER_BEAT) for n in notes]
    return [min(MAX_IOI_TICKS, b - a) for a, b in pairwise(ticks)]


def distinct_iois(notes: Sequence[Note]) -> int:
    """How many different inter-onset intervals a line uses (rhythmic variety)."""
    return len(set(iois(notes)))


def rests(notes: Sequence[Note], at_least: float = 0.5) -> int:
    """Silences of at least ``at_least`` beats between consecutive notes (breaths)."""
    count = 0
    end = notes[0].end if notes else 0.0
    for note in notes[1:]:
        count += note.onset - end >= at_least - 1e-9
        end = max(end, note.end)
    return count


# --------------------------------------------------------------------------- pitch


def intervals(notes: Sequence[Note]) -> list[int]:
    """Melodic intervals in semitones between consecutive notes."""
    return [b.pitch - a.pitch for a, b in pairwise(notes)]


def pitch_range(notes: Sequence[Note]) -> float:
    """Highest minus lowest pitch in semitones (NaN for no note)."""
    if not notes:
        return math.nan
    pitches = [n.pitch for n in notes]
    return float(max(pitches) - min(pitches))


def step_share(notes: Sequence[Note]) -> float:
    """Share of the moves (repeated notes left out) that are steps of 1 or 2 semitones."""
    moves = [abs(i) for i in intervals(notes) if i]
    return _share(sum(m <= 2 for m in moves), len(moves))


def leap_share(notes: Sequence[Note]) -> float:
    """Share of the moves (repeated notes left out) of a fourth (5 semitones) or more."""
    moves = [abs(i) for i in intervals(notes) if i]
    return _share(sum(m >= 5 for m in moves), len(moves))


def peak_position(notes: Sequence[Note]) -> float:
    """Where the (first) highest note falls, as a share of the notes: 0 first, 1 last."""
    if len(notes) < 2:
        return math.nan
    pitches = [n.pitch for n in notes]
    return pitches.index(max(pitches)) / (len(notes) - 1)


# --------------------------------------------------------------------------- the call


def _longest_run(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest run of consecutive values shared by ``a`` and ``b``."""
    if not a or not b:
        return 0
    grams = set(a)
    if not grams.intersection(b):
        return 0
    k = 1
    while k < min(len(a), len(b)):
        wanted = {tuple(a[i : i + k + 1]) for i in range(len(a) - k)}
        if not any(tuple(b[j : j + k + 1]) in wanted for j in range(len(b) - k)):
            break
        k += 1
    return k


def shared_run(a: Sequence[int], b: Sequence[int]) -> int:
    """The longest run of consecutive intervals (or IOIs) shared by two lines, in notes
    (a shared run of k intervals is k + 1 notes; 0 when none is shared)."""
    run = _longest_run(a, b)
    return run + 1 if run else 0


def motif_reuse(call: Sequence[Note], answer: Sequence[Note]) -> int:
    """The longest run of consecutive melodic intervals the answer shares with the call,
    in notes (a shared run of k intervals is k + 1 notes; 0 when none is shared)."""
    return shared_run(intervals(call), intervals(answer))


def rhythm_reuse(call: Sequence[Note], answer: Sequence[Note]) -> int:
    """The longest run of consecutive inter-onset intervals shared, in notes (0: none)."""
    return shared_run(iois(call), iois(answer))


def _diagonal_run(match: np.ndarray) -> int:
    """Length of the longest diagonal run of True in a match matrix, in notes (0: none)."""
    run = 0
    while match.size and match.any():
        run += 1
        match = match[:-1, :-1] & match[1:, 1:]
    return run + 1 if run else 0


def contour_and_cell(
    call_intervals: np.ndarray,
    call_iois: np.ndarray,
    answer_intervals: np.ndarray,
    answer_iois: np.ndarray,
    slack: int = 2,
) -> tuple[int, int]:
    """(:func:`contour_reuse`, :func:`cell_reuse`) from interval and IOI arrays, for a
    caller that has them already (the critic reads the call once per turn)."""
    if not call_intervals.size or not answer_intervals.size:
        return 0, 0
    a = call_intervals[:, None]
    b = answer_intervals[None, :]
    contour = (np.sign(a) == np.sign(b)) & (np.abs(a - b) <= slack)
    cell = contour & (call_iois[:, None] == answer_iois[None, :])
    return _diagonal_run(contour), _diagonal_run(cell)


def _arrays(notes: Sequence[Note]) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(intervals(notes), dtype=np.int64), np.asarray(iois(notes), dtype=np.int64)


def contour_reuse(call: Sequence[Note], answer: Sequence[Note], slack: int = 2) -> int:
    """The longest run of consecutive intervals the answer shares with the call up to
    ``slack`` semitones each, in the same direction, in notes (0: none).

    A cell sequenced onto another chord changes a major third into a minor one; its
    contour stays, and this sees it.
    """
    return contour_and_cell(*_arrays(call), *_arrays(answer), slack)[0]


def cell_reuse(call: Sequence[Note], answer: Sequence[Note], slack: int = 2) -> int:
    """The longest run of notes whose contour (as :func:`contour_reuse`) and rhythm (the
    same inter-onset intervals) both come from one place of the call: a reused cell, in
    notes (0: none). Eighth notes alone, or a contour alone, are not a cell."""
    return contour_and_cell(*_arrays(call), *_arrays(answer), slack)[1]


def is_transposed_copy(
    call: Sequence[Note], answer: Sequence[Note], tolerance: float = COPY_TOLERANCE
) -> bool:
    """Whether the answer is the call again, transposed (by any interval, 0 included):
    the same intervals and, from the first note, the same rhythm within ``tolerance``
    beats per note. One note more or less at either end still counts (a parrot that
    drops or adds a pickup is a parrot)."""
    if len(call) < 3 or len(answer) < 3 or abs(len(call) - len(answer)) > 1:
        return False
    short, long = (call, answer) if len(call) <= len(answer) else (answer, call)
    want = intervals(short)
    for offset in range(len(long) - len(short) + 1):
        part = long[offset : offset + len(short)]
        if intervals(part) != want:
            continue
        s0, p0 = short[0].onset, part[0].onset
        if all(
            abs((p.onset - p0) - (s.onset - s0)) <= tolerance + 1e-9
            for s, p in zip(short, part, strict=True)
        ):
            return True
    return False


# --------------------------------------------------------------------------- dynamics


def velocity_stats(notes: Sequence[Note]) -> tuple[float, float]:
    """(median, spread) of the velocities: spread is the interquartile range (0 for
    fewer than two notes, NaN median for none)."""
    if not notes:
        return math.nan, 0.0
    velocities = np.fromiter((n.velocity for n in notes), dtype=float, count=len(notes))
    q1, median, q3 = np.percentile(velocities, (25, 50, 75))
    return float(median), float(q3 - q1)


def velocity_127_share(notes: Sequence[Note]) -> float:
    """Share of the notes at full velocity (127)."""
    return _share(sum(n.velocity >= 127 for n in notes), len(notes))


def velocity_distinct(notes: Sequence[Note]) -> int:
    """How many different velocities the notes use."""
    return len({n.velocity for n in notes})
