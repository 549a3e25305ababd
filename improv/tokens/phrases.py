"""Whole phrases and solos encoded and decoded at once (training data, evaluation)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Literal

from improv.music.notes import (
    ChordChange,
    Note,
    Phrase,
    Solo,
)
from improv.music.time import Metre
from improv.tokens.decoder import NoteEnd, StreamDecoder
from improv.tokens.encoder import StreamEncoder
from improv.tokens.vocab import ROLES, Role


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
