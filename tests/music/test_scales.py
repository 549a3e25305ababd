"""Scales: membership, ranges, names, nearest scale tone."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from improv.music.scales import SCALE_INTERVALS, SCALE_NAMES, Scale


def test_blues_scales() -> None:
    blues = Scale.named("blues", 0)
    assert blues.pitch_classes == {0, 3, 5, 6, 7, 10}  # minor pentatonic + b5
    assert Scale.named("minor pentatonic", 0).pitch_classes == {0, 3, 5, 7, 10}
    assert Scale.named("major-blues", 0).pitch_classes == {0, 2, 3, 4, 7, 9}
    assert Scale.named("major_pentatonic", 7).pitch_classes == {7, 9, 11, 2, 4}
    assert Scale.named("Bebop Dominant", 0).pitch_classes == {0, 2, 4, 5, 7, 9, 10, 11}
    assert Scale.named("mixolydian", 5).pitch_classes == {5, 7, 9, 10, 0, 2, 3}
    assert Scale.named("dorian", 2).pitch_classes == {2, 4, 5, 7, 9, 11, 0}


def test_symmetric_scales() -> None:
    assert Scale.named("diminished", 0).intervals == (0, 2, 3, 5, 6, 8, 9, 11)
    assert Scale.named("diminished_half_whole", 0).intervals == (0, 1, 3, 4, 6, 7, 9, 10)
    assert Scale.named("altered", 7).pitch_classes == {7, 8, 10, 11, 1, 3, 5}


def test_contains_and_range() -> None:
    c_blues = Scale.named("blues", 0)
    assert c_blues.contains(66)  # F#4, the blue note
    assert not c_blues.contains(64)
    assert c_blues.pitches_in_range(60, 72) == (60, 63, 65, 66, 67, 70, 72)
    assert c_blues.pitches_in_range(-5, 2) == (0,)


@given(st.sampled_from(SCALE_NAMES), st.integers(0, 11), st.integers(0, 127))
def test_nearest_is_in_scale_and_close(name: str, root: int, pitch: int) -> None:
    scale = Scale.named(name, root)
    near = scale.nearest(pitch)
    assert scale.contains(near)
    assert 0 <= near <= 127
    for candidate in scale.pitches_in_range(pitch - 6, pitch + 6):
        assert abs(near - pitch) <= abs(candidate - pitch)


@given(st.sampled_from(SCALE_NAMES), st.integers(0, 11), st.integers(-30, 30))
def test_transposed(name: str, root: int, semitones: int) -> None:
    scale = Scale.named(name, root)
    moved = scale.transposed(semitones)
    assert moved.pitch_classes == {(p + semitones) % 12 for p in scale.pitch_classes}


def test_every_named_scale_is_valid() -> None:
    for name, intervals in SCALE_INTERVALS.items():
        assert Scale.named(name, 0).intervals == intervals


def test_bad_scales() -> None:
    with pytest.raises(ValueError, match="unknown scale 'hexatonic'"):
        Scale.named("hexatonic", 0)
    with pytest.raises(ValueError):
        Scale(0, (2, 4))
    with pytest.raises(ValueError):
        Scale(12, (0, 2))
    assert str(Scale.named("blues", 10)) == "Bb blues"
