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

from improv.errors import ImprovError, UsageError
from improv.files import atomic_output
from improv.music.notes import ChordChange, Note
from improv.music.time import Metre
from improv.smf import (
    MARKER,
    NOTE_OFF,
    NOTE_ON,
    PROGRAM_CHANGE,
    SET_TEMPO,
    TIME_SIGNATURE,
    TRACK_NAME,
    Event,
    MidiFileError,
    NoteColumns,
    Smf,
    encode_track,
    load_midi,
    tempo_event,
    text_event,
    time_signature_event,
    write_smf,
)

log = logging.getLogger(__name__)

TICKS_PER_BEAT = 480


@dataclass(frozen=True, slots=True)
class Track:
    """Notes of one player, in beats from bar 0 beat 0, on one channel."""

    name: str
    notes: Sequence[Note] | NoteColumns
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
    ``metres``: later time signatures, (beat, metre).

    A long jam's record is rewritten every few seconds, so its tracks are encoded from
    :class:`~improv.smf.NoteColumns` by numpy (:func:`~improv.smf.encode_track`).
    """
    metre = metre or Metre()
    conductor = [
        text_event(0, TRACK_NAME, title),
        tempo_event(0, round(60_000_000 / bpm)),
        time_signature_event(0, metre.numerator, metre.denominator),
    ]
    conductor += [
        time_signature_event(
            max(0, round(beat * ticks_per_beat)), later.numerator, later.denominator
        )
        for beat, later in metres
    ]
    conductor += [  # after the signatures: at one tick, signatures before markers
        text_event(max(0, round(change.onset * ticks_per_beat)), MARKER, change.symbol)
        for change in chords
    ]
    try:
        chunks = [encode_track(conductor)]
        for track in tracks:
            head = [text_event(0, TRACK_NAME, track.name)]
            if track.program is not None:
                head.append(
                    Event(0, PROGRAM_CHANGE | track.channel, bytes((track.program & 0x7F,)))
                )
            columns = (
                track.notes if isinstance(track.notes, NoteColumns) else NoteColumns.of(track.notes)
            )
            chunks.append(
                encode_track(head, columns, channel=track.channel, ticks_per_beat=ticks_per_beat)
            )
    except MidiFileError as exc:
        raise ImprovError(f"{exc}: the jam is too long to write") from None
    target = Path(path)
    with atomic_output(target, "--record") as tmp:
        write_smf(tmp, chunks, ticks_per_beat=ticks_per_beat)
    return target


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
    source = Path(path)
    midi = _load(source)
    tpb = midi.ticks_per_beat
    meta = _Meta(source, tpb)
    notes: list[Note] = []
    end_tick = 0
    for track in midi.tracks:
        meta.take(track)
        played, end_tick = _track_notes(track, tpb, source, channel, end_tick)
        notes += played
    notes.sort(key=lambda n: (n.onset, n.pitch))
    return Take(
        tuple(notes),
        meta.bpm if meta.bpm is not None else 120.0,
        meta.metre or Metre(),
        tuple(sorted(meta.markers)),
        str(source),
    )


@dataclass(frozen=True, slots=True)
class JamFile:
    """A jam's record read back: its player tracks (named, in file order), first tempo,
    metre and chord markers (as changes, for a piano roll)."""

    tracks: tuple[Track, ...]
    bpm: float
    metre: Metre
    chords: tuple[ChordChange, ...]


def read_jam(path: str | Path) -> JamFile:
    """The tracks of a MIDI file one by one (:func:`write_jam`'s, or any type 0 or 1
    file); a track without notes (the conductor) is left out."""
    from improv.music.chords import parse_chord

    source = Path(path)
    midi = _load(source)
    tpb = midi.ticks_per_beat
    meta = _Meta(source, tpb)
    tracks: list[Track] = []
    end_tick = 0
    for number, track in enumerate(midi.tracks, start=1):
        meta.take(track)
        notes, end_tick = _track_notes(track, tpb, source, None, end_tick)
        if not notes:
            continue
        name = next((e.text for e in track if e.meta == TRACK_NAME), "") or f"track {number}"
        channel = next((e.channel for e in track if e.status & 0xF0 == NOTE_ON), 0)
        program = next((e.data[0] for e in track if e.status & 0xF0 == PROGRAM_CHANGE), None)
        notes.sort(key=lambda n: (n.onset, n.pitch))
        tracks.append(Track(name.strip(), tuple(notes), channel, program))
    chords = tuple(
        ChordChange(onset, symbol, parse_chord(symbol)) for onset, symbol in sorted(meta.markers)
    )
    return JamFile(
        tuple(tracks), meta.bpm if meta.bpm is not None else 120.0, meta.metre or Metre(), chords
    )


def _load(source: Path) -> Smf:
    """A type 0 or 1 file with ticks per beat; anything else (too large, not MIDI,
    type 2, SMPTE time) is a one-line :class:`UsageError`."""
    try:
        return load_midi(source)
    except MidiFileError as exc:
        raise UsageError(f"cannot read MIDI file {exc}") from None


class _Meta:
    """What the meta events of a file say: first tempo, first metre, markers."""

    def __init__(self, source: Path, tpb: int) -> None:
        self.source = source
        self.tpb = tpb
        self.bpm: float | None = None
        self.metre: Metre | None = None
        self.markers: list[tuple[float, str]] = []

    def take(self, track: Iterable[Event]) -> None:
        for event in track:
            if event.meta == SET_TEMPO and self.bpm is None:
                try:
                    self.bpm = 60_000_000 / event.tempo
                except MidiFileError as exc:
                    raise UsageError(f"cannot read MIDI file {self.source}: {exc}") from None
            elif event.meta == TIME_SIGNATURE and self.metre is None:
                try:  # a bad denominator, or a signature too short to read
                    self.metre = Metre(*event.time_signature)
                except ValueError as exc:
                    log.warning("%s: %s; using 4/4", self.source, exc)
            elif event.meta == MARKER and event.text.strip():
                self.markers.append((event.tick / self.tpb, event.text.strip()))


def _track_notes(
    events: Iterable[Event],
    tpb: int,
    source: Path,
    channel: int | None,
    end_floor: int,
) -> tuple[list[Note], int]:
    """The notes of one track (on ``channel``, or all) and the file's end tick so far
    (``end_floor``, the longest earlier track, or this one's end)."""
    notes: list[Note] = []
    sounding: dict[tuple[int, int], tuple[int, int]] = {}  # (ch, pitch) -> (tick, vel)
    tick = 0
    for event in events:
        tick = event.tick
        if event.status & 0xF0 not in (NOTE_ON, NOTE_OFF):
            continue
        if channel is not None and event.channel != channel:
            continue
        key = (event.channel, event.data[0])
        if event.is_note_on:
            if key in sounding:
                notes.append(_note(key[1], *sounding.pop(key), tick, tpb))
            sounding[key] = (tick, event.data[1])
        elif key in sounding:
            notes.append(_note(key[1], *sounding.pop(key), tick, tpb))
    end_tick = max(end_floor, tick)
    for (_ch, pitch), (start, velocity) in sounding.items():
        log.warning("%s: note %d at tick %d has no note-off; ends the file", source, pitch, start)
        notes.append(_note(pitch, start, velocity, end_tick, tpb))
    return notes, end_tick


def _note(pitch: int, start: int, velocity: int, end: int, tpb: int) -> Note:
    return Note(pitch, max(1, min(127, velocity)), start / tpb, max(1, end - start) / tpb)
