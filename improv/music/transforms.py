"""Phrase transforms for a rule-based responder: transpose, echo, retrograde, displace,
fit to the chords.

Every function is pure: it takes a :class:`Phrase` and returns a new one with the same
chords, metre and reference bar. Results stay on the tick grid when the input is on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from improv.music.chords import Chord, chord_scale
from improv.music.forms import Form
from improv.music.notes import ChordChange, Note, Phrase, chord_in_force
from improv.music.pitch import fold_into_range
from improv.music.time import Metre, quantize_beats, to_ticks


def transpose(phrase: Phrase, semitones: int, lo: int = 0, hi: int = 127) -> Phrase:
    """Every note moved by ``semitones``; notes leaving [lo, hi] come back by octaves.

    The chords stay: a responder transposes its melody against the same changes.
    """
    notes = (replace(n, pitch=fold_into_range(n.pitch + semitones, lo, hi)) for n in phrase.notes)
    return phrase.with_notes(notes)


def echo(
    phrase: Phrase,
    delay: float,
    *,
    semitones: int = 0,
    velocity_scale: float = 1.0,
    lo: int = 0,
    hi: int = 127,
) -> Phrase:
    """The phrase again ``delay`` beats later, optionally transposed and quieter
    (``velocity_scale`` < 1); the delay snaps to the grid."""
    shift = quantize_beats(delay)
    notes = (
        Note(
            fold_into_range(n.pitch + semitones, lo, hi),
            max(1, min(127, round(n.velocity * velocity_scale))),
            n.onset + shift,
            n.duration,
        )
        for n in phrase.notes
    )
    return phrase.with_notes(notes)


def retrograde(phrase: Phrase) -> Phrase:
    """The notes played backwards over the same span: the last note ends where the
    first began, so a note ending at ``end - x`` now starts at ``onset + x``."""
    start, end = phrase.onset, phrase.end
    return phrase.with_notes(replace(n, onset=start + (end - n.end)) for n in phrase.notes)


def displace(phrase: Phrase, beats: float) -> Phrase:
    """Rhythmic displacement: every onset moved by ``beats`` (e.g. 0.5 = an eighth later),
    snapped to the tick grid so the phrase stays on it."""
    return phrase.with_notes(
        replace(n, onset=quantize_beats(n.onset + beats)) for n in phrase.notes
    )


def is_strong_beat(metre: Metre, beats: float) -> bool:
    """Whether a position falls on the bar line or, in an even metre, the bar's midpoint
    (beats 1 and 3 of 4/4, the second dotted quarter of 6/8)."""
    tick = to_ticks(metre.beat_in_bar(beats))
    half = metre.ticks_per_bar // 2
    return tick == 0 or (metre.numerator % 2 == 0 and tick == half)


def _nearest(pitch: int, pitch_classes: frozenset[int]) -> int:
    """The pitch with one of ``pitch_classes`` closest to ``pitch`` (ties go down)."""
    for distance in range(12):
        for candidate in (pitch - distance, pitch + distance):
            if 0 <= candidate <= 127 and candidate % 12 in pitch_classes:
                return candidate
    return pitch


def fit_to_chord(phrase: Phrase, chords: Sequence[ChordChange] | Form | None = None) -> Phrase:
    """Each note moved to the nearest fitting pitch of the chord in force at its onset:
    a chord tone on a strong beat, a tone of the chord's scale elsewhere.

    ``chords`` are changes in the phrase's reference (default: the phrase's own), or a
    form, read from the phrase's ``start_bar``. Notes under no chord (``NC``) stay.
    """
    changes = (
        chords
        if isinstance(chords, Form)
        else sorted(phrase.chords if chords is None else chords, key=lambda c: c.onset)
    )

    def chord_under(onset: float) -> Chord | None:
        if isinstance(changes, Form):
            return changes.chord_at(phrase.start_bar, onset)
        change = chord_in_force(changes, onset)
        return change.chord if change is not None else None

    fitted: list[Note] = []
    for note in phrase.notes:
        chord = chord_under(note.onset)
        if chord is None:
            fitted.append(note)
            continue
        if is_strong_beat(phrase.metre, note.onset):
            targets = frozenset(chord.tones)
        else:
            targets = chord_scale(chord).pitch_classes | frozenset(chord.tones)
        fitted.append(replace(note, pitch=_nearest(note.pitch, targets)))
    return phrase.with_notes(fitted)
