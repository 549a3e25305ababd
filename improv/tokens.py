"""The token language improv's models speak, encoded and decoded as the music happens.

One vocabulary serves performer and agent alike, so a model learns how one player answers
another. A stream reads left to right in time: ``BAR`` crosses a bar line, ``POS_t`` sets the
position in the bar (ticks), ``CHORD_r_q`` states the chord in force (root relative to the
key), a note is ``VEL PITCH DUR+``, and ``PHRASE_PERFORMER`` / ``PHRASE_AGENT`` ...
``PHRASE_END`` delimit phrases. Encoding is incremental (live note events in, the tokens
they determine out, never waiting for the future) and so is decoding (tokens in, playable
note events out as soon as they are determined). Pure: no torch, mido or asyncio.
See ``docs/tokens.md`` for the grammar and an example.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from functools import cache
from typing import Literal

from improv.music.chords import Chord, QualityClass, parse_chord
from improv.music.notes import (
    VELOCITY_BINS,
    ChordChange,
    Note,
    Phrase,
    Solo,
    bin_velocity,
)
from improv.music.pitch import pc_name
from improv.music.time import TICKS_PER_BEAT, Metre, Swing, to_ticks

TOKENIZER_VERSION = 1
"""Bumped whenever the vocabulary or the grammar changes meaning; checkpoints record it."""

MAX_BAR_TICKS = 12 * TICKS_PER_BEAT
"""Longest bar the positions cover: 12 beats (144 ticks), enough for 12/8 and 9/4."""

MAX_DUR_TICKS = 4 * TICKS_PER_BEAT
"""Longest single DUR token (4 beats); longer notes take several DUR tokens that add up."""

DEFAULT_VELOCITY_BIN = 5
"""Velocity bin used for a PITCH that arrives without a VEL (a model's ill-formed sample)."""

CHORD_QUALITIES: tuple[QualityClass, ...] = (
    QualityClass.MAJOR,
    QualityClass.DOMINANT,
    QualityClass.MINOR,
    QualityClass.HALF_DIMINISHED,
    QualityClass.DIMINISHED,
    QualityClass.AUGMENTED,
    QualityClass.SUSPENDED,
)
"""Quality classes in vocabulary order (pinned here so the ids never move silently)."""

_QUALITY_INDEX = {q: i for i, q in enumerate(CHORD_QUALITIES)}

# A representative chord per quality class, for decoding (WJazzD spelling, parse_chord reads it).
_REPRESENTATIVE_SUFFIX = {
    QualityClass.MAJOR: "j7",
    QualityClass.DOMINANT: "7",
    QualityClass.MINOR: "-7",
    QualityClass.HALF_DIMINISHED: "m7b5",
    QualityClass.DIMINISHED: "o7",
    QualityClass.AUGMENTED: "+",
    QualityClass.SUSPENDED: "sus7",
}


class Kind(IntEnum):
    """Token kinds, in vocabulary order."""

    PAD = 0
    KEY = 1
    ROLE = 2
    PHRASE_END = 3
    BAR = 4
    POS = 5
    CHORD = 6
    VEL = 7
    PITCH = 8
    DUR = 9


class Role(StrEnum):
    """Who plays a phrase."""

    PERFORMER = "performer"
    AGENT = "agent"


ROLES: tuple[Role, ...] = (Role.PERFORMER, Role.AGENT)


class Vocab:
    """Token ids by kind: contiguous ranges, name tables and per-id kind/value lookups.

    ``kinds[id]`` and ``values[id]`` are plain tuples so hot loops index them directly;
    ``values`` holds the key, role index, position, chord index (``rel_root * 7 +
    quality``, ``84`` for NC), velocity bin, pitch or duration in ticks.
    """

    def __init__(self) -> None:
        names: list[str] = []
        kinds: list[Kind] = []
        values: list[int] = []

        def add(kind: Kind, entries: Iterable[tuple[str, int]]) -> range:
            start = len(names)
            for name, value in entries:
                names.append(name)
                kinds.append(kind)
                values.append(value)
            return range(start, len(names))

        self.pad = add(Kind.PAD, [("PAD", 0)]).start
        self.key_ids = add(Kind.KEY, ((f"KEY_{k}", k) for k in range(12)))
        self.role_ids = add(Kind.ROLE, ((f"PHRASE_{r.name}", i) for i, r in enumerate(ROLES)))
        self.phrase_end = add(Kind.PHRASE_END, [("PHRASE_END", 0)]).start
        self.bar = add(Kind.BAR, [("BAR", 0)]).start
        self.pos_ids = add(Kind.POS, ((f"POS_{t}", t) for t in range(MAX_BAR_TICKS)))
        self.chord_ids = add(
            Kind.CHORD,
            [
                *(
                    (f"CHORD_{r}_{q.value}", r * len(CHORD_QUALITIES) + i)
                    for r in range(12)
                    for i, q in enumerate(CHORD_QUALITIES)
                ),
                ("CHORD_NC", 12 * len(CHORD_QUALITIES)),
            ],
        )
        self.chord_nc = self.chord_ids.stop - 1
        self.vel_ids = add(Kind.VEL, ((f"VEL_{b}", b) for b in range(VELOCITY_BINS)))
        self.pitch_ids = add(Kind.PITCH, ((f"PITCH_{p}", p) for p in range(128)))
        self.dur_ids = add(Kind.DUR, ((f"DUR_{d}", d) for d in range(1, MAX_DUR_TICKS + 1)))
        self.names: tuple[str, ...] = tuple(names)
        self.kinds: tuple[Kind, ...] = tuple(kinds)
        self.values: tuple[int, ...] = tuple(values)
        self.size = len(names)
        self._ids = {name: i for i, name in enumerate(names)}
        self._ranges = {
            Kind.PAD: range(self.pad, self.pad + 1),
            Kind.KEY: self.key_ids,
            Kind.ROLE: self.role_ids,
            Kind.PHRASE_END: range(self.phrase_end, self.phrase_end + 1),
            Kind.BAR: range(self.bar, self.bar + 1),
            Kind.POS: self.pos_ids,
            Kind.CHORD: self.chord_ids,
            Kind.VEL: self.vel_ids,
            Kind.PITCH: self.pitch_ids,
            Kind.DUR: self.dur_ids,
        }

    def __len__(self) -> int:
        return self.size

    # -- ids of values ---------------------------------------------------------------
    def ids(self, kind: Kind) -> range:
        """The contiguous id range of a kind."""
        return self._ranges[kind]

    def key(self, pc: int) -> int:
        return self.key_ids.start + pc % 12

    def role(self, role: Role | str) -> int:
        return self.role_ids.start + ROLES.index(Role(role))

    def pos(self, tick: int) -> int:
        if not 0 <= tick < MAX_BAR_TICKS:
            raise ValueError(f"position {tick} outside 0..{MAX_BAR_TICKS - 1} ticks")
        return self.pos_ids.start + tick

    def chord(self, rel_root: int, quality: QualityClass) -> int:
        """CHORD token of a root (semitones above the key) and a quality class."""
        return (
            self.chord_ids.start + (rel_root % 12) * len(CHORD_QUALITIES) + _QUALITY_INDEX[quality]
        )

    def chord_of(self, chord: Chord | None, key: int) -> int:
        """CHORD token of a parsed chord (None: no chord) in a key."""
        if chord is None:
            return self.chord_nc
        return self.chord(chord.root - key, chord.quality_class)

    def vel(self, velocity_bin: int) -> int:
        if not 0 <= velocity_bin < VELOCITY_BINS:
            raise ValueError(f"velocity bin {velocity_bin} outside 0..{VELOCITY_BINS - 1}")
        return self.vel_ids.start + velocity_bin

    def pitch(self, pitch: int) -> int:
        if not 0 <= pitch <= 127:
            raise ValueError(f"pitch {pitch} outside 0..127")
        return self.pitch_ids.start + pitch

    def dur(self, ticks: int) -> int:
        if not 1 <= ticks <= MAX_DUR_TICKS:
            raise ValueError(f"duration {ticks} outside 1..{MAX_DUR_TICKS} ticks")
        return self.dur_ids.start + ticks - 1

    def durs(self, ticks: int) -> list[int]:
        """DUR tokens of a duration: as many DUR_48 as fit, then the remainder."""
        full, rest = divmod(max(1, ticks), MAX_DUR_TICKS)
        out = [self.dur_ids.stop - 1] * full
        if rest:
            out.append(self.dur_ids.start + rest - 1)
        return out

    # -- kinds and values of ids -----------------------------------------------------
    def kind(self, token: int) -> Kind:
        return self.kinds[token]

    def value(self, token: int) -> int:
        return self.values[token]

    def is_key(self, token: int) -> bool:
        return token in self.key_ids

    def is_role(self, token: int) -> bool:
        return token in self.role_ids

    def is_pos(self, token: int) -> bool:
        return token in self.pos_ids

    def is_chord(self, token: int) -> bool:
        return token in self.chord_ids

    def is_vel(self, token: int) -> bool:
        return token in self.vel_ids

    def is_pitch(self, token: int) -> bool:
        return token in self.pitch_ids

    def is_dur(self, token: int) -> bool:
        return token in self.dur_ids

    def chord_parts(self, token: int) -> tuple[int, QualityClass] | None:
        """(root relative to the key, quality class) of a CHORD token; None for CHORD_NC."""
        if token not in self.chord_ids:
            raise ValueError(f"not a chord token: {token}")
        if token == self.chord_nc:
            return None
        rel, quality = divmod(self.values[token], len(CHORD_QUALITIES))
        return rel, CHORD_QUALITIES[quality]

    # -- names -----------------------------------------------------------------------
    def token_name(self, token: int) -> str:
        if not 0 <= token < self.size:
            raise ValueError(f"token id {token} outside 0..{self.size - 1}")
        return self.names[token]

    def token_id(self, name: str) -> int:
        try:
            return self._ids[name]
        except KeyError:
            raise ValueError(f"unknown token name {name!r}") from None

    def describe(self, tokens: Iterable[int]) -> str:
        """Token names joined by spaces, for logs and docs."""
        return " ".join(self.token_name(t) for t in tokens)

    def parse(self, text: str) -> list[int]:
        """Inverse of :meth:`describe`."""
        return [self.token_id(name) for name in text.split()]


VOCAB = Vocab()
"""The vocabulary (430 tokens)."""


def vocab_fingerprint() -> str:
    """Short hash of the token names in id order: checkpoints refuse a different one."""
    digest = hashlib.sha256("\n".join(VOCAB.names).encode()).hexdigest()
    return digest[:16]


# Hot-path constants (ids and kinds as plain ints).
_BAR = VOCAB.bar
_END = VOCAB.phrase_end
_POS0 = VOCAB.pos_ids.start
_VEL0 = VOCAB.vel_ids.start
_PITCH0 = VOCAB.pitch_ids.start
_DUR0 = VOCAB.dur_ids.start - 1  # _DUR0 + ticks is DUR_<ticks>
_DUR_MAX = VOCAB.dur_ids.stop - 1
_KINDS = tuple(int(k) for k in VOCAB.kinds)
_VALUES = VOCAB.values
_K_ROLE, _K_END, _K_BAR = int(Kind.ROLE), int(Kind.PHRASE_END), int(Kind.BAR)
_K_POS, _K_CHORD, _K_VEL, _K_PITCH, _K_DUR = (
    int(Kind.POS),
    int(Kind.CHORD),
    int(Kind.VEL),
    int(Kind.PITCH),
    int(Kind.DUR),
)


def _check_metre(metre: Metre) -> int:
    tpb = metre.ticks_per_bar
    if tpb > MAX_BAR_TICKS:
        raise ValueError(
            f"metre {metre} has bars of {tpb} ticks; the vocabulary covers {MAX_BAR_TICKS}"
        )
    return tpb


# --------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------
# Grammar
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------


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
def _chord_change_parts(token: int, key: int) -> tuple[str, Chord | None]:
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
        symbol, chord = _chord_change_parts(token, self.key)
        self._events.append(ChordChange(self.beats(self.tick), symbol, chord))

    def _phrase_started(self, role: Role) -> None:
        self._events.append(PhraseStart(role, self.beats(self.tick)))

    def _phrase_ended(self, role: Role) -> None:
        self._events.append(PhraseEnd(role, self.beats(max(self.tick, self.note_end))))


# --------------------------------------------------------------------------------------
# Whole phrases and solos
# --------------------------------------------------------------------------------------


def encode_phrase(
    phrase: Phrase, key: int, role: Role | str | None = Role.PERFORMER, *, header: bool = True
) -> list[int]:
    """A phrase as one stream from its reference bar line (``KEY`` header unless told not).

    Chord changes before the phrase's end are stated; ``role`` None leaves out the
    phrase tokens.
    """
    encoder = StreamEncoder(key, phrase.metre, phrase.chords)
    out = encoder.header() if header else []
    out += encoder.encode_notes(phrase.notes, role)
    return out


def decode_phrase(
    tokens: Iterable[int], key: int, metre: Metre | None = None, start_bar: int = 0
) -> Phrase:
    """Notes and chord changes of a token stream, as a phrase (onsets from its bar 0)."""
    decoder = StreamDecoder(key, metre)
    events = decoder.feed_all(tokens)
    events += decoder.flush()
    notes = [e.note for e in events if isinstance(e, NoteEnd)]
    chords = [e for e in events if isinstance(e, ChordChange)]
    return Phrase.of(notes, chords, decoder.metre, start_bar)


RoleSpec = Literal["alternate", "performer"] | Sequence[Role | str]


def _roles(roles: RoleSpec, count: int) -> list[Role]:
    if roles == "alternate":
        return [ROLES[i % 2] for i in range(count)]
    if roles == "performer":
        return [Role.PERFORMER] * count
    given = [Role(r) for r in roles]
    if len(given) != count:
        raise ValueError(f"{len(given)} roles given for {count} phrases")
    return given


def encode_solo(
    solo: Solo,
    phrases: Sequence[Phrase] | Sequence[int] | None = None,
    roles: RoleSpec = "alternate",
    *,
    header: bool = True,
) -> list[int]:
    """A whole solo as one stream: key, bar lines, chord changes and its phrases.

    ``phrases`` is the segmentation: phrases (notes relative to their ``start_bar``), or
    the indices into ``solo.notes`` where a new phrase starts; None makes the whole solo
    one phrase. Roles alternate performer/agent by default, so a model learns to answer.
    """
    groups: list[tuple[Sequence[Note], float]]
    if phrases is None:
        groups = [(solo.notes, 0.0)]
    elif any(isinstance(p, Phrase) for p in phrases):
        groups = [
            (p.notes, solo.metre.bar_start(p.start_bar)) for p in phrases if isinstance(p, Phrase)
        ]
    else:
        cuts = sorted({0, len(solo.notes), *(p for p in phrases if isinstance(p, int))})
        groups = [(solo.notes[a:b], 0.0) for a, b in itertools.pairwise(cuts) if b > a]
    encoder = StreamEncoder(solo.key, solo.metre, solo.chords)
    out = encoder.header() if header else []
    for (notes, offset), role in zip(groups, _roles(roles, len(groups)), strict=True):
        out += encoder.encode_notes(notes, role, offset_beats=offset)
    return out
