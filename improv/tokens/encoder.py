"""The streaming encoder: live note events in, the tokens they determine out."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence

from improv.music.chords import Chord
from improv.music.notes import (
    VELOCITY_BINS,
    ChordChange,
    Note,
)
from improv.music.time import TICKS_PER_BEAT, Metre, Swing, to_ticks
from improv.tokens.vocab import (
    _BAR,
    _DUR0,
    _DUR_MAX,
    _END,
    _PITCH0,
    _POS0,
    _VEL0,
    MAX_DUR_TICKS,
    VOCAB,
    Role,
    _check_metre,
)

ChordSource = Sequence[ChordChange] | Callable[[float], ChordChange | None]
"""Chord changes in time order, or a function giving the change in force at a position."""

_NEVER = 1 << 62


class StreamEncoder:
    """Live note events in, the tokens they determine out (see docs/tokens.md).

    Times are beats (floats, unquantised, swung when ``swing`` is given) in the caller's
    timeline; the stream starts at the bar line of ``start_bar``. Each method returns the
    tokens that became determined: a note-on gives its position, velocity and pitch at
    once, its durations follow at its note-off. Bar lines and chord changes come out when
    time passes them (``advance``), except while a note sounds: they follow its DUR tokens,
    since the grammar keeps a note's tokens together. Input is monophonic: a note-on while
    a note sounds ends that note at the new onset; a note-off for a note no longer sounding
    is ignored (so is one at the very tick where a note restruck its own pitch: it is the
    cut note's); an event earlier than what the stream has already passed is moved to the
    stream's present. Nothing here raises on odd timing.
    """

    def __init__(
        self,
        key: int,
        metre: Metre,
        chords: ChordSource = (),
        *,
        start_bar: int = 0,
        swing: Swing | None = None,
    ) -> None:
        self.key = key % 12
        self.metre = metre
        self._tpb = _check_metre(metre)
        self._origin = metre.bar_start(start_bar)
        self.start_bar = start_bar
        self._swing = swing
        # chord changes not yet emitted: ticks and tokens, consumed from index _ci
        self._cticks: list[int] = []
        self._ctoks: list[int] = []
        self._cchords: list[Chord | None] = []  # to re-token them when the key changes
        self._ci = 0
        self._chord_fn: Callable[[float], ChordChange | None] | None = None
        self._polled = 0  # callable source: ticks below this have been polled
        if callable(chords):
            self._chord_fn = chords
        else:
            self._load_chords(chords)
        self._chord = -1  # CHORD token in force in the stream, -1 before the first
        self._chord_obj: Chord | None = None  # and its chord
        self._bar = 0  # bars crossed since the stream start
        self._pos = -1  # last POS in this bar, -1 when none since the bar line
        self._cursor = 0  # absolute tick of the stream's present (last BAR or POS)
        self._pending = 0  # exclusive tick limit of bar lines/chords held back by a note
        self._on_pitch = -1  # sounding note, -1 when none
        self._on_tick = 0
        self._restrike = -1  # tick where the sounding note cut a note of its own pitch
        self._last_end = 0  # end tick of the last note (monophony floor)
        self._role: Role | None = None
        self._key_due = False  # a key change waits for the sounding note's DUR tokens

    # -- state for callers -----------------------------------------------------------
    @property
    def bar(self) -> int:
        """Bar (in the caller's numbering) the stream has reached."""
        return self.start_bar + self._bar

    @property
    def role(self) -> Role | None:
        """Role of the open phrase, None between phrases."""
        return self._role

    @property
    def sounding(self) -> int | None:
        """Pitch of the note whose duration is still open, if any."""
        return self._on_pitch if self._on_pitch >= 0 else None

    def header(self) -> list[int]:
        """The stream header: the key."""
        return [VOCAB.key(self.key)]

    def copy(self) -> StreamEncoder:
        """An independent encoder at the same point (to rewind to); the chord source is shared."""
        new = copy.copy(self)
        new._cticks = self._cticks[self._ci :]
        new._ctoks = self._ctoks[self._ci :]
        new._cchords = self._cchords[self._ci :]
        new._ci = 0
        return new

    def __deepcopy__(self, memo: dict[int, object]) -> StreamEncoder:
        return self.copy()  # never deep-copy a chord function (and what it is bound to)

    # -- events ----------------------------------------------------------------------
    def start_phrase(self, role: Role | str, at_beats: float) -> list[int]:
        """Open a phrase (closing an open one first); events before ``at_beats`` go first."""
        out: list[int] = []
        t = self._tick(at_beats)
        self._end_phrase(t, out)
        self._finish_note(t, out)
        self._flush(t, out)
        out.append(VOCAB.role(role))
        self._role = Role(role)
        return out

    def end_phrase(self, at_beats: float) -> list[int]:
        """Close the open phrase at ``at_beats`` (a sounding note ends there); else nothing."""
        out: list[int] = []
        self._end_phrase(self._tick(at_beats), out)
        return out

    def note_on(self, pitch: int, velocity: int, at_beats: float) -> list[int]:
        """A note starts: its POS (when the position moved), VEL and PITCH."""
        out: list[int] = []
        self._note_on(min(127, max(0, pitch)), velocity, self._tick(at_beats), out)
        return out

    def note_off(self, pitch: int, at_beats: float) -> list[int]:
        """A note ends: its DUR tokens, then what its sounding held back; else nothing."""
        out: list[int] = []
        if pitch == self._on_pitch:
            self._note_off(self._tick(at_beats), out)
        return out

    def change_key(self, key: int) -> list[int]:
        """The key changes now: its KEY token, and chord changes from here on relative to
        the new key. While a note sounds the token follows its DUR tokens (the grammar
        keeps a note's tokens together); the chord in force is restated a tick later,
        since its token depends on the key."""
        key %= 12
        if key == self.key:
            return []
        self.key = key
        ci = self._ci
        self._ctoks[ci:] = [VOCAB.chord_of(chord, key) for chord in self._cchords[ci:]]
        restate = self._cursor + 1  # a position of its own: CHORD follows a POS
        if self._chord >= 0 and (ci == len(self._cticks) or self._cticks[ci] > restate):
            self._cticks.insert(ci, restate)  # restate the chord in force
            self._ctoks.insert(ci, VOCAB.chord_of(self._chord_obj, key))
            self._cchords.insert(ci, self._chord_obj)
        if self._on_pitch >= 0:
            self._key_due = True
            return []
        return [VOCAB.key(key)]

    def change_metre(self, metre: Metre, at_beats: float, to_beats: float) -> list[int]:
        """The bar line at ``at_beats`` starts bars of ``metre``, and the caller's
        positions go on from ``to_beats`` (a bar line of ``metre``: a metre change makes
        the jam jump there, no time passing). A note sounding ends at the bar line; the
        bar line's tokens come out here. No token names the metre: the bar lines do."""
        out: list[int] = []
        at = self._tick(at_beats)
        self._finish_note(max(at, self._cursor), out)
        self._flush(at + 1, out)  # the bar line (and its chord) at ``at``, in the old metre
        tpb = _check_metre(metre)
        to = max(self._tick(to_beats), self._cursor)
        pos = self._pos if self._cursor == at else -1  # the bar line's chord: POS 0
        self.metre, self._tpb = metre, tpb
        self._bar = -(-to // tpb)  # bars count so that each bar line lies on k * tpb
        self._cursor = self._last_end = self._polled = self._bar * tpb + max(0, pos)
        self._pos, self._pending = pos, 0
        keep = [i for i in range(self._ci, len(self._cticks)) if self._cticks[i] >= self._cursor]
        self._cticks = [self._cticks[i] for i in keep]
        self._ctoks = [self._ctoks[i] for i in keep]
        self._cchords = [self._cchords[i] for i in keep]
        self._ci = 0
        return out

    def advance(self, to_beats: float) -> list[int]:
        """Time has reached ``to_beats``: bar lines and chord changes before it."""
        out: list[int] = []
        self._flush(self._tick(to_beats), out)
        return out

    # -- batch -----------------------------------------------------------------------
    def encode_notes(
        self,
        notes: Iterable[Note],
        role: Role | str | None = Role.PERFORMER,
        *,
        offset_beats: float = 0.0,
    ) -> list[int]:
        """A whole phrase, exactly as the live events of its notes would encode it.

        Notes are taken in onset order, each note-on followed by its note-off unless the
        next note starts first. The phrase opens at the first onset and ends at the last
        note's end. ``role`` None encodes the notes without phrase tokens. Times are
        grid-quantised and not unswung (batch input lies on the grid).
        """
        spans = sorted(
            (
                to_ticks(n.onset + offset_beats - self._origin),
                to_ticks(n.end + offset_beats - self._origin),
                n.pitch,
                n.velocity,
            )
            for n in notes
        )
        out: list[int] = []
        if not spans:
            return out
        if role is not None:
            t = spans[0][0]
            self._end_phrase(t, out)
            self._finish_note(t, out)
            self._flush(t, out)
            out.append(VOCAB.role(role))
            self._role = Role(role)
        end = spans[0][1]
        for i, (onset, off, pitch, velocity) in enumerate(spans):
            self._note_on(min(127, max(0, pitch)), velocity, onset, out)
            if i + 1 == len(spans) or off <= spans[i + 1][0]:
                self._note_off(off, out)
            end = max(end, off)
        if role is not None:
            self._end_phrase(end, out)
        else:
            self._finish_note(end, out)
        return out

    # -- internals -------------------------------------------------------------------
    def _tick(self, beats: float) -> int:
        if not math.isfinite(beats):
            return self._cursor
        if self._swing is not None:
            beats = self._swing.unrender(beats)
        return round((beats - self._origin) * TICKS_PER_BEAT)

    def _load_chords(self, changes: Iterable[ChordChange]) -> None:
        for change in sorted(changes, key=lambda c: c.onset):
            tick = max(0, to_ticks(change.onset - self._origin))
            token = VOCAB.chord_of(change.chord, self.key)
            if self._cticks and self._cticks[-1] == tick:
                self._ctoks[-1] = token  # the last change at one position wins
                self._cchords[-1] = change.chord
            else:
                self._cticks.append(tick)
                self._ctoks.append(token)
                self._cchords.append(change.chord)

    def _poll(self, limit: int) -> None:
        """Ask the chord function at every beat, every bar line and just before ``limit``."""
        fn = self._chord_fn
        if fn is None or limit <= self._polled:
            return
        start, last_point = self._polled, limit - 1
        beat = TICKS_PER_BEAT
        first_beat = start + (-(to_ticks(self._origin) + start)) % beat
        first_bar = -(-start // self._tpb) * self._tpb
        points = sorted(
            {*range(first_beat, last_point, beat), *range(first_bar, last_point, self._tpb)}
        )
        points.append(last_point)
        self._polled = limit
        for point in points:
            change = fn(self._origin + point / TICKS_PER_BEAT)
            if change is None:
                continue
            token = VOCAB.chord_of(change.chord, self.key)
            last = self._ctoks[-1] if self._ctoks else self._chord
            if token == last:
                continue
            tick = min(point, max(0, to_ticks(change.onset - self._origin)))
            if self._cticks:
                tick = max(tick, self._cticks[-1])
            self._cticks.append(tick)
            self._ctoks.append(token)
            self._cchords.append(change.chord)

    def _flush(self, limit: int, out: list[int]) -> None:
        """Emit bar lines and chord changes before tick ``limit`` (held while a note sounds)."""
        if self._on_pitch >= 0:
            if limit > self._pending:
                self._pending = limit
            return
        if self._chord_fn is not None:
            self._poll(limit)
        tpb = self._tpb
        cticks = self._cticks
        n = len(cticks)
        while True:
            c = cticks[self._ci] if self._ci < n else _NEVER
            next_bar = (self._bar + 1) * tpb
            if next_bar <= c:
                if next_bar >= limit:
                    break
                out.append(_BAR)
                self._bar += 1
                self._pos = -1
                self._cursor = next_bar
            else:
                if c >= limit:
                    break
                token = self._ctoks[self._ci]
                self._ci += 1
                if token != self._chord:
                    self._place(c, out)
                    out.append(token)
                    self._chord = token
                    self._chord_obj = self._cchords[self._ci - 1]
        if self._chord_fn is not None and self._ci > 256:
            del self._cticks[: self._ci], self._ctoks[: self._ci], self._cchords[: self._ci]
            self._ci = 0

    def _place(self, tick: int, out: list[int]) -> None:
        """Move the cursor to ``tick`` in the current bar (or stay, if it lies behind)."""
        pos = max(tick, self._cursor) - self._bar * self._tpb
        if pos != self._pos:
            out.append(_POS0 + pos)
            self._pos = pos
            self._cursor = self._bar * self._tpb + pos

    def _note_on(self, pitch: int, velocity: int, tick: int, out: list[int]) -> None:
        tick = max(tick, self._cursor, self._last_end)
        restrike = tick if pitch == self._on_pitch else -1
        if self._on_pitch >= 0:
            tick = max(tick, self._on_tick + 1)
            self._finish_note(tick, out)
        self._flush(tick + 1, out)
        self._place(tick, out)
        out.append(_VEL0 + min(VELOCITY_BINS - 1, max(0, velocity) // 16))
        out.append(_PITCH0 + pitch)
        self._on_pitch = pitch
        self._on_tick = self._cursor
        self._restrike = restrike

    def _note_off(self, tick: int, out: list[int]) -> None:
        """The sounding note's note-off, unless it is the late one of the note it cut."""
        if tick > self._restrike:
            self._finish_note(tick, out)

    def _finish_note(self, tick: int, out: list[int]) -> None:
        """End the sounding note (if any) at ``tick``: DUR tokens, then what it held back."""
        if self._on_pitch < 0:
            return
        dur = max(1, tick - self._on_tick)
        while dur > MAX_DUR_TICKS:
            out.append(_DUR_MAX)
            dur -= MAX_DUR_TICKS
        out.append(_DUR0 + dur)
        self._last_end = max(tick, self._on_tick + 1)
        self._on_pitch = -1
        if self._key_due:
            out.append(VOCAB.key(self.key))
            self._key_due = False
        if self._pending > self._cursor:
            self._flush(self._pending, out)

    def _end_phrase(self, tick: int, out: list[int]) -> None:
        if self._role is None:
            return
        self._finish_note(tick, out)
        self._flush(tick, out)
        out.append(_END)
        self._role = None
