"""What every part of the rhythm section is given and gives back: one bar at a time.

A :class:`BarContext` is everything a player needs to play the next bar: where it is in
the form (the chord at any position, which bar of the chorus, whether a chorus or a
trade slot ends with it), the tempo and swing, the band's mode and what the soloists
are doing (:class:`~improv.craft.band.listening.Listening`). A :class:`Part` turns it
into notes, at *performed* positions (beats from bar 0, swing already applied), so the
engine only has to turn beats into times. Parts may remember (the bass its next target,
the piano its last voicing) but never see a port, a thread or the clock: a learned
model can replace any of them behind the same protocol.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from improv.craft.band.listening import Listening
from improv.music.chords import Chord
from improv.music.notes import Note
from improv.music.time import Metre, Swing

MODES = ("sparse", "full")
"""``--band-mode``: ``sparse`` is a two-feel bass, light comping; ``full`` walks and comps."""


@dataclass(frozen=True, slots=True)
class BarContext:
    """One bar to play (jam bar ``bar``, from beat ``bar_start``)."""

    bar: int
    bar_start: float
    metre: Metre
    chord_at: Callable[[float], Chord | None]  # the chord at a jam position (beats)
    chorus_bar: int = 0  # this bar's index in its chorus
    chorus_bars: int = 12
    slot_ends: bool = False  # the last bar of a trade slot: the handover follows
    slot_starts: bool = False  # the first bar of a trade slot
    tempo: float = 120.0
    swing: float = 1.0
    mode: str = "full"
    listening: Listening = field(default_factory=Listening)
    seed: int = 0

    @property
    def beats(self) -> float:
        return self.metre.beats_per_bar

    @property
    def chorus_ends(self) -> bool:
        """The next bar starts a chorus: the drums fill into it."""
        return self.chorus_bar == self.chorus_bars - 1

    @property
    def chorus_starts(self) -> bool:
        return self.chorus_bar == 0

    def at(self, position: float) -> float:
        """A straight position in the bar (beats) where it sounds: swung, from bar 0."""
        return self.bar_start + Swing(self.swing).render(position)

    def chord(self, position: float) -> Chord | None:
        """The chord at a position in this bar (may lie past the bar line)."""
        return self.chord_at(self.bar_start + position)

    def rng(self, part: str) -> random.Random:
        """A generator for this part and bar: the same bar plays the same way again."""
        return random.Random(f"{self.seed}:{part}:{self.bar}")


class Part(Protocol):
    """One player of the rhythm section."""

    name: str

    def plan(self, bar: BarContext) -> list[Note]:
        """The notes of one bar at performed positions (beats from bar 0); called for
        consecutive bars (after :meth:`reset`, from any bar; a form or key change plans
        again from the bar where it lands)."""
        ...

    def program(self, tempo: float) -> int | None:
        """The General MIDI program (0-127) it sounds best on at this tempo, or None."""
        ...

    def reset(self) -> None:
        """Forget what the last bar left (the transport jumped or stopped)."""
        ...


def level(listening: Listening, mode: str) -> float:
    """The band's dynamic level, 0.55 (nobody plays) to 1.15 (a dense, high, loud solo):
    a multiplier of each part's velocities. ``sparse`` sits a little lower."""
    value = 0.6 + 0.55 * listening.energy
    return value * (0.9 if mode == "sparse" else 1.0)


def velocity(base: float, scale: float, rng: random.Random, spread: float = 5.0) -> int:
    """A player's velocity: ``base`` at the level ``scale``, never flat, never 127."""
    return max(1, min(124, round(base * scale + rng.uniform(-spread, spread))))
