"""What the band hears of the soloists: density, register and loudness of the last bars.

Both the performer and improv are soloists to the band (whoever has the slot). The
:class:`Listener` keeps their recent note-ons (jam positions in beats) and sums them up
as a :class:`Listening`; the parts read it to swell with a climbing, dense solo, drop
when the soloist goes quiet, and keep the piano out of the soloist's register.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from statistics import median

WINDOW_BEATS = 8.0
"""How far back the band listens: two bars of 4/4."""


@dataclass(frozen=True, slots=True)
class Listening:
    """The soloists over the last :data:`WINDOW_BEATS`: notes per beat, lowest and
    highest pitch (None when silent), mean velocity."""

    density: float = 0.0
    low: int | None = None
    high: int | None = None
    velocity: float = 0.0

    @property
    def silent(self) -> bool:
        return self.low is None

    @property
    def energy(self) -> float:
        """0 (silence) to 1 (dense, high and loud): what the band's dynamics follow."""
        if self.low is None or self.high is None:
            return 0.0
        busy = min(1.0, self.density / 3.0)
        loud = min(1.0, self.velocity / 115.0)
        height = min(1.0, max(0.0, ((self.low + self.high) / 2.0 - 55.0) / 30.0))
        return 0.4 * busy + 0.4 * loud + 0.2 * height


class Listener:
    """Recent note-ons of the soloists; :meth:`recent` sums up a window of them."""

    def __init__(self, capacity: int = 512) -> None:
        self._notes: deque[tuple[float, int, int]] = deque(maxlen=capacity)

    def hear(self, pitch: int, velocity: int, at: float) -> None:
        """A note-on at jam position ``at`` (beats); note-offs (velocity 0) are ignored."""
        if velocity > 0:
            self._notes.append((at, pitch, velocity))

    def recent(self, now: float, window: float = WINDOW_BEATS) -> Listening:
        """The notes that started in ``(now - window, now]``."""
        notes = [(p, v) for at, p, v in self._notes if now - window < at <= now + 1e-9]
        if not notes:
            return Listening()
        pitches = sorted(p for p, _ in notes)
        low = pitches[
            len(pitches) // 10
        ]  # the 10th percentile: one stray low note is not a register
        return Listening(
            density=len(notes) / window,
            low=low,
            high=pitches[-1],
            velocity=float(median(v for _, v in notes)),
        )

    def clear(self) -> None:
        self._notes.clear()
