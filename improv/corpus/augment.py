"""Transposition augmentation: every solo in several keys, as long as the horn could play it.

Jazz players improvise in all keys, but a corpus is lopsided (Bb, F and Eb dominate
WJazzD). Moving a solo, its chords and its key by a few semitones multiplies the data
without inventing music; transpositions that push the solo out of its instrument's
range are dropped, since a tenor line an octave too high teaches the model nonsense.
"""

from __future__ import annotations

from dataclasses import replace

from improv.music.notes import ChordChange, Note, Phrase, Solo
from improv.music.pitch import Key

TRANSPOSE_LOW = -5
TRANSPOSE_HIGH = 6
"""Default shifts, -5..+6 semitones: every key once, none more than a tritone away."""

# Sounding MIDI ranges (lowest, highest) by WJazzD instrument code: the written ranges
# widened to what the corpus' players actually reach (altissimo, high trumpet).
INSTRUMENT_RANGES: dict[str, tuple[int, int]] = {
    "ss": (55, 96),
    "as": (42, 88),
    "ts": (40, 91),
    "ts-c": (40, 91),
    "bs": (36, 72),
    "cl": (48, 94),
    "bcl": (34, 82),
    "tp": (50, 98),
    "cor": (50, 96),
    "tb": (40, 82),
    "vib": (53, 89),
    "g": (40, 88),
    "p": (21, 108),
}
DEFAULT_RANGE = (36, 96)
"""For an unknown instrument: five octaves around the middle of the keyboard."""


def instrument_range(instrument: str) -> tuple[int, int]:
    """The playable range (MIDI) of an instrument code, or a generic range."""
    return INSTRUMENT_RANGES.get(instrument.strip().lower(), DEFAULT_RANGE)


def transpose_changes(
    changes: tuple[ChordChange, ...], semitones: int, *, sharps: bool = False
) -> tuple[ChordChange, ...]:
    """Chord changes moved by ``semitones``, symbols respelled (NC stays NC)."""
    moved: list[ChordChange] = []
    for change in changes:
        if change.chord is None:
            moved.append(change)
            continue
        chord = change.chord.transposed(semitones, sharps=sharps)
        moved.append(ChordChange(change.onset, chord.symbol, chord))
    return tuple(moved)


def _notes(notes: tuple[Note, ...], semitones: int) -> tuple[Note, ...]:
    return tuple(replace(n, pitch=n.pitch + semitones) for n in notes)


def fits(notes: tuple[Note, ...], semitones: int, pitch_range: tuple[int, int]) -> bool:
    """Whether every note, moved by ``semitones``, stays inside ``pitch_range``."""
    if not notes:
        return True
    low, high = pitch_range
    pitches = [n.pitch for n in notes]
    return min(pitches) + semitones >= low and max(pitches) + semitones <= high


def transpose_solo(solo: Solo, semitones: int) -> Solo:
    """A solo with notes, chords and key moved by ``semitones`` (no range check)."""
    key = Key(solo.key, solo.mode).transpose(semitones)
    return replace(
        solo,
        notes=_notes(solo.notes, semitones),
        chords=transpose_changes(solo.chords, semitones, sharps=key.prefers_sharps),
        key=key.tonic,
    )


def transpose_phrase(phrase: Phrase, semitones: int) -> Phrase:
    """A phrase with notes and chords moved by ``semitones`` (no range check)."""
    return replace(
        phrase,
        notes=_notes(phrase.notes, semitones),
        chords=transpose_changes(phrase.chords, semitones),
    )


def transpositions(
    solo: Solo,
    *,
    low: int = TRANSPOSE_LOW,
    high: int = TRANSPOSE_HIGH,
    pitch_range: tuple[int, int] | None = None,
) -> list[tuple[int, Solo]]:
    """(shift, solo) for each shift in low..high that stays in range.

    The range is the instrument's (see :data:`INSTRUMENT_RANGES`) unless given; the
    untransposed solo (shift 0) is always kept, whatever its range.
    """
    bounds = pitch_range or instrument_range(solo.instrument)
    return [
        (shift, solo if shift == 0 else transpose_solo(solo, shift))
        for shift in range(low, high + 1)
        if shift == 0 or fits(solo.notes, shift, bounds)
    ]
