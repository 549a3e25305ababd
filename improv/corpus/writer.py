"""Solos -> Standard MIDI Files in the WJazzD layout (the reader's format, for test data).

The generated corpus must exercise every path of the reader, so the writer can produce
type 0 or type 1 files, chords as ``marker``, ``text`` or ``cue_marker`` events, and
any resolution. File tick 0 is the solo's bar 0, beat 0.
"""

from __future__ import annotations

from pathlib import Path

from improv.music.notes import Solo
from improv.music.pitch import Key
from improv.smf import (
    CUE_MARKER,
    MARKER,
    TEXT,
    TRACK_NAME,
    NoteColumns,
    encode_track,
    key_signature_event,
    tempo_event,
    text_event,
    time_signature_event,
    write_smf,
)

WJAZZD_TICKS_PER_BEAT = 480
CHORD_META_CHOICES = {"marker": MARKER, "text": TEXT, "cue_marker": CUE_MARKER}
"""The meta events a writer may put chord symbols in, by name."""


def write_solo(
    solo: Solo,
    path: Path,
    *,
    midi_type: int = 0,
    chord_meta: str = "marker",
    ticks_per_beat: int = WJAZZD_TICKS_PER_BEAT,
) -> Path:
    """Write a solo, its chords, metre, tempo and key to ``path`` (folders created);
    returns the path."""
    if midi_type not in (0, 1):
        raise ValueError(f"MIDI type must be 0 or 1: {midi_type}")
    if chord_meta not in CHORD_META_CHOICES:
        raise ValueError(
            f"chord meta type must be one of {tuple(CHORD_META_CHOICES)}: {chord_meta!r}"
        )
    key = Key(solo.key, solo.mode)
    name = f"{solo.performer} - {solo.title}" if solo.performer else solo.title
    meta = [
        text_event(0, TRACK_NAME, name),
        tempo_event(0, round(60_000_000 / solo.tempo_bpm)),
        time_signature_event(0, solo.metre.numerator, solo.metre.denominator),
        key_signature_event(0, key.signature, key.is_minor),
    ]
    meta += [
        text_event(
            round(change.onset * ticks_per_beat), CHORD_META_CHOICES[chord_meta], change.symbol
        )
        for change in solo.chords
    ]
    notes = NoteColumns.of(solo.notes)
    if midi_type == 0:
        tracks = [encode_track(meta, notes, ticks_per_beat=ticks_per_beat)]
    else:
        named = [text_event(0, TRACK_NAME, solo.instrument or "solo")]
        tracks = [
            encode_track(meta, ticks_per_beat=ticks_per_beat),
            encode_track(named, notes, ticks_per_beat=ticks_per_beat),
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_smf(path, tracks, ticks_per_beat=ticks_per_beat, midi_type=midi_type)
    return path
