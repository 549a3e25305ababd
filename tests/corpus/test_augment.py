"""Transposition augmentation stays in the instrument's range and moves the harmony too."""

from __future__ import annotations

from improv.corpus.augment import instrument_range, transpose_solo, transpositions
from improv.music.chords import parse_chord
from improv.music.notes import ChordChange, Note, Solo
from improv.music.time import Metre


def _solo(pitches: list[int], instrument: str = "ts") -> Solo:
    notes = tuple(Note(p, 90, float(i), 1.0) for i, p in enumerate(pitches))
    chords = (ChordChange(0.0, "Bb7", parse_chord("Bb7")), ChordChange(4.0, "NC", None))
    return Solo(notes, chords, Metre(), key=10, instrument=instrument)


def test_transposition_moves_notes_chords_and_key() -> None:
    moved = transpose_solo(_solo([58, 62, 65]), 2)
    assert [n.pitch for n in moved.notes] == [60, 64, 67]
    assert moved.key == 0
    assert moved.chords[0].symbol == "C7"
    assert moved.chords[0].chord is not None and moved.chords[0].chord.root == 0
    assert moved.chords[1].chord is None


def test_transpositions_that_leave_the_range_are_dropped() -> None:
    low, high = instrument_range("ts")
    solo = _solo([low + 2, 70, high - 3])
    shifts = [shift for shift, _ in transpositions(solo)]
    assert shifts == [-2, -1, 0, 1, 2, 3]
    for shift, moved in transpositions(solo):
        assert all(low <= n.pitch <= high for n in moved.notes), shift


def test_explicit_range_and_unknown_instrument() -> None:
    solo = _solo([60, 72], instrument="kazoo")
    assert len(transpositions(solo)) == 12  # the generic range is wide
    assert [s for s, _ in transpositions(solo, pitch_range=(59, 74))] == [-1, 0, 1, 2]
