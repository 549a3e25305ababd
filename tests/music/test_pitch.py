"""Pitch names, pitch classes and keys."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from improv.music.pitch import (
    Key,
    fold_into_range,
    parse_pitch,
    parse_pitch_class,
    pc_name,
    pitch_name,
    split_pitch_class,
)


@pytest.mark.parametrize(
    ("name", "pc"),
    [("C", 0), ("C#", 1), ("Db", 1), ("Bb", 10), ("A#", 10), ("F#", 6), ("Gb", 6), ("Cb", 11),
     ("Fb", 4), ("E#", 5), ("B#", 0), ("Bbb", 9), ("F##", 7), ("B♭", 10), ("c", 0)],
)  # fmt: skip
def test_parse_pitch_class(name: str, pc: int) -> None:
    assert parse_pitch_class(name) == pc


@pytest.mark.parametrize("name", ["H", "", "C7", "Xb", "#C"])
def test_parse_pitch_class_rejects(name: str) -> None:
    with pytest.raises(ValueError, match="pitch-class"):
        parse_pitch_class(name)


def test_split_pitch_class_leaves_the_rest() -> None:
    assert split_pitch_class("Bb-7/Eb") == (10, "-7/Eb")
    assert split_pitch_class("Cb7") == (11, "7")


def test_names() -> None:
    assert pc_name(10) == "Bb"
    assert pc_name(10, sharps=True) == "A#"
    assert pitch_name(70) == "Bb4"
    assert pitch_name(60) == "C4"
    assert pitch_name(0) == "C-1"
    assert pitch_name(61, sharps=True) == "C#4"


@given(st.integers(0, 127), st.booleans())
def test_pitch_name_round_trip(pitch: int, sharps: bool) -> None:
    assert parse_pitch(pitch_name(pitch, sharps=sharps)) == pitch


def test_parse_pitch_octave_belongs_to_letter() -> None:
    assert parse_pitch("Cb4") == 59
    assert parse_pitch("B#3") == 60
    with pytest.raises(ValueError, match="Bb"):
        parse_pitch("Bb")
    with pytest.raises(ValueError, match="range"):
        parse_pitch("G10")


@given(st.integers(-60, 200), st.integers(0, 100), st.integers(11, 40))
def test_fold_into_range(pitch: int, lo: int, width: int) -> None:
    folded = fold_into_range(pitch, lo, lo + width)
    assert lo <= folded <= lo + width
    assert (folded - pitch) % 12 == 0


def test_fold_needs_an_octave() -> None:
    with pytest.raises(ValueError, match="octave"):
        fold_into_range(60, 60, 65)


@pytest.mark.parametrize(
    ("text", "tonic", "mode"),
    [("Eb", 3, "major"), ("Cm", 0, "minor"), ("C-", 0, "minor"), ("A minor", 9, "minor"),
     ("F#-maj", 6, "major"), ("Bb-min", 10, "minor"), ("D-dor", 2, "minor"),
     ("Ab-mix", 8, "major"), ("C-chrom", 0, "major"), ("Bb-blues", 10, "major"),
     ("G major", 7, "major")],
)  # fmt: skip
def test_key_parse(text: str, tonic: int, mode: str) -> None:
    assert Key.parse(text) == Key(tonic, mode)


@pytest.mark.parametrize("text", ["", "H", "C-lydian", "Cq"])
def test_key_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a key"):
        Key.parse(text)


def test_key_transpose_and_spelling() -> None:
    assert Key(3).transpose(-5) == Key(10)
    assert Key(9, "minor").transpose(5) == Key(2, "minor")
    assert Key(7).name == "G"
    assert Key(6).spell(6) == "F#"
    assert Key(5).spell(10) == "Bb"
    assert Key(4, "minor").prefers_sharps  # E minor: one sharp
    assert str(Key(0, "minor")) == "Cm"
    with pytest.raises(ValueError):
        Key(12)
    with pytest.raises(ValueError):
        Key(0, "dorian")


def test_a_key_signature_names_its_key_and_back() -> None:
    assert Key.parse("F#").signature == 6 and Key.parse("Db").signature == -5
    assert Key.parse("Am").signature == 0 and Key.parse("Cm").signature == -3
    assert Key.from_signature(-3, minor=True) == Key.parse("Cm")
    assert Key.from_signature(2, minor=False) == Key.parse("D")
    for tonic in range(12):
        for mode in ("major", "minor"):
            key = Key(tonic, mode)
            assert Key.from_signature(key.signature, key.is_minor) == key
