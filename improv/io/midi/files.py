"""Standard MIDI Files at the edge: write a jam, read a performer's take.

A jam file has a conductor track (tempo, time signature, one marker per chord change,
as in the WJazzD-style corpus files), a performer track and an agent track, each note
on its own channel so a DAW shows who played what. Reading keeps only what drives the
agent: notes in beats (``ticks / ticks_per_beat``, so tempo changes do not move the
beat grid), the first tempo, the time signature and the marker texts.
"""

from __future__ import annotations

import logging
import struct
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from improv.errors import ImprovError, UsageError
from improv.files import MIDI_LIMIT, atomic_output, check_input
from improv.music.notes import ChordChange, Note
from improv.music.time import Metre

log = logging.getLogger(__name__)

TICKS_PER_BEAT = 480


class NoteColumns:
    """Notes as four packed columns (pitch, velocity, onset and end in beats): a long
    jam's record is read into these at about 18 bytes a note, not as objects."""

    __slots__ = ("end", "onset", "pitch", "velocity")

    def __init__(self) -> None:
        self.pitch = array("B")
        self.velocity = array("B")
        self.onset = array("d")
        self.end = array("d")

    def append(self, pitch: int, velocity: int, onset: float, end: float) -> None:
        self.pitch.append(pitch)
        self.velocity.append(velocity)
        self.onset.append(onset)
        self.end.append(end)

    def __len__(self) -> int:
        return len(self.pitch)

    @classmethod
    def of(cls, notes: Iterable[Note]) -> NoteColumns:
        columns = cls()
        for note in notes:
            columns.append(note.pitch, note.velocity, note.onset, note.end)
        return columns


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

    Encoded here, a track's events as numpy columns, rather than as mido messages: a
    long jam's record is rewritten every few seconds, and mido's objects cost about a
    kilobyte and 50 microseconds a note (1.8 KB and 8 s for two tracks of 80,000).
    """
    metre = metre or Metre()
    tempo = round(60_000_000 / bpm)
    conductor: list[tuple[int, bytes]] = [
        (0, _meta(0x03, title.encode("latin-1", "replace"))),
        (0, _meta(0x51, tempo.to_bytes(3, "big"))),
        (0, _time_signature(metre)),
    ]
    for beat, later in metres:
        conductor.append((max(0, round(beat * ticks_per_beat)), _time_signature(later)))
    for change in chords:
        tick = max(0, round(change.onset * ticks_per_beat))
        conductor.append((tick, _meta(0x06, change.symbol.encode("latin-1", "replace"))))
    conductor.sort(key=lambda e: e[0])  # stable: at one tick, signatures before markers
    chunks = [_track_chunk(_meta_events(conductor))]
    for track in tracks:
        head = [(0, _meta(0x03, track.name.encode("latin-1", "replace")))]
        if track.program is not None:
            head.append((0, bytes((0xC0 | track.channel, track.program & 0x7F))))
        columns = (
            track.notes if isinstance(track.notes, NoteColumns) else NoteColumns.of(track.notes)
        )
        body = _meta_events(head) + _note_events(columns, track.channel, ticks_per_beat)
        chunks.append(_track_chunk(body))
    header = b"MThd" + struct.pack(">IHHH", 6, 1, len(chunks), ticks_per_beat)
    target = Path(path)
    with atomic_output(target, "--record") as tmp, open(tmp, "wb") as out:
        out.write(header)
        for chunk in chunks:
            out.write(chunk)
    return target


_END_OF_TRACK = b"\x00\xff\x2f\x00"


def _meta(kind: int, data: bytes) -> bytes:
    return bytes((0xFF, kind)) + _vlq(len(data)) + data


def _time_signature(metre: Metre) -> bytes:
    power = metre.denominator.bit_length() - 1
    return _meta(0x58, bytes((metre.numerator, power, 24, 8)))


def _vlq(value: int) -> bytes:
    """A MIDI variable-length quantity (7 bits a byte, the high bit: more follow)."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _meta_events(events: list[tuple[int, bytes]]) -> bytes:
    """Events at absolute ticks (sorted) as delta-timed bytes."""
    out = bytearray()
    last = 0
    for tick, data in events:
        out += _vlq(tick - last) + data
        last = tick
    return bytes(out)


