"""The measures the critic and ``improv eval`` share, on lines whose answers are known."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from improv.craft import measures
from improv.music.notes import Note

from .hand import CALL, DEVELOPED, LITERAL_COPY, TRANSPOSED_COPY, change, notes, situation

C7 = (change(0.0, "C7"),)


def line(pitches: list[int], onsets: list[float]) -> list[Note]:
    return [Note(p, 80, o, 0.5) for p, o in zip(pitches, onsets, strict=True)]


def test_in_scale_and_chord_tones_on_strong_beats() -> None:
    from improv.music.time import Metre

    # C7: mixolydian C D E F G A Bb; chord tones C E G Bb
    notes_ = line([60, 62, 64, 66, 67, 61], [0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
    assert measures.in_scale_share(notes_, C7) == pytest.approx(4 / 6)  # F# and C# are out
    assert measures.in_scale_share(notes_, C7, frozenset({6})) == pytest.approx(5 / 6)
    # strong beats (1 and 3 of 4/4): 60 on beat 1, 67 on beat 3; 64 on beat 2 is not
    assert measures.chord_tones_strong_beats(notes_, C7, Metre()) == 1.0
    off = line([61, 62], [0.0, 2.0])
    assert measures.chord_tones_strong_beats(off, C7, Metre()) == 0.0
    single = [Note(60, 80, 0.0, 1.0)]
    assert math.isnan(measures.in_scale_share(single, ()))
    assert math.isnan(measures.chord_tones_strong_beats(single, (), Metre()))


def test_density_range_steps_and_rhythm() -> None:
    notes_ = line([60, 72, 67, 55], [0.0, 0.5, 1.0, 1.5])  # spans 2 beats
    assert measures.notes_per_beat(notes_) == pytest.approx(2.0)
    assert measures.pitch_range(notes_) == 17.0
    assert math.isnan(measures.pitch_range([]))
    assert measures.step_share(DEVELOPED) == pytest.approx(6 / 10)
    assert measures.leap_share(notes_) == 1.0
    assert measures.distinct_iois(notes_) == 1 and measures.distinct_iois(CALL) == 2
    assert measures.rests(DEVELOPED) == 1  # the breath before the climb
    assert measures.peak_position(DEVELOPED) == pytest.approx(4 / 10)


def test_span_share_and_window() -> None:
    s = situation()  # an eight-beat turn
    assert measures.span_share(DEVELOPED, s) == pytest.approx(7.5 / 8)
    assert measures.span_share((), s) == 0.0
    assert measures.in_window(DEVELOPED, s)
    assert not measures.in_window([n.shifted(1.5) for n in DEVELOPED], s)
    assert not measures.in_window([n.shifted(-0.5) for n in DEVELOPED], s)


def test_endings() -> None:
    chords = situation().chords
    assert measures.ends_on_chord_tone(DEVELOPED, chords) == 1.0  # F over F7
    assert measures.ends_on_root(DEVELOPED, chords) == 1.0
    b_natural = (*DEVELOPED[:-1], Note(71, 80, 14.0, 1.0))
    assert measures.ends_on_chord_tone(b_natural, chords) == 0.0
    assert math.isnan(measures.ends_on_chord_tone((), chords))
    assert math.isnan(measures.ends_on_chord_tone(DEVELOPED, ()))
    assert measures.is_open_ending(CALL, chords)  # the 9th
    assert not measures.is_open_ending(DEVELOPED, chords)  # the root, from a step below
    assert measures.is_open_ending(notes((60, 0.0, 0.5), (64, 0.5, 1.0)), chords)  # rising


def test_motif_and_rhythm_reuse_count_notes() -> None:
    assert measures.motif_reuse(CALL, LITERAL_COPY) == len(CALL)
    assert measures.motif_reuse(CALL, TRANSPOSED_COPY) == len(CALL)
    # the developed answer shares E G A G's intervals exactly (A C D C) and further
    assert measures.motif_reuse(CALL, DEVELOPED) >= 4
    assert measures.motif_reuse(CALL, notes((60, 0.0, 1.0))) == 0
    repeated = notes((60, 0.0, 0.5), (60, 0.5, 0.5), (60, 1.0, 0.5))
    assert measures.motif_reuse(repeated, repeated) == 3
    assert measures.motif_reuse(CALL, notes((60, 0.0, 1.0), (90, 1.0, 1.0))) == 0
    assert measures.rhythm_reuse(CALL, LITERAL_COPY) == len(CALL)
    assert measures.rhythm_reuse(CALL, notes((60, 0.0, 1.0), (62, 0.3, 1.0))) == 0


def test_contour_and_cell_reuse_see_a_sequence_with_altered_intervals() -> None:
    # E G A G (+3 +2 -2) sequenced diatonically as F A B A (+4 +2 -2): exact run 3, contour 4
    cell = notes((65, 8.0, 0.5), (69, 8.5, 0.5), (71, 9.0, 0.5), (69, 9.5, 0.5))
    assert measures.motif_reuse(CALL, cell) == 3
    assert measures.contour_reuse(CALL, cell) == 4
    assert measures.cell_reuse(CALL, cell) == 4
    # the same contour in another rhythm is no cell
    slow = tuple(replace(n, onset=8.0 + 1.5 * i) for i, n in enumerate(cell))
    assert measures.contour_reuse(CALL, slow) == 4 and measures.cell_reuse(CALL, slow) == 0


def test_transposed_copies_are_recognised_within_a_little_timing() -> None:
    assert measures.is_transposed_copy(CALL, LITERAL_COPY)
    assert measures.is_transposed_copy(CALL, TRANSPOSED_COPY)
    nudged = tuple(n.shifted(0.2 if i % 2 else 0.0) for i, n in enumerate(TRANSPOSED_COPY))
    assert measures.is_transposed_copy(CALL, nudged)
    assert measures.is_transposed_copy(CALL, TRANSPOSED_COPY[1:])  # the pickup dropped
    assert not measures.is_transposed_copy(CALL, DEVELOPED)
    stretched = tuple(replace(n, onset=2 * n.onset) for n in TRANSPOSED_COPY)
    assert not measures.is_transposed_copy(CALL, stretched)
    one_changed = (
        *TRANSPOSED_COPY[:5],
        replace(TRANSPOSED_COPY[5], pitch=80),
        *TRANSPOSED_COPY[6:],
    )
    assert not measures.is_transposed_copy(CALL, one_changed)


def test_velocity_stats() -> None:
    notes_ = [Note(60, v, float(i), 0.5) for i, v in enumerate([60, 70, 80, 90, 127])]
    median, spread = measures.velocity_stats(notes_)
    assert median == 80.0 and spread == 20.0
    assert measures.velocity_127_share(notes_) == pytest.approx(0.2)
    assert measures.velocity_distinct(notes_) == 5
    assert math.isnan(measures.velocity_127_share([]))
