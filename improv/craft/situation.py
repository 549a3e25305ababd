"""What an answer answers: the call, the chords and the answer's window, in jam beats.

The engine builds one from its ``AnswerRequest``, ``improv eval`` from a call/response
pair; the critic, the motif transforms and the dynamics read nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from improv.music.notes import ChordChange, Note, chord_in_force
from improv.music.pitch import Key
from improv.music.time import Metre


@dataclass(frozen=True, slots=True)
class Situation:
    """Positions are absolute beats (jam beats from bar 0, or a pair's own origin)."""

    call: tuple[Note, ...]  # the performer's phrase, sorted by onset
    chords: tuple[ChordChange, ...]  # in force over the call and the answer, sorted
    start: float  # the answer's window: no note before ``start``
    end: float  # nor sounding past ``end`` (the next turn)
    metre: Metre
    key: Key
    pitch_range: tuple[int, int] = (0, 127)
    mode: str = "trade"  # "trade" (a fixed slot to fill) or "phrase" (about the call's length)

    @property
    def length(self) -> float:
        return self.end - self.start

    def chord_at(self, beats: float) -> ChordChange | None:
        """The chord change in force at a position."""
        return chord_in_force(self.chords, beats)