def _note_events(columns: NoteColumns, channel: int, tpb: int) -> bytes:
    """A track's notes as delta-timed note-on/note-off messages, in time order (at one
    tick, note-offs before note-ons), the deltas from the track's head at tick 0."""
    count = len(columns)
    if count == 0:
        return b""
    on = np.maximum(0, np.rint(np.frombuffer(columns.onset, dtype=np.float64) * tpb))
    off = np.maximum(on + 1, np.rint(np.frombuffer(columns.end, dtype=np.float64) * tpb))
    ticks = np.concatenate((on, off)).astype(np.int64)
    is_on = np.concatenate((np.ones(count, np.int8), np.zeros(count, np.int8)))
    order = np.lexsort((is_on, ticks))  # stable: notes in their given order at one tick
    ticks = ticks[order]
    pitch = np.frombuffer(columns.pitch, dtype=np.uint8)
    status = np.where(is_on, 0x90 | channel, 0x80 | channel).astype(np.uint8)[order]
    first = np.concatenate((pitch, pitch))[order]
    second = np.concatenate(
        (np.frombuffer(columns.velocity, dtype=np.uint8), np.full(count, 64, np.uint8))
    )[order]
    deltas = np.diff(ticks, prepend=0)
    sizes = 1 + (deltas >= 1 << 7) + (deltas >= 1 << 14) + (deltas >= 1 << 21)
    if (deltas >= 1 << 28).any():
        raise ImprovError("a MIDI delta time over 2**28 ticks: the jam is too long to write")
    starts = np.concatenate(([0], np.cumsum(sizes + 3)[:-1]))
    out = np.empty(int((sizes + 3).sum()), np.uint8)
    for k in range(4):  # the delta's bytes, most significant first
        has = sizes > k
        shift = 7 * (sizes[has] - 1 - k)
        more = np.where(k < sizes[has] - 1, 0x80, 0)
        out[starts[has] + k] = ((deltas[has] >> shift) & 0x7F) | more
    out[starts + sizes] = status
    out[starts + sizes + 1] = first
    out[starts + sizes + 2] = second
    return out.tobytes()


def _track_chunk(body: bytes) -> bytes:
    body += _END_OF_TRACK
    return b"MTrk" + struct.pack(">I", len(body)) + body


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
    midi = load_midi(source)
    tpb = midi.ticks_per_beat or TICKS_PER_BEAT
    meta = _Meta(source, tpb)
    notes: list[Note] = []
    end_tick = 0
    for track in midi.tracks:
        played, end_tick = _track_notes(_timed(track, meta), tpb, source, channel, end_tick)
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
    midi = load_midi(source)
    tpb = midi.ticks_per_beat or TICKS_PER_BEAT
    meta = _Meta(source, tpb)
    tracks: list[Track] = []
    end_tick = 0
    for number, track in enumerate(midi.tracks, start=1):
        events = list(_timed(track, meta))
        notes, end_tick = _track_notes(events, tpb, source, None, end_tick)
        if not notes:
            continue
        name = next((m.name for _, m in events if m.type == "track_name"), "") or f"track {number}"
        channel = next((m.channel for _, m in events if m.type == "note_on"), 0)
        program = next((m.program for _, m in events if m.type == "program_change"), None)
        notes.sort(key=lambda n: (n.onset, n.pitch))
        tracks.append(Track(name.strip(), tuple(notes), channel, program))
    chords = tuple(
        ChordChange(onset, symbol, parse_chord(symbol)) for onset, symbol in sorted(meta.markers)
    )
    return JamFile(
        tuple(tracks), meta.bpm if meta.bpm is not None else 120.0, meta.metre or Metre(), chords
    )


class _Meta:
    """What the meta messages of a file say: first tempo, first metre, markers."""

    def __init__(self, source: Path, tpb: int) -> None:
        self.source = source
        self.tpb = tpb
        self.bpm: float | None = None
        self.metre: Metre | None = None
        self.markers: list[tuple[float, str]] = []

    def take(self, tick: int, message: Any) -> None:
        import mido

        if message.type == "set_tempo" and self.bpm is None:
            if message.tempo <= 0:
                raise UsageError(f"MIDI file {self.source}: tempo 0 (set_tempo 0)")
            self.bpm = mido.tempo2bpm(message.tempo)
        elif message.type == "time_signature" and self.metre is None:
            try:
                self.metre = Metre(message.numerator, message.denominator)
            except ValueError as exc:
                log.warning("%s: %s; using 4/4", self.source, exc)
        elif message.type == "marker" and message.text.strip():
            self.markers.append((tick / self.tpb, message.text.strip()))


def _timed(track: Any, meta: _Meta) -> Iterator[tuple[int, Any]]:
    """(absolute tick, message) of a track; its meta messages are told to ``meta``."""
    tick = 0
    for message in track:
        tick += message.time
        if message.is_meta:
            meta.take(tick, message)
        yield tick, message


def _track_notes(
    events: Iterable[tuple[int, Any]],
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
    for tick, message in events:
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
    end_tick = max(end_floor, tick)
    for (_ch, pitch), (start, velocity) in sounding.items():
        log.warning("%s: note %d at tick %d has no note-off; ends the file", source, pitch, start)
        notes.append(_note(pitch, start, velocity, end_tick, tpb))
    return notes, end_tick


def load_midi(source: Path, what: str = "MIDI file") -> Any:
    """A ``mido.MidiFile`` of type 0 or 1 with ticks per beat; anything else (too large,
    not MIDI, type 2, SMPTE time) is a one-line :class:`UsageError`."""
    import mido

    check_input(source, MIDI_LIMIT, what)
    try:
        midi = mido.MidiFile(source, clip=True)
    except (OSError, ValueError, EOFError, KeyError, IndexError) as exc:
        raise UsageError(f"cannot read {what} {source}: {exc}") from exc
    if midi.type == 2:
        raise UsageError(f"{what} {source} is type 2 (independent songs): not supported")
    if midi.ticks_per_beat < 0:
        raise UsageError(f"{what} {source}: SMPTE time (no ticks per beat) is unsupported")
    return midi


def _note(pitch: int, start: int, velocity: int, end: int, tpb: int) -> Note:
    return Note(pitch, max(1, min(127, velocity)), start / tpb, max(1, end - start) / tpb)
