"""The grammar of a token stream: which token may come next (the samplers' masks)."""

from __future__ import annotations

from enum import IntEnum
from functools import cache

from improv.music.time import Metre
from improv.tokens.vocab import (
    _K_BAR,
    _K_CHORD,
    _K_DUR,
    _K_END,
    _K_PITCH,
    _K_POS,
    _K_ROLE,
    _K_VEL,
    _KINDS,
    _VALUES,
    DEFAULT_VELOCITY_BIN,
    MAX_DUR_TICKS,
    ROLES,
    VOCAB,
    Kind,
    Role,
    _check_metre,
)


class Phase(IntEnum):
    """Where a stream stands in the grammar: it decides which kinds may come next."""

    IDLE = 0  # no free position: a bar line, a position or a marker comes next
    READY = 1  # the position is free for a note: VEL too (e.g. after POS CHORD)
    POS = 2  # just after POS at a free position: CHORD or VEL
    POS_BUSY = 3  # just after POS inside the last note: CHORD only
    VEL = 4  # PITCH
    PITCH = 5  # DUR
    LONG_DUR = 6  # after DUR_48: more DUR, or what IDLE allows


_OPEN = frozenset({Kind.KEY, Kind.ROLE, Kind.PHRASE_END, Kind.BAR, Kind.POS})
ALLOWED_KINDS: tuple[frozenset[Kind], ...] = (
    _OPEN,
    _OPEN | {Kind.VEL},
    frozenset({Kind.CHORD, Kind.VEL}),
    frozenset({Kind.CHORD}),
    frozenset({Kind.PITCH}),
    frozenset({Kind.DUR}),
    _OPEN | {Kind.DUR},
)
"""Kinds the grammar allows next, indexed by :class:`Phase`."""


@cache
def allowed_mask(phase: Phase) -> tuple[bool, ...]:
    """Per token id, whether the grammar allows it in ``phase`` (computed once per phase)."""
    kinds = ALLOWED_KINDS[phase]
    return tuple(kind in kinds for kind in VOCAB.kinds)


_SIZE = VOCAB.size
_P_IDLE, _P_READY, _P_POS, _P_POS_BUSY, _P_VEL, _P_PITCH, _P_LONG_DUR = (int(p) for p in Phase)


