"""Standard MIDI Files at the edge: write a jam, read a performer's take.

A jam file has a conductor track (tempo, time signature, one marker per chord change,
as in the WJazzD-style corpus files), a performer track and an agent track, each note
on its own channel so a DAW shows who played what. Reading keeps only what drives the
agent: notes in beats (``ticks / ticks_per_beat``, so tempo changes do not move the
beat grid), the first tempo, the time signature and the marker texts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from improv.errors import UsageError
from improv.files import MIDI_LIMIT, atomic_output, check_input
from improv.music.notes import ChordChange, Note
from improv.music.time import Metre

log = logging.getLogger(__name__)

TICKS_PER_BEAT = 480


@dataclass(frozen=True, slots=True)
class Track:
    """Notes of one player, in beats from bar 0 beat 0, on one channel."""

    name: str
    notes: Sequence[Note]
    channel: int = 0
    program: int | None = None  # General MIDI program, or none


def write_jam(
    path: str | Path,
    tracks: Iterable[Track],
    *,
    bpm: float,
    metre: Metre | None = None,
    chords: Iterable[ChordChange] = (),
    title: str = "improv jam",
    ticks_per_beat: int = TICKS_PER_BEAT,
    metres: Iterable[tuple[float, Metre]] = (),
) -> Path:
    """Write a type-1 MIDI file: conductor track (tempo, metre, chord markers) + tracks;
    ``metres``: later time signatures, (beat, metre)."""
    import mido

    metre = metre or Metre()
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    conductor: list[tuple[int, int, mido.MetaMessage | mido.Message]] = [
        (0, 0, mido.MetaMessage("track_name", name=title)),
        (0, 0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))),
        (
            0,
            0,
            mido.MetaMessage(
                "time_signature", numerator=metre.numerator, denominator=metre.denominator
            ),
        ),
    ]
    for beat, later in metres:
        signature = mido.MetaMessage(
            "time_signature", numerator=later.numerator, denominator=later.denominator
        )
        conductor.append((max(0, round(beat * ticks_per_beat)), 0, signature))
    for change in chords:
        tick = max(0, round(change.onset * ticks_per_beat))
        conductor.append((tick, 1, mido.MetaMessage("marker", text=change.symbol)))
    midi.tracks.append(_track(conductor))
    for track in tracks:
        events: list[tuple[int, int, mido.MetaMessage | mido.Message]] = [
            (0, 0, mido.MetaMessage("track_name", name=track.name))
        ]
        if track.program is not None:
            events.append(
                (0, 0, mido.Message("program_change", channel=track.channel, program=track.program))
            )
        for note in track.notes:
            on = max(0, round(note.onset * ticks_per_beat))
            off = max(on + 1, round(note.end * ticks_per_beat))
            # at equal ticks note-offs (order 1) go before note-ons (order 2)
            events.append(
                (
                    on,
                    2,
                    mido.Message(
                        "note_on", channel=track.channel, note=note.pitch, velocity=note.velocity
                    ),
                )
            )
            events.append(
                (off, 1, mido.Message("note_off", channel=track.channel, note=note.pitch))
            )
        midi.tracks.append(_track(events))
    target = Path(path)
    with atomic_output(target, "--record") as tmp:
        midi.save(tmp)
    return target


def _track(events: list[tuple[int, int, Any]]) -> Any:
    import mido

    track = mido.MidiTrack()
    last = 0
    for tick, _order, message in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(message.copy(time=tick - last))
        last = tick
    return track


@dataclass(frozen=True, slots=True)
class Take:
    """A performer's MIDI file: notes in beats, first tempo, metre, chord markers."""

    notes: tuple[Note, ...]
    bpm: float
    metre: Metre
    markers: tuple[tuple[float, str], ...] = field(default=())
    source: str = ""


def read_take(path: str | Path, channel: int | None = None) -> Take:
    """Read the notes of a MIDI file (all tracks, or one channel) into beats.

    Unpaired note-ons end at the next note-on of the same pitch or at the end of the
    file; zero-length notes get one tick. Unreadable files are a usage error.
    """
    import mido

    source = Path(path)
    check_input(source, MIDI_LIMIT, "MIDI file")
    try:
        midi = mido.MidiFile(source, clip=True)
    except (OSError, ValueError, EOFError, KeyError, IndexError) as exc:
        raise UsageError(f"cannot read MIDI file {source}: {exc}") from exc
    if midi.type == 2:
        raise UsageError(f"MIDI file {source} is type 2 (independent songs): not supported")
    if midi.ticks_per_beat < 0:
        raise UsageError(f"MIDI file {source}: SMPTE time (no ticks per beat) is unsupported")
    tpb = midi.ticks_per_beat or TICKS_PER_BEAT
    bpm: float | None = None
    metre: Metre | None = None
    markers: list[tuple[float, str]] = []
    notes: list[Note] = []
    end_tick = 0
    for track in midi.tracks:
        tick = 0
        sounding: dict[tuple[int, int], tuple[int, int]] = {}  # (ch, pitch) -> (tick, vel)
        for message in track:
            tick += message.time
            if message.is_meta:
                if message.type == "set_tempo" and bpm is None:
                    if message.tempo <= 0:
                        raise UsageError(f"MIDI file {source}: tempo 0 (set_tempo 0)")
                    bpm = mido.tempo2bpm(message.tempo)
                elif message.type == "time_signature" and metre is None:
                    try:
                        metre = Metre(message.numerator, message.denominator)
                    except ValueError as exc:
                        log.warning("%s: %s; using 4/4", source, exc)
                elif message.type == "marker" and message.text.strip():
                    markers.append((tick / tpb, message.text.strip()))
                continue
            if message.type not in ("note_on", "note_off"):
                continue
            if channel is not None and message.channel != channel:
                continue
            key = (message.channel, message.note)
            if message.type == "note_on" and message.velocity > 0:
                if key in sounding:
                    notes.append(_note(key[1], *sounding.pop(key), tick, tpb))
                sounding[key] = (tick, message.velocity)
            elif key in sounding:
                notes.append(_note(key[1], *sounding.pop(key), tick, tpb))
        end_tick = max(end_tick, tick)
        for (_ch, pitch), (start, velocity) in sounding.items():
            log.warning(
                "%s: note %d at tick %d has no note-off; ends the file", source, pitch, start
            )
            notes.append(_note(pitch, start, velocity, max(end_tick, tick), tpb))
    notes.sort(key=lambda n: (n.onset, n.pitch))
    return Take(
        tuple(notes),
        bpm if bpm is not None else 120.0,
        metre or Metre(),
        tuple(sorted(markers)),
        str(source),
    )


def _note(pitch: int, start: int, velocity: int, end: int, tpb: int) -> Note:
    return Note(pitch, max(1, min(127, velocity)), start / tpb, max(1, end - start) / tpb)
