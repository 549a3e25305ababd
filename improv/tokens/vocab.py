"""The vocabulary: token kinds, ids and their meaning, one table for every model."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from enum import IntEnum, StrEnum

from improv.music.chords import Chord, QualityClass
from improv.music.notes import (
    VELOCITY_BINS,
)
from improv.music.time import TICKS_PER_BEAT, Metre

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