class GrammarState:
    """Follows a token stream: grammar phase, bar, position, chord, phrase and last note.

    Samplers feed every token (given or sampled) and build masks from ``phase``
    (:func:`allowed_mask`) and the fields: a POS for a new note must lie in
    ``first_note_pos() .. ticks_per_bar - 1``, phrase length is ``bar - phrase_bar``.
    Ticks (``tick``, ``note_end``...) count from the stream start. Ill-formed input never
    raises: a PITCH without VEL takes the last velocity, a position that goes backwards is
    ignored, a position past the bar is clamped to its last tick, an event before any POS
    in a bar lies on the bar line, a note left without DUR lasts one tick, a stray DUR is
    ignored.
    """

    __slots__ = (
        "bar",
        "chord",
        "key",
        "metre",
        "note_dur",
        "note_end",
        "note_pitch",
        "note_tick",
        "note_velocity",
        "phase",
        "phrase_bar",
        "phrase_notes",
        "phrase_tick",
        "pos",
        "role",
        "tick",
        "ticks_per_bar",
        "velocity",
    )

    def __init__(self, metre: Metre | None = None, key: int = 0) -> None:
        self.metre = metre or Metre()
        self.ticks_per_bar = _check_metre(self.metre)
        self.key = key % 12
        self.phase = _P_IDLE
        self.bar = 0
        self.pos = -1  # position in the bar, -1 before the first POS after a bar line
        self.tick = 0  # the stream's present: absolute tick of the last BAR or POS
        self.chord = -1  # CHORD token in force, -1 before the first
        self.role: Role | None = None
        self.phrase_bar = 0  # bar, tick and note count of the open phrase
        self.phrase_tick = 0
        self.phrase_notes = 0
        self.velocity = DEFAULT_VELOCITY_BIN  # last velocity bin
        self.note_pitch = -1  # note being built (PITCH seen, DUR open), -1 when none
        self.note_velocity = DEFAULT_VELOCITY_BIN
        self.note_tick = -1  # onset of the last note
        self.note_dur = 0
        self.note_end = 0  # end of the last completed note

    def copy(self) -> GrammarState:
        """An independent copy (for speculative drafts)."""
        new = GrammarState.__new__(GrammarState)
        for name in GrammarState.__slots__:
            setattr(new, name, getattr(self, name))
        return new

    def change_metre(self, metre: Metre, bar: int) -> None:
        """Bars of ``metre`` from the bar line just fed, which is bar ``bar`` of the
        stream in the new metre (its :meth:`StreamEncoder.change_metre` numbering): ticks
        keep counting from the stream start, so decoded positions stay the caller's."""
        tpb = _check_metre(metre)
        shift = bar * tpb - self.bar * self.ticks_per_bar
        self.metre, self.ticks_per_bar = metre, tpb
        self.phrase_bar += bar - self.bar
        self.bar = bar
        self.tick += shift
        self.phrase_tick += shift
        self.note_end += shift
        if self.note_tick >= 0:
            self.note_tick += shift

    def first_note_pos(self) -> int:
        """Smallest POS value where a new note may start in this bar (may be past the bar)."""
        return max(self.pos + 1, self.note_end - self.bar * self.ticks_per_bar)

    def feed(self, token: int) -> None:
        """Advance by one token."""
        if not 0 <= token < _SIZE:
            raise ValueError(f"token id {token} outside 0..{_SIZE - 1}")
        kind = _KINDS[token]
        value = _VALUES[token]
        phase = self.phase
        if kind == _K_DUR:
            if phase in (_P_PITCH, _P_LONG_DUR):
                self.note_dur += value
                if value < MAX_DUR_TICKS:
                    self._complete()
                else:
                    self.phase = _P_LONG_DUR
            return
        if kind == 0:  # PAD
            return
        if phase in (_P_PITCH, _P_LONG_DUR):
            self._complete()
        if kind == _K_PITCH:
            if self.pos < 0:
                self.pos = 0
            if self.role is not None:
                self.phrase_notes += 1
            self.note_pitch = value
            self.note_velocity = self.velocity
            self.note_tick = self.tick
            self.note_dur = 0
            self.phase = _P_PITCH
            self._note_started(value, self.velocity, self.tick)
        elif kind == _K_VEL:
            if self.pos < 0:
                self.pos = 0
            self.velocity = value
            self.phase = _P_VEL
        elif kind == _K_POS:
            pos = min(value, self.ticks_per_bar - 1)
            if pos > self.pos:
                self.pos = pos
                self.tick = self.bar * self.ticks_per_bar + pos
            self.phase = _P_POS if self.tick >= self.note_end else _P_POS_BUSY
        elif kind == _K_BAR:
            self.bar += 1
            self.pos = -1
            self.tick = self.bar * self.ticks_per_bar
            self.phase = _P_IDLE
            self._bar_crossed()
        else:
            if kind == _K_CHORD:
                if self.pos < 0:
                    self.pos = 0
                self.chord = token
                self._chord_stated(token)
            elif kind == _K_ROLE:
                if self.role is not None:
                    self._phrase_ended(self.role)
                self.role = ROLES[value]
                self.phrase_bar = self.bar
                self.phrase_tick = self.tick
                self.phrase_notes = 0
                self._phrase_started(self.role)
            elif kind == _K_END:
                if self.role is not None:
                    self._phrase_ended(self.role)
                    self.role = None
            else:  # KEY
                self.key = value
            self.phase = _P_READY if self.pos >= 0 and self.tick >= self.note_end else _P_IDLE

    def _complete(self) -> None:
        """The open note's duration is known: close it."""
        dur = max(1, self.note_dur)
        self.note_end = self.note_tick + dur
        pitch = self.note_pitch
        self.note_pitch = -1
        self.phase = _P_IDLE
        self._note_ended(pitch, self.note_velocity, self.note_tick, dur)

    # Hooks for the decoder; the bare grammar ignores them.
    def _note_started(self, pitch: int, velocity_bin: int, tick: int) -> None:
        pass

    def _note_ended(self, pitch: int, velocity_bin: int, tick: int, dur: int) -> None:
        pass

    def _bar_crossed(self) -> None:
        pass

    def _chord_stated(self, token: int) -> None:
        pass

    def _phrase_started(self, role: Role) -> None:
        pass

    def _phrase_ended(self, role: Role) -> None:
        pass
