"""Solos -> Standard MIDI Files in the WJazzD layout (the reader's format, for test data).

The generated corpus must exercise every path of the reader, so the writer can produce
type 0 or type 1 files, chords as ``marker``, ``text`` or ``cue_marker`` events, and
any resolution. File tick 0 is the solo's bar 0, beat 0.
"""

from __future__ import annotations

from pathlib import Path

import mido

from improv.music.notes import Solo
from improv.music.pitch import Key

WJAZZD_TICKS_PER_BEAT = 480
CHORD_META_CHOICES = ("marker", "text", "cue_marker")


def _delta(events: list[tuple[int, int, mido.Message | mido.MetaMessage]]) -> mido.MidiTrack:
    """A track from (tick, order, message) events: sorted, times made relative."""
    track = mido.MidiTrack()
    now = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


def solo_to_midi(
    solo: Solo,
    *,
    midi_type: int = 0,
    chord_meta: str = "marker",
    ticks_per_beat: int = WJAZZD_TICKS_PER_BEAT,
) -> mido.MidiFile:
    """A MIDI file holding a solo, its chords, metre, tempo and key."""
    if midi_type not in (0, 1):
        raise ValueError(f"MIDI type must be 0 or 1: {midi_type}")
    if chord_meta not in CHORD_META_CHOICES:
        raise ValueError(f"chord meta type must be one of {CHORD_META_CHOICES}: {chord_meta!r}")

    def tick(beats: float) -> int:
        return round(beats * ticks_per_beat)

    name = f"{solo.performer} - {solo.title}" if solo.performer else solo.title
    meta: list[tuple[int, int, mido.Message | mido.MetaMessage]] = [
        (0, 0, mido.MetaMessage("track_name", name=name)),
        (0, 1, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(solo.tempo_bpm))),
        (
            0,
            2,
            mido.MetaMessage(
                "time_signature",
                numerator=solo.metre.numerator,
                denominator=solo.metre.denominator,
            ),
        ),
        (0, 3, mido.MetaMessage("key_signature", key=Key(solo.key, solo.mode).name)),
    ]
    meta.extend(
        (tick(change.onset), 4, mido.MetaMessage(chord_meta, text=change.symbol))
        for change in solo.chords
    )
    notes: list[tuple[int, int, mido.Message | mido.MetaMessage]] = []
    for note in solo.notes:
        # note-offs sort before note-ons at the same tick, so repeated pitches re-strike
        on = mido.Message("note_on", note=note.pitch, velocity=note.velocity)
        notes.append((tick(note.onset), 6, on))
        notes.append((tick(note.end), 5, mido.Message("note_off", note=note.pitch, velocity=0)))
    midi = mido.MidiFile(type=midi_type, ticks_per_beat=ticks_per_beat)
    if midi_type == 0:
        midi.tracks.append(_delta(meta + notes))
    else:
        midi.tracks.append(_delta(meta))
        notes.append((0, 0, mido.MetaMessage("track_name", name=solo.instrument or "solo")))
        midi.tracks.append(_delta(notes))
    return midi


def write_solo(
    solo: Solo,
    path: Path,
    *,
    midi_type: int = 0,
    chord_meta: str = "marker",
    ticks_per_beat: int = WJAZZD_TICKS_PER_BEAT,
) -> Path:
    """Write a solo to ``path`` (folders created); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    solo_to_midi(
        solo, midi_type=midi_type, chord_meta=chord_meta, ticks_per_beat=ticks_per_beat
    ).save(path)
    return path
