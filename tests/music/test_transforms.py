"""Phrase transforms for the rule-based responder."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from improv.music.chords import parse_chord
from improv.music.forms import get_form
from improv.music.notes import ChordChange, Note, Phrase
from improv.music.time import Metre, to_ticks
from improv.music.transforms import (
    displace,
    echo,
    fit_to_chord,
    is_strong_beat,
    retrograde,
    transpose,
)


def _change(onset: float, symbol: str) -> ChordChange:
    return ChordChange(onset, symbol, parse_chord(symbol))


def _phrase(*notes: tuple[int, float, float], chords: tuple[ChordChange, ...] = ()) -> Phrase:
    return Phrase.of((Note(p, 90, o, d) for p, o, d in notes), chords)


notes_strategy = st.lists(
    st.builds(
        Note,
        pitch=st.integers(30, 100),
        velocity=st.integers(1, 127),
        onset=st.integers(0, 96).map(lambda t: t / 12),
        duration=st.integers(1, 48).map(lambda t: t / 12),
    ),
    min_size=1,
    max_size=12,
)


def _on_grid(phrase: Phrase) -> bool:
    return all(
        abs(n.onset * 12 - to_ticks(n.onset)) < 1e-9
        and abs(n.duration * 12 - to_ticks(n.duration)) < 1e-9
        for n in phrase.notes
    )


@given(notes_strategy, st.integers(-30, 30))
def test_transpose_stays_in_range_and_keeps_rhythm(notes: list[Note], semitones: int) -> None:
    phrase = Phrase.of(notes)
    moved = transpose(phrase, semitones, lo=48, hi=84)
    assert all(48 <= n.pitch <= 84 for n in moved.notes)
    assert sorted((n.pitch + semitones) % 12 for n in phrase.notes) == sorted(
        n.pitch % 12 for n in moved.notes
    )
    assert sorted((n.onset, n.duration) for n in moved.notes) == sorted(
        (n.onset, n.duration) for n in phrase.notes
    )


def test_transpose_folds_by_octaves() -> None:
    phrase = _phrase((82, 0, 1), (60, 1, 1))
    moved = transpose(phrase, 5, lo=48, hi=84)
    assert [n.pitch for n in moved.notes] == [75, 65]  # 87 came down an octave


def test_echo_is_later_quieter_and_keeps_the_chords() -> None:
    chords = (_change(0, "C7"),)
    phrase = _phrase((60, 0, 0.5), (63, 0.5, 0.5), chords=chords)
    answer = echo(phrase, 4.01, semitones=-12, velocity_scale=0.5)
    assert [(n.pitch, n.velocity, n.onset) for n in answer.notes] == [(48, 45, 4.0), (51, 45, 4.5)]
    assert answer.chords == chords
    assert echo(phrase, 1, velocity_scale=0.001).notes[0].velocity == 1
    assert echo(phrase, 1, velocity_scale=9).notes[0].velocity == 127


@given(notes_strategy)
def test_retrograde_is_an_involution_over_the_same_span(notes: list[Note]) -> None:
    phrase = Phrase.of(notes)
    backwards = retrograde(phrase)
    assert backwards.onset == pytest.approx(phrase.onset)
    assert backwards.end == pytest.approx(phrase.end)
    assert _on_grid(backwards)
    again = retrograde(backwards)
    key = lambda n: (round(n.onset * 12), n.pitch, n.duration, n.velocity)  # noqa: E731
    assert sorted(map(key, again.notes)) == sorted(map(key, phrase.notes))


def test_retrograde_reverses_the_order() -> None:
    phrase = _phrase((60, 0, 1), (62, 1, 0.5), (64, 2, 2))
    assert [(n.pitch, n.onset) for n in retrograde(phrase).notes] == [(64, 0), (62, 2.5), (60, 3)]


@given(notes_strategy, st.integers(-24, 24).map(lambda t: t / 12 + 0.01))
def test_displace_keeps_the_grid(notes: list[Note], beats: float) -> None:
    phrase = Phrase.of(notes)
    moved = displace(phrase, beats)
    assert _on_grid(moved)
    shift = round((beats) * 12) / 12
    assert sorted(n.onset for n in moved.notes) == pytest.approx(
        sorted(n.onset + shift for n in phrase.notes)
    )


@pytest.mark.parametrize(
    ("metre", "beat", "strong"),
    [
        (Metre(4, 4), 0, True), (Metre(4, 4), 2, True), (Metre(4, 4), 1, False),
        (Metre(4, 4), 2.5, False), (Metre(4, 4), 6, True), (Metre(3, 4), 1.5, False),
        (Metre(3, 4), 3, True), (Metre(6, 8), 1.5, True), (Metre(5, 4), 2.5, False),
    ],
)  # fmt: skip
def test_strong_beats(metre: Metre, beat: float, strong: bool) -> None:
    assert is_strong_beat(metre, beat) is strong


def test_fit_to_chord_strong_beats_go_to_chord_tones() -> None:
    chords = (_change(0, "C7"), _change(4, "F-7"))
    phrase = _phrase(
        (61, 0, 0.5), (61, 0.5, 0.5), (66, 1, 1), (64, 4, 1), (62, 6.5, 0.5), chords=chords
    )
    fitted = fit_to_chord(phrase)
    # Db on the downbeat -> C (chord tone); Db off the beat -> C (C mixolydian); F# on a
    # weak beat -> F or G, a tie that goes down; E on the downbeat of F-7 -> Eb; D off
    # the beat over F-7 stays (F dorian has D).
    assert [n.pitch for n in fitted.notes] == [60, 60, 65, 63, 62]
    assert fitted.chords == chords


def test_fit_to_chord_leaves_notes_under_no_chord() -> None:
    phrase = _phrase((61, 0, 1), (61, 4, 1), chords=(_change(4, "NC"),))
    assert [n.pitch for n in fit_to_chord(phrase).notes] == [61, 61]


def test_fit_to_chord_from_a_form() -> None:
    form = get_form("blues", "F")
    phrase = Phrase.of([Note(64, 90, 0, 1), Note(64, 90, 2, 1)], start_bar=4)  # bar 5: Bb7
    fitted = fit_to_chord(phrase, form)
    assert [n.pitch for n in fitted.notes] == [65, 65]  # E -> F (the fifth of Bb7)


@given(notes_strategy, st.sampled_from(["C7", "F-7", "Bbj7", "Dm7b5", "G79b13b", "Eo7"]))
def test_fit_to_chord_lands_in_the_chord_or_its_scale(notes: list[Note], symbol: str) -> None:
    from improv.music.chords import chord_scale

    chord = parse_chord(symbol)
    assert chord is not None
    phrase = Phrase.of(notes, (ChordChange(0, symbol, chord),))
    fitted = fit_to_chord(phrase)
    allowed = chord_scale(chord).pitch_classes | set(chord.tones)
    for before, after in zip(phrase.notes, fitted.notes, strict=True):
        assert abs(after.pitch - before.pitch) <= 6
        if is_strong_beat(phrase.metre, after.onset):
            assert after.pitch % 12 in chord.tones
        else:
            assert after.pitch % 12 in allowed
