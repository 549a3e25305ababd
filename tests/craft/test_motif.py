"""Motif development: cells of a hand-made call, and each transform doing what it says."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from itertools import pairwise

import numpy as np
import pytest

from improv.craft import measures
from improv.craft.motif import TRANSFORMS, WEIGHTS, Seed, cells, develop, seeds
from improv.craft.situation import Situation
from improv.music.chords import parse_chord
from improv.music.notes import Note
from improv.music.time import Metre

from .hand import CALL, change, notes, situation

CELL = CALL[:4]  # E G A G over C7: 3rd, 5th, 6th, 5th
F7 = parse_chord("F7")
C7 = parse_chord("C7")


def develop_cell(transform: str, cell: tuple[Note, ...] = CELL, seed: int = 0) -> Seed:
    result = develop(cell, transform, situation(), np.random.default_rng(seed))
    assert result is not None, transform
    return result


def test_cells_start_with_the_calls_head_and_stay_small() -> None:
    found = cells(CALL, Metre())
    assert found[0] == CELL
    assert all(2 <= len(c) <= 5 for c in found)
    assert all(set(c) <= set(CALL) for c in found)
    assert cells(CALL[:1], Metre()) == [] and cells((), Metre()) == []


def test_a_figure_the_player_repeats_is_the_first_cell() -> None:
    figure = [(67, 0.0, 0.5), (65, 0.5, 0.5), (64, 1.0, 0.5)]
    call = notes(
        (60, 0.0, 1.0),
        *[(p + 2, o + 1.5, d) for p, o, d in figure],
        *[(p, o + 3.0, d) for p, o, d in figure],
    )
    assert measures.intervals(cells(call, Metre())[0]) == [-2, -1]


def test_sequence_moves_the_cell_onto_the_new_chords_tones() -> None:
    seed = develop_cell("sequence")
    assert [n.pitch % 12 for n in seed.notes] == [9, 0, 2, 0]  # A C D C: 3rd, 5th, 6th, 5th of F7
    assert [n.onset for n in seed.notes] == [8.0, 8.5, 9.0, 9.5]
    for old, new in zip(CELL, seed.notes, strict=True):
        assert C7.contains(old.pitch) == F7.contains(new.pitch)  # chord tones stay chord tones


def test_transpose_moves_by_the_root_motion_exactly() -> None:
    seed = develop_cell("transpose")
    assert measures.intervals(seed.notes) == measures.intervals(CELL)
    assert (seed.notes[0].pitch - CELL[0].pitch) % 12 == 5  # C7 -> F7
    assert measures.is_transposed_copy(CELL, seed.notes)


def test_invert_mirrors_the_intervals() -> None:
    seed = develop_cell("invert")
    for old, new in zip(measures.intervals(CELL), measures.intervals(seed.notes), strict=True):
        assert np.sign(new) == -np.sign(old) and abs(abs(new) - abs(old)) <= 1
    assert F7.contains(seed.notes[0].pitch)


def test_retrograde_plays_the_cell_backwards() -> None:
    cell = notes((60, 0.0, 1.0), (64, 1.0, 0.5), (67, 1.5, 0.25), (70, 2.0, 0.5))
    seed = develop_cell("retrograde", cell)
    back = measures.intervals(seed.notes)
    assert [np.sign(i) for i in back] == [-np.sign(i) for i in reversed(measures.intervals(cell))]
    assert [n.duration for n in seed.notes] == [0.5, 0.25, 0.5, 1.0]
    assert F7.contains(seed.notes[0].pitch)


def test_augment_doubles_and_diminish_halves_the_rhythm() -> None:
    cell = notes((64, 0.0, 0.5), (67, 0.5, 0.5), (69, 1.0, 1.0))
    plain = develop_cell("sequence", cell).notes
    long = develop_cell("augment", cell).notes
    short = develop_cell("diminish", cell).notes
    assert [n.pitch for n in long] == [n.pitch for n in plain] == [n.pitch for n in short]
    assert measures.iois(long) == [2 * i for i in measures.iois(plain)]
    assert [n.duration for n in long] == [1.0, 1.0, 2.0]
    assert measures.iois(short) == [i // 2 for i in measures.iois(plain)]
    assert [n.duration for n in short] == [0.25, 0.25, 0.5]
    sixteenths = notes((64, 0.0, 0.25), (67, 0.25, 0.25), (69, 0.5, 0.25))
    assert develop(sixteenths, "diminish", situation(), np.random.default_rng(0)) is None


def test_displace_starts_the_cell_later() -> None:
    plain = develop_cell("sequence").notes
    moved = develop_cell("displace").notes
    shift = moved[0].onset - plain[0].onset
    assert shift in (0.5, 1.0, 1.5)
    assert [n.onset - shift for n in moved] == [n.onset for n in plain]


def test_an_off_beat_cell_stays_off_the_beat() -> None:
    seed = develop_cell("sequence", CALL[5:9])  # starts on the "and" of beat 3
    assert seed.notes[0].onset == pytest.approx(8.5)


@pytest.mark.parametrize("seed_value", [0, 1, 2])
def test_seeds_fit_the_window_range_and_are_monophonic(seed_value: int) -> None:
    s = situation()
    found = seeds(s, np.random.default_rng(seed_value), 8)
    assert len(found) == 8
    assert len({(f.cell, f.transform) for f in found}) == 8
    for seed in found:
        assert seed.transform in TRANSFORMS and 2 <= len(seed.notes) <= 5
        assert measures.in_window(seed.notes, s)
        assert all(s.pitch_range[0] <= n.pitch <= s.pitch_range[1] for n in seed.notes)
        assert all(a.end <= b.onset + 1e-9 for a, b in pairwise(seed.notes))
    again = seeds(s, np.random.default_rng(seed_value), 8)
    assert again == found


def test_no_call_no_seeds() -> None:
    assert seeds(situation(call=()), np.random.default_rng(0), 4) == []
    assert seeds(situation(), np.random.default_rng(0), 0) == []


def _over(first: str, second: str) -> Situation:
    return replace(situation(), chords=(change(0.0, first), change(8.0, second)))


def test_a_sequence_keeps_the_cells_intervals_where_they_fit_the_new_chord() -> None:
    cell = notes((62, 0.0, 0.5), (64, 0.5, 0.5), (67, 1.0, 1.0))  # D E G over C7: 9th, 3rd, 5th
    seed = develop(cell, "sequence", _over("C7", "F7"), np.random.default_rng(0))
    assert seed is not None
    assert measures.intervals(seed.notes) == [2, 3]  # a real sequence: G A C or F G Bb
    assert all(n.pitch % 12 in measures.scale_of(F7) for n in seed.notes)


def test_a_cell_starting_on_a_tension_starts_on_the_same_tension_of_the_new_chord() -> None:
    cell = notes((62, 0.0, 0.5), (64, 0.5, 0.5), (67, 1.0, 1.0))  # D E G over C7: 9th, 3rd, 5th
    for transform in ("sequence", "invert", "augment"):
        seed = develop(cell, transform, _over("C7", "F7"), np.random.default_rng(0))
        assert seed is not None
        assert seed.notes[0].pitch % 12 == 7, transform  # G, the 9th of F7: not a chord tone


def test_a_sequence_goes_tonal_where_the_exact_intervals_leave_the_scale() -> None:
    s = _over("C7", "Dm7")  # E G A G: 3rd, 5th, 6th, 5th; a G# would not fit D dorian
    seed = develop(CELL, "sequence", s, np.random.default_rng(0))
    assert seed is not None
    assert measures.intervals(seed.notes) != measures.intervals(CELL)
    dm7 = parse_chord("Dm7")
    for old, new in zip(CELL, seed.notes, strict=True):
        assert C7.contains(old.pitch) == dm7.contains(new.pitch)


@pytest.mark.parametrize("target", ["F7", "Dm7", "G7", "Bb7", "Am7", "Fmaj7"])
def test_a_tonal_sequence_keeps_each_notes_role(target: str) -> None:
    """Chord tones stay chord tones and passing notes stay passing notes: a sequence
    that turned passing notes into chord tones would sit inside the changes more than
    players do."""
    chord, tonal = parse_chord(target), 0
    for pitches in [(60, 61, 63), (60, 63, 61), (60, 63, 65), (62, 64, 65), (69, 67, 66)]:
        cell = notes(*((p, 0.5 * i, 0.5) for i, p in enumerate(pitches)))
        seed = develop(cell, "sequence", _over("C7", target), np.random.default_rng(0))
        assert seed is not None and len(seed.notes) == 3
        if measures.intervals(seed.notes) == measures.intervals(cell):
            continue  # a real sequence: the exact intervals come first
        tonal += 1
        for old, new in zip(cell, seed.notes, strict=True):
            assert C7.contains(old.pitch) == chord.contains(new.pitch), (pitches, seed.notes)
    assert tonal > 0


def test_seeds_develop_cells_of_three_notes_or_more_when_the_call_has_them() -> None:
    call = notes(
        (60, 0.0, 1.0),
        (64, 2.0, 0.5),
        (67, 2.5, 1.0),
        *[(p, 4 + i * 0.5, 0.5) for i, p in enumerate((67, 69, 70, 69))],
    )
    assert any(len(c) == 2 for c in cells(call, Metre()))
    found = seeds(situation(call), np.random.default_rng(0), 6)
    assert found and all(len(f.cell) >= 3 for f in found)
    two = notes((64, 0.0, 0.5), (67, 0.5, 1.0))  # a call of one interval still gives seeds
    assert seeds(situation(two), np.random.default_rng(0), 2)


def test_sequences_and_displacements_come_before_inversions() -> None:
    counts = Counter(
        f.transform for k in range(60) for f in seeds(situation(), np.random.default_rng(k), 2)
    )
    heard = counts["sequence"] + counts["transpose"] + counts["displace"]
    assert heard > 3 * (counts["invert"] + counts["retrograde"]) > 0
    assert set(WEIGHTS) == set(TRANSFORMS)


def test_a_real_sequence_never_turns_a_strong_beats_chord_tone_into_another_note() -> None:
    cell = notes((64, 0.0, 2.0), (70, 2.0, 1.0))  # E then Bb on beat 3: 3rd, b7 of C7
    seed = develop(cell, "sequence", _over("C7", "Dm7"), np.random.default_rng(0))
    assert seed is not None and seed.notes[1].onset == 10.0  # beat 3 again
    # exactly a tritone up from F would be B, in D dorian but not a tone of Dm7
    assert parse_chord("Dm7").contains(seed.notes[1].pitch)
