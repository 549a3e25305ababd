"""Scales as data: a root pitch class and a set of intervals.

The names cover what blues and jazz players reach for: the blues scale (minor
pentatonic + b5), major blues, the pentatonics, the church modes, bebop dominant, and
the altered/diminished/whole-tone colours that :func:`improv.music.chords.chord_scale`
picks for altered chords.
"""

from __future__ import annotations

from dataclasses import dataclass

from improv.music.pitch import pc_name

SCALE_INTERVALS: dict[str, tuple[int, ...]] = {
    # blues vocabulary
    "blues": (0, 3, 5, 6, 7, 10),
    "major_blues": (0, 2, 3, 4, 7, 9),
    "minor_pentatonic": (0, 3, 5, 7, 10),
    "major_pentatonic": (0, 2, 4, 7, 9),
    "bebop_dominant": (0, 2, 4, 5, 7, 9, 10, 11),
    # modes of the major scale
    "ionian": (0, 2, 4, 5, 7, 9, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "aeolian": (0, 2, 3, 5, 7, 8, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
    # melodic and harmonic minor and their modes used over chords
    "melodic_minor": (0, 2, 3, 5, 7, 9, 11),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
    "lydian_augmented": (0, 2, 4, 6, 8, 9, 11),
    "lydian_dominant": (0, 2, 4, 6, 7, 9, 10),
    "mixolydian_b13": (0, 2, 4, 5, 7, 8, 10),
    "locrian_natural2": (0, 2, 3, 5, 6, 8, 10),
    "altered": (0, 1, 3, 4, 6, 8, 10),
    "phrygian_dominant": (0, 1, 4, 5, 7, 8, 10),
    # symmetric scales
    "whole_tone": (0, 2, 4, 6, 8, 10),
    "diminished_half_whole": (0, 1, 3, 4, 6, 7, 9, 10),
    "diminished_whole_half": (0, 2, 3, 5, 6, 8, 9, 11),
}
"""Intervals (semitones above the root) of every named scale."""

_ALIASES = {
    "major": "ionian",
    "minor": "aeolian",
    "natural_minor": "aeolian",
    "minor_blues": "blues",
    "super_locrian": "altered",
    "diminished": "diminished_whole_half",
    "half_whole": "diminished_half_whole",
    "whole_half": "diminished_whole_half",
}

SCALE_NAMES: tuple[str, ...] = tuple(SCALE_INTERVALS)


@dataclass(frozen=True, slots=True)
class Scale:
    """A root pitch class (0 = C) and the intervals above it (sorted, starting at 0)."""

    root: int
    intervals: tuple[int, ...]
    name: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.root <= 11:
            raise ValueError(f"scale root must be a pitch class 0..11: {self.root}")
        if (
            not self.intervals
            or self.intervals[0] != 0
            or list(self.intervals) != sorted(set(self.intervals))
            or self.intervals[-1] > 11
        ):
            raise ValueError(f"scale intervals must be sorted, unique, 0..11, from 0: {self}")

    @classmethod
    def named(cls, name: str, root: int) -> Scale:
        """A named scale (see :data:`SCALE_NAMES`; ``"bebop dominant"`` spellings too)."""
        key = name.strip().lower().replace("-", "_").replace(" ", "_")
        key = _ALIASES.get(key, key)
        if key not in SCALE_INTERVALS:
            raise ValueError(f"unknown scale {name!r} (known: {', '.join(SCALE_NAMES)})")
        return cls(root % 12, SCALE_INTERVALS[key], key)

    @property
    def pitch_classes(self) -> frozenset[int]:
        return frozenset((self.root + i) % 12 for i in self.intervals)

    def contains(self, pitch: int) -> bool:
        """Whether a MIDI pitch (or pitch class) belongs to the scale."""
        return (pitch - self.root) % 12 in self.intervals

    def pitches_in_range(self, lo: int, hi: int) -> tuple[int, ...]:
        """Every scale pitch in [lo, hi] (MIDI numbers), ascending."""
        return tuple(p for p in range(max(lo, 0), min(hi, 127) + 1) if self.contains(p))

    def nearest(self, pitch: int) -> int:
        """The scale pitch (in MIDI range) closest to ``pitch``; a tie goes down."""
        for distance in range(12):
            for candidate in (pitch - distance, pitch + distance):
                if 0 <= candidate <= 127 and self.contains(candidate):
                    return candidate
        raise AssertionError("unreachable: every scale has a pitch in each octave")

    def transposed(self, semitones: int) -> Scale:
        return Scale((self.root + semitones) % 12, self.intervals, self.name)

    def __str__(self) -> str:
        return f"{pc_name(self.root)} {self.name or 'scale'}".rstrip()
