"""Metrical time: ticks, metre, swing, tempo; and the note types built on them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from improv.music.chords import parse_chord
from improv.music.notes import (
    VELOCITY_BINS,
    ChordChange,
    Note,
    Phrase,
    bin_velocity,
    chord_in_force,
    velocity_bin,
)
from improv.music.time import (
    TICKS_PER_BEAT,
    Metre,
    Swing,
    Tempo,
    quantize_beats,
    to_beats,
    to_ticks,
)


def test_grid_holds_sixteenths_and_triplets() -> None:
    assert TICKS_PER_BEAT % 4 == 0 and TICKS_PER_BEAT % 3 == 0
    assert to_ticks(0.25) == 3
    assert to_ticks(1 / 3) == 4
    assert to_ticks(2 / 3) == 8
    assert to_beats(8) == pytest.approx(2 / 3)
    assert quantize_beats(0.26) == 0.25
    assert quantize_beats(1.03) == 1.0


@given(st.integers(-10_000, 10_000))
def test_ticks_round_trip(ticks: int) -> None:
    assert to_ticks(to_beats(ticks)) == ticks


@given(st.floats(-1000, 1000, allow_nan=False))
def test_quantize_is_idempotent_and_close(beats: float) -> None:
    q = quantize_beats(beats)
    assert quantize_beats(q) == q
    assert abs(q - beats) <= 0.5 / TICKS_PER_BEAT + 1e-9


@pytest.mark.parametrize(
    ("text", "beats_per_bar"), [("4/4", 4), ("3/4", 3), ("6/8", 3), ("5/4", 5), ("9/4", 9)]
)
def test_metre(text: str, beats_per_bar: float) -> None:
    metre = Metre.parse(text)
    assert metre.beats_per_bar == beats_per_bar
    assert str(metre) == text
    assert metre.ticks_per_bar == beats_per_bar * TICKS_PER_BEAT
    assert metre.bar_of(metre.bar_start(7) + 0.5) == 7
    assert metre.beat_in_bar(metre.bar_start(7) + 0.5) == 0.5


def test_metre_positions() -> None:
    metre = Metre(4, 4)
    assert metre.bar_of(15.99) == 4  # rounds onto the grid first: 16.0 is bar 4
    assert metre.bar_of(15.5) == 3
    assert metre.beat_in_bar(15.5) == 3.5
    assert metre.bar_of(-0.5) == -1


@pytest.mark.parametrize("text", ["4", "4/3", "0/4", "a/b", "4/4/4", "33/4"])
def test_bad_metre(text: str) -> None:
    with pytest.raises(ValueError):
        Metre.parse(text)


def test_swing_moves_only_the_off_beat() -> None:
    triplet = Swing(2.0)
    assert triplet.render(0.0) == 0.0
    assert triplet.render(1.0) == 1.0
    assert triplet.render(0.5) == pytest.approx(2 / 3)
    assert triplet.render(3.5) == pytest.approx(3 + 2 / 3)
    assert Swing(1.0).render(0.5) == 0.5
    assert Swing(3.0).render(0.5) == pytest.approx(0.75)


@given(st.floats(1.0, 4.0), st.integers(-100, 100), st.integers(0, TICKS_PER_BEAT - 1))
def test_swing_unrender_inverts_render(ratio: float, beat: int, tick: int) -> None:
    swing = Swing(ratio)
    position = beat + tick / TICKS_PER_BEAT
    assert swing.unrender(swing.render(position)) == pytest.approx(position, abs=1e-9)


@given(st.floats(1.0, 4.0), st.floats(-50, 50), st.floats(-50, 50))
def test_swing_keeps_order(ratio: float, a: float, b: float) -> None:
    swing = Swing(ratio)
    if a < b:
        assert swing.render(a) <= swing.render(b) + 1e-12


def test_bad_swing() -> None:
    with pytest.raises(ValueError):
        Swing(0.5)


@given(st.floats(20, 400), st.floats(0, 1000))
def test_tempo_round_trip(bpm: float, beats: float) -> None:
    tempo = Tempo(bpm)
    assert tempo.to_beats(tempo.to_seconds(beats)) == pytest.approx(beats)


def test_tempo() -> None:
    assert Tempo(120).seconds_per_beat == 0.5
    assert Tempo(120).to_seconds(8) == 4.0
    assert Tempo(90).to_beats(2.0) == 3.0
    with pytest.raises(ValueError):
        Tempo(10)


def test_note_validation_and_quantisation() -> None:
    note = Note(60, 100, 0.26, 0.01)
    q = note.quantized()
    assert (q.onset, q.duration) == (0.25, 1 / TICKS_PER_BEAT)  # at least one tick
    assert q.velocity == bin_velocity(velocity_bin(100))
    assert note.end == pytest.approx(0.27)
    assert note.shifted(2).onset == pytest.approx(2.26)
    for bad in ((128, 100, 0, 1), (60, 0, 0, 1), (60, 100, 0, 0)):
        with pytest.raises(ValueError):
            Note(*bad)


@given(st.integers(1, 127))
def test_velocity_bins(velocity: int) -> None:
    index = velocity_bin(velocity)
    assert 0 <= index < VELOCITY_BINS
    assert velocity_bin(bin_velocity(index)) == index
    assert 1 <= bin_velocity(index) <= 127


def test_phrase_sorts_and_measures() -> None:
    phrase = Phrase.of([Note(64, 80, 1.0, 0.5), Note(60, 80, 0.0, 2.0)])
    assert [n.pitch for n in phrase.notes] == [60, 64]
    assert (phrase.onset, phrase.end, phrase.duration) == (0.0, 2.0, 2.0)
    assert Phrase.of([]).duration == 0.0


def test_chord_in_force() -> None:
    changes = [ChordChange(0.0, "C7", parse_chord("C7")), ChordChange(4.0, "NC", None)]
    assert chord_in_force(changes, -1) is None
    assert chord_in_force(changes, 3.99) == changes[0]
    assert chord_in_force(changes, 4.0) == changes[1]
