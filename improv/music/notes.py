"""Notes, phrases and solos: the values every layer of improv passes around.

Onsets and durations are in beats (quarter notes) from a reference point: a solo's
bar 0, beat 0, or a phrase's own reference bar. They are floats at the API, and
"grid-quantised" means every onset and duration is a whole number of ticks
(see :mod:`improv.music.time`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from improv.music.chords import Chord
from improv.music.time import Metre, quantize_beats, to_beats, to_ticks

VELOCITY_BINS = 8
"""Velocity is carried in 8 bins of 16 steps: enough for dynamics, few tokens."""


def velocity_bin(velocity: int) -> int:
    """Bin index (0..7) of a MIDI velocity (1..127)."""
    return min(VELOCITY_BINS - 1, max(0, velocity) // 16)


def bin_velocity(index: int) -> int:
    """Representative velocity of a bin: its centre, never 0 (which would be a note-off)."""
    return min(127, index * 16 + 8)


@dataclass(frozen=True, slots=True)
class Note:
    """One note: MIDI pitch, MIDI velocity, onset and duration in beats."""

    pitch: int
    velocity: int
    onset: float
    duration: float

    def __post_init__(self) -> None:
        if not 0 <= self.pitch <= 127:
            raise ValueError(f"pitch out of MIDI range: {self.pitch}")
        if not 1 <= self.velocity <= 127:
            raise ValueError(f"velocity out of range 1..127: {self.velocity}")
        if self.duration <= 0:
            raise ValueError(f"duration must be positive: {self.duration}")

    @property
    def end(self) -> float:
        return self.onset + self.duration

    def quantized(self) -> Note:
        """This note on the tick grid, at least one tick long, velocity at its bin centre."""
        onset = quantize_beats(self.onset)
        duration = to_beats(max(1, to_ticks(self.duration)))
        return Note(self.pitch, bin_velocity(velocity_bin(self.velocity)), onset, duration)

    def shifted(self, beats: float) -> Note:
        return replace(self, onset=self.onset + beats)


@dataclass(frozen=True, slots=True)
class ChordChange:
    """A chord coming into force at a position (beats); ``chord`` None means no chord (NC)."""

    onset: float
    symbol: str
    chord: Chord | None


def chord_in_force(changes: Sequence[ChordChange], beats: float) -> ChordChange | None:
    """The last change at or before a position (changes sorted by onset), or None."""
    current: ChordChange | None = None
    for change in changes:
        if change.onset > beats + 1e-9:
            break
        current = change
    return current


@dataclass(frozen=True, slots=True)
class Phrase:
    """A run of notes, sorted by onset, with the chords under them.

    ``notes`` onsets are relative to the bar line of ``start_bar`` in the enclosing
    solo or jam; ``chords`` use the same reference.
    """

    notes: tuple[Note, ...]
    chords: tuple[ChordChange, ...] = ()
    metre: Metre = field(default_factory=Metre)
    start_bar: int = 0

    @classmethod
    def of(
        cls,
        notes: Iterable[Note],
        chords: Iterable[ChordChange] = (),
        metre: Metre | None = None,
        start_bar: int = 0,
    ) -> Phrase:
        return cls(
            tuple(sorted(notes, key=lambda n: (n.onset, n.pitch))),
            tuple(sorted(chords, key=lambda c: c.onset)),
            metre or Metre(),
            start_bar,
        )

    @property
    def onset(self) -> float:
        return self.notes[0].onset if self.notes else 0.0

    @property
    def end(self) -> float:
        return max((n.end for n in self.notes), default=0.0)

    @property
    def duration(self) -> float:
        return self.end - self.onset

    def quantized(self) -> Phrase:
        return replace(self, notes=tuple(n.quantized() for n in self.notes))

    def with_notes(self, notes: Iterable[Note]) -> Phrase:
        return replace(self, notes=tuple(sorted(notes, key=lambda n: (n.onset, n.pitch))))


@dataclass(frozen=True, slots=True)
class Solo:
    """A whole solo on the beat grid: notes and chord changes from bar 0, beat 0.

    ``key`` is a pitch class (0 = C) and ``mode`` ``"major"`` or ``"minor"``;
    ``sections`` are the annotated form parts as (label, start bar, bars), when known.
    """

    notes: tuple[Note, ...]
    chords: tuple[ChordChange, ...]
    metre: Metre
    key: int
    mode: str = "major"
    tempo_bpm: float = 120.0
    title: str = ""
    performer: str = ""
    instrument: str = ""
    blues: bool = False
    source: str = ""
    sections: tuple[tuple[str, int, int], ...] = ()
    first_bar: int = 0
