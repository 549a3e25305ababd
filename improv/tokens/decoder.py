"""The streaming decoder: tokens in, playable note events out as soon as they are determined."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from improv.music.chords import Chord, parse_chord
from improv.music.notes import (
    ChordChange,
    Note,
    bin_velocity,
)
from improv.music.pitch import pc_name
from improv.music.time import TICKS_PER_BEAT, Metre
from improv.tokens.grammar import _P_LONG_DUR, _P_PITCH, GrammarState
from improv.tokens.vocab import _REPRESENTATIVE_SUFFIX, VOCAB, Role


@dataclass(frozen=True, slots=True)
class NoteStart:
    """A note can be scheduled: its pitch, velocity and onset are known (at its PITCH)."""

    pitch: int
    velocity: int
    onset: float


@dataclass(frozen=True, slots=True)
class NoteEnd:
    """A note's duration is complete."""

    note: Note


@dataclass(frozen=True, slots=True)
class BarLine:
    """The stream crossed into ``bar`` (caller's numbering), which starts at ``at``."""

    bar: int
    at: float


@dataclass(frozen=True, slots=True)
class PhraseStart:
    role: Role
    at: float


@dataclass(frozen=True, slots=True)
class PhraseEnd:
    """A phrase closed; ``at`` is the later of the stream's present and its last note's end."""

    role: Role
    at: float


DecodedEvent = NoteStart | NoteEnd | BarLine | ChordChange | PhraseStart | PhraseEnd


@cache
def chord_change_parts(token: int, key: int) -> tuple[str, Chord | None]:
    """Symbol and representative chord of a CHORD token in a key."""
    parts = VOCAB.chord_parts(token)
    if parts is None:
        return "NC", None
    rel, quality = parts
    symbol = pc_name((key + rel) % 12) + _REPRESENTATIVE_SUFFIX[quality]
    return symbol, parse_chord(symbol)


class StreamDecoder(GrammarState):
    """Tokens in, playable events out as soon as they are determined.

    ``NoteStart`` comes at a note's PITCH (the note-on can be scheduled); ``NoteEnd`` at
    its last DUR: at once for a DUR shorter than 4 beats (the canonical encoding puts
    DUR_48 only before further DURs), else at the next non-DUR token or :meth:`flush`.
    Onsets are beats in the caller's timeline: the stream starts at the bar line of
    ``start_bar``. Decoded chords are a representative of their class (C7, C-7, Cj7 ...).
    """

    __slots__ = ("_events", "_origin", "start_bar")

    def __init__(self, key: int = 0, metre: Metre | None = None, start_bar: int = 0) -> None:
        super().__init__(metre, key)
        self.start_bar = start_bar
        self._origin = self.metre.bar_start(start_bar)
        self._events: list[DecodedEvent] = []

    def beats(self, tick: int) -> float:
        """A stream tick in the caller's beats."""
        return self._origin + tick / TICKS_PER_BEAT

    def feed(self, token: int) -> list[DecodedEvent]:  # type: ignore[override]
        """Advance by one token; the events it determined."""
        GrammarState.feed(self, token)
        events = self._events
        if events:
            self._events = []
        return events

    def feed_all(self, tokens: Iterable[int]) -> list[DecodedEvent]:
        """Feed many tokens; all events they determined, in order."""
        for token in tokens:
            GrammarState.feed(self, token)
        events = self._events
        self._events = []
        return events

    def flush(self) -> list[DecodedEvent]:
        """The stream stops here: close a note whose duration is still open."""
        if self.phase in (_P_PITCH, _P_LONG_DUR):
            self._complete()
        events = self._events
        self._events = []
        return events

    def _note_started(self, pitch: int, velocity_bin: int, tick: int) -> None:
        self._events.append(NoteStart(pitch, bin_velocity(velocity_bin), self.beats(tick)))

    def _note_ended(self, pitch: int, velocity_bin: int, tick: int, dur: int) -> None:
        note = Note(pitch, bin_velocity(velocity_bin), self.beats(tick), dur / TICKS_PER_BEAT)
        self._events.append(NoteEnd(note))

    def _bar_crossed(self) -> None:
        self._events.append(BarLine(self.start_bar + self.bar, self.beats(self.tick)))

    def _chord_stated(self, token: int) -> None:
        symbol, chord = chord_change_parts(token, self.key)
        self._events.append(ChordChange(self.beats(self.tick), symbol, chord))

    def _phrase_started(self, role: Role) -> None:
        self._events.append(PhraseStart(role, self.beats(self.tick)))

    def _phrase_ended(self, role: Role) -> None:
        self._events.append(PhraseEnd(role, self.beats(max(self.tick, self.note_end))))
