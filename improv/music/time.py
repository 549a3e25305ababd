"""Metrical time: beats, bars, metre, swing and the tick grid.

A *beat* is always one quarter note (as in the WJazzD beat-grid files), so a 6/8 bar
lasts 3 beats. Positions are kept in beats (floats) at the API and in integer *ticks*
on the grid inside: 12 ticks per beat hold sixteenths (3 ticks) as well as triplet and
swung eighths (4 and 8 ticks), so every grid position is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

TICKS_PER_BEAT = 12
"""Grid resolution: least common multiple of sixteenths (4/beat) and triplets (3/beat)."""


def to_ticks(beats: float) -> int:
    """Nearest grid tick of a position or length given in beats."""
    return round(beats * TICKS_PER_BEAT)


def to_beats(ticks: int) -> float:
    """Beats of a tick count; exact for every grid position."""
    return ticks / TICKS_PER_BEAT


def quantize_beats(beats: float) -> float:
    """Snap a position in beats to the nearest grid tick."""
    return to_beats(to_ticks(beats))


@dataclass(frozen=True, slots=True)
class Metre:
    """A time signature. ``beats_per_bar`` counts quarter-note beats."""

    numerator: int = 4
    denominator: int = 4

    def __post_init__(self) -> None:
        if self.numerator < 1 or self.numerator > 32:
            raise ValueError(f"metre numerator out of range: {self.numerator}")
        if self.denominator not in (1, 2, 4, 8, 16):
            raise ValueError(f"metre denominator must be a power of two: {self.denominator}")

    @property
    def beats_per_bar(self) -> float:
        return self.numerator * 4 / self.denominator

    @property
    def ticks_per_bar(self) -> int:
        return to_ticks(self.beats_per_bar)

    def bar_of(self, beats: float) -> int:
        """Zero-based bar index holding a position (in beats from bar 0, beat 0)."""
        return to_ticks(beats) // self.ticks_per_bar

    def beat_in_bar(self, beats: float) -> float:
        """Position inside its bar, in beats from the bar line."""
        return to_beats(to_ticks(beats) % self.ticks_per_bar)

    def bar_start(self, bar: int) -> float:
        """Position of a bar line in beats."""
        return bar * self.beats_per_bar

    def __str__(self) -> str:
        return f"{self.numerator}/{self.denominator}"

    @classmethod
    def parse(cls, text: str) -> Metre:
        """Read ``"4/4"``-style text; a clear error names what is wrong."""
        try:
            num, den = text.strip().split("/")
            return cls(int(num), int(den))
        except ValueError as exc:
            raise ValueError(f"not a metre: {text!r} (expected e.g. 4/4)") from exc


@dataclass(frozen=True, slots=True)
class Swing:
    """Swing feel: the long/short ratio of a pair of eighths (1.0 straight, 2.0 triplet).

    The grid stays straight; swing only moves the off-beat eighth when rendering, so the
    token language and the models never see it.
    """

    ratio: float = 1.0

    def __post_init__(self) -> None:
        if not 1.0 <= self.ratio <= 4.0:
            raise ValueError(f"swing ratio must lie in [1, 4]: {self.ratio}")

    def render(self, beats: float) -> float:
        """Map a straight grid position to its swung performance position."""
        whole = int(beats // 1)
        frac = beats - whole
        split = self.ratio / (1.0 + self.ratio)  # where the swung off-beat falls
        if frac <= 0.5:
            return whole + frac * 2.0 * split
        return whole + split + (frac - 0.5) * 2.0 * (1.0 - split)

    def unrender(self, beats: float) -> float:
        """Inverse of :meth:`render`: a performed position back to the straight grid."""
        whole = int(beats // 1)
        frac = beats - whole
        split = self.ratio / (1.0 + self.ratio)
        if frac <= split:
            return whole + frac / (2.0 * split)
        return whole + 0.5 + (frac - split) / (2.0 * (1.0 - split))


@dataclass(frozen=True, slots=True)
class Tempo:
    """Beats per minute, with conversions between beats and seconds."""

    bpm: float = 120.0

    def __post_init__(self) -> None:
        if not 20.0 <= self.bpm <= 400.0:
            raise ValueError(f"tempo must lie in [20, 400] BPM: {self.bpm}")

    @property
    def seconds_per_beat(self) -> float:
        return 60.0 / self.bpm

    def to_seconds(self, beats: float) -> float:
        return beats * 60.0 / self.bpm

    def to_beats(self, seconds: float) -> float:
        return seconds * self.bpm / 60.0
