"""Standard MIDI Files, the byte format: the one module that reads and writes ``.mid``.

Jams, takes, the corpus and the renderer all go through here. It knows chunks, delta
times, running status, sysex and meta events; what the notes mean is the callers'
business. Reading gives each track's events at absolute ticks; writing encodes a
track's notes as numpy columns, because a long jam's record is rewritten every few
seconds and per-message objects (mido's cost about a kilobyte and 50 microseconds a
note) would not keep up. It imports nothing of improv and no mido, so every layer
may use it.
"""

from __future__ import annotations

import os
import stat
import struct
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

MiB = 1 << 20

MIDI_LIMIT = 2 * MiB
"""About 250,000 notes: an hour of the densest playing. The parsed file is held in
memory at about 150 bytes an event (some 80 MiB for 2 MiB of notes, read in about a
second), so the limit bounds memory and time too."""

DEFAULT_TEMPO = 500_000
"""Microseconds per beat before a file's first tempo (120 BPM), as the standard says."""

NOTE_OFF = 0x80
NOTE_ON = 0x90
PROGRAM_CHANGE = 0xC0
SYSEX = 0xF0
ESCAPE = 0xF7  # a sysex continuation, or any bytes sent as they are
META = 0xFF

TEXT = 0x01
TRACK_NAME = 0x03
MARKER = 0x06
CUE_MARKER = 0x07
END_OF_TRACK = 0x2F
SET_TEMPO = 0x51
TIME_SIGNATURE = 0x58
KEY_SIGNATURE = 0x59

_DATA_BYTES = (0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 1, 1, 2)
"""Data bytes of a channel message, by its status's high nibble (0x8 to 0xE)."""
_MAX_DELTA = 1 << 28
"""A variable-length number holds at most 28 bits (four bytes)."""


class MidiFileError(ValueError):
    """A file this module cannot read (truncated, a bad variable-length number, running
    status with no status to run on, SMPTE time, type 2) or a value no file can hold;
    the message says which, in one line."""


class Event(NamedTuple):
    """One event of a track, at an absolute tick: a channel message (``status``
    0x80-0xEF, ``data`` its data bytes), a sysex (0xF0 or 0xF7, ``data`` the bytes after
    the length) or a meta event (0xFF, ``meta`` its type, ``data`` its payload)."""

    tick: int
    status: int
    data: bytes
    meta: int = -1

    @property
    def channel(self) -> int:
        return self.status & 0x0F

    @property
    def is_note_on(self) -> bool:
        """A note-on with a velocity: a note-on of velocity 0 is a note-off."""
        return self.status & 0xF0 == NOTE_ON and self.data[1] > 0

    @property
    def is_note_off(self) -> bool:
        kind = self.status & 0xF0
        return kind == NOTE_OFF or (kind == NOTE_ON and self.data[1] == 0)

    @property
    def message(self) -> bytes:
        """A channel message's bytes as a port sends them, status first."""
        return bytes((self.status,)) + self.data

    @property
    def text(self) -> str:
        """A text meta event's text (marker, track name...), read as Latin-1: the
        standard names no character set, and every byte is a Latin-1 character."""
        return self.data.decode("latin-1")

    @property
    def tempo(self) -> int:
        """A set-tempo event's microseconds per beat (never 0: no time could pass)."""
        if len(self.data) < 3:
            raise MidiFileError(f"a set_tempo of {len(self.data)} bytes (3 expected)")
        tempo = int.from_bytes(self.data[:3], "big")
        if tempo == 0:
            raise MidiFileError("tempo 0 (a set_tempo of 0 microseconds per beat)")
        return tempo

    @property
    def time_signature(self) -> tuple[int, int]:
        """(numerator, denominator) of a time-signature event."""
        if len(self.data) < 4:
            raise MidiFileError(f"a time_signature of {len(self.data)} bytes (4 expected)")
        return self.data[0], 1 << self.data[1]

    @property
    def key_signature(self) -> tuple[int, bool]:
        """(sharps, negative for flats; minor) of a key-signature event."""
        if len(self.data) < 2:
            raise MidiFileError(f"a key_signature of {len(self.data)} bytes (2 expected)")
        sharps = self.data[0] - 256 if self.data[0] > 127 else self.data[0]
        if not -7 <= sharps <= 7 or self.data[1] > 1:
            raise MidiFileError(f"a key_signature of {sharps} sharps, mode {self.data[1]}")
        return sharps, self.data[1] == 1


@dataclass(frozen=True, slots=True)
class Smf:
    """A parsed type 0 or type 1 file: its resolution and each track's events."""

    midi_type: int
    ticks_per_beat: int
    tracks: tuple[tuple[Event, ...], ...]


def read_smf(source: bytes | str | Path) -> Smf:
    """Parse a file's bytes, or read a file by its path (through :func:`load_midi`)."""
    if isinstance(source, str | Path):
        return load_midi(source)
    return _parse(bytes(source))


def load_midi(path: str | Path, limit: int = MIDI_LIMIT) -> Smf:
    """Read and parse a MIDI file, its size checked before a byte is read (a device, a
    folder or a file over ``limit`` is refused); every error names the path."""
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise MidiFileError("a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise MidiFileError("not a regular file")
        if info.st_size > limit:
            raise MidiFileError(_too_large(info.st_size, limit))
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:  # it grew since the check
            raise MidiFileError(_too_large(len(data), limit))
        return _parse(data)
    except FileNotFoundError:
        raise MidiFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise MidiFileError(f"{path}: {exc.strerror or exc}") from None
    except MidiFileError as exc:
        raise MidiFileError(f"{path}: {exc}") from None


def _too_large(size: int, limit: int) -> str:
    return f"too large ({size / MiB:.1f} MiB > {limit / MiB:g} MiB)"


def _parse(data: bytes) -> Smf:
    if data[:4] != b"MThd":
        raise MidiFileError("not a MIDI file (no MThd header)")
    if len(data) < 14:
        raise MidiFileError("the header is truncated")
    length, midi_type, count, division = struct.unpack_from(">IHHH", data, 4)
    if length < 6:
        raise MidiFileError(f"a header of {length} bytes (6 expected)")
    if midi_type == 2:
        raise MidiFileError("MIDI type 2 (independent sequences) is not supported")
    if midi_type > 2:
        raise MidiFileError(f"MIDI type {midi_type} (0, 1 or 2 expected)")
    if division & 0x8000:
        frames = 256 - (division >> 8)
        raise MidiFileError(
            f"SMPTE time ({frames} frames a second, {division & 0xFF} ticks a frame): "
            "only ticks per beat are supported"
        )
    if division == 0:
        raise MidiFileError("0 ticks per beat")
    tracks: list[tuple[Event, ...]] = []
    at = 8 + length
    while len(tracks) < count:
        if at + 8 > len(data):
            raise MidiFileError(
                f"truncated: the header says {count} tracks, the file holds {len(tracks)}"
            )
        kind = data[at : at + 4]
        (size,) = struct.unpack_from(">I", data, at + 4)
        start = at + 8
        at = start + size
        if at > len(data):
            there = len(data) - start
            raise MidiFileError(
                f"track {len(tracks) + 1} is truncated ({size} bytes said, {there} there)"
            )
        if kind == b"MTrk":  # other chunks are skipped, as the standard asks
            tracks.append(_track(data[start:at], start, len(tracks) + 1))
    return Smf(midi_type, division, tuple(tracks))


def _track(chunk: bytes, base: int, number: int) -> tuple[Event, ...]:
    """The events of one MTrk chunk (``base``: its offset in the file, for messages)."""
    events: list[Event] = []
    append = events.append
    pos = tick = running = 0
    size = len(chunk)
    try:
        while pos < size:
            first = pos
            byte = chunk[pos]
            pos += 1
            delta = byte & 0x7F
            while byte & 0x80:
                if pos - first == 4:
                    raise MidiFileError(f"byte {base + first}: a delta time longer than 4 bytes")
                byte = chunk[pos]
                pos += 1
                delta = delta << 7 | byte & 0x7F
            tick += delta
            status = chunk[pos]
            if status & 0x80:
                pos += 1
            elif running:
                status = running
            else:
                raise MidiFileError(
                    f"byte {base + pos}: data byte 0x{status:02X} with no status to run on"
                )
            if status < SYSEX:
                count = _DATA_BYTES[status >> 4]
                data = chunk[pos : pos + count]
                if len(data) < count:
                    raise IndexError
                if (data[0] | data[-1]) & 0x80:
                    raise MidiFileError(
                        f"byte {base + pos}: a status byte where a data byte of 0x{status:02X} "
                        "belongs"
                    )
                pos += count
                running = status
                append(Event(tick, status, data))
            elif status == META:
                meta = chunk[pos]
                if meta & 0x80:
                    raise MidiFileError(f"byte {base + pos}: meta type 0x{meta:02X} (over 0x7F)")
                length, pos = _vlq_at(chunk, pos + 1, base)
                data = chunk[pos : pos + length]
                pos += length
                if pos > size:
                    raise IndexError
                append(Event(tick, META, data, meta))
            elif status in (SYSEX, ESCAPE):
                length, pos = _vlq_at(chunk, pos, base)
                data = chunk[pos : pos + length]
                pos += length
                if pos > size:
                    raise IndexError
                running = 0  # a sysex cancels running status
                append(Event(tick, status, data))
            else:
                raise MidiFileError(
                    f"byte {base + pos - 1}: status 0x{status:02X} (a system message) "
                    "has no place in a file"
                )
    except IndexError:
        raise MidiFileError(f"track {number}: an event runs past the end of the track") from None
    except MidiFileError as exc:
        raise MidiFileError(f"track {number}, {exc}") from None
    return tuple(events)


def _vlq_at(chunk: bytes, pos: int, base: int) -> tuple[int, int]:
    """The variable-length number at ``pos`` and the position after it."""
    value = 0
    for at in range(pos, pos + 4):
        byte = chunk[at]
        value = value << 7 | byte & 0x7F
        if not byte & 0x80:
            return value, at + 1
    raise MidiFileError(f"byte {base + pos}: a length longer than 4 bytes")


def timeline(smf: Smf) -> list[tuple[float, Event]]:
    """Every event of every track but the ends of tracks, merged in time order (at one
    tick, in track order), each with its time in seconds: tempo changes apply from
    their tick on, 120 BPM before the first. The arithmetic is mido's playback's, so
    the times are the same to the bit."""
    merged = sorted(
        (event for track in smf.tracks for event in track if event.meta != END_OF_TRACK),
        key=lambda event: event.tick,
    )
    out: list[tuple[float, Event]] = []
    tempo = DEFAULT_TEMPO
    seconds = 0.0
    last = 0
    for event in merged:
        if event.tick > last:
            seconds += (event.tick - last) * (tempo * 1e-6 / smf.ticks_per_beat)
            last = event.tick
        out.append((seconds, event))
        if event.meta == SET_TEMPO:
            tempo = event.tempo
    return out


# Writing.


class _NoteLike(Protocol):
    @property
    def pitch(self) -> int: ...
    @property
    def velocity(self) -> int: ...
    @property
    def onset(self) -> float: ...
    @property
    def end(self) -> float: ...


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
    def of(cls, notes: Iterable[_NoteLike]) -> NoteColumns:
        columns = cls()
        for note in notes:
            columns.append(note.pitch, note.velocity, note.onset, note.end)
        return columns


def meta_event(tick: int, meta: int, data: bytes) -> Event:
    return Event(tick, META, bytes(data), meta)


def text_event(tick: int, meta: int, text: str) -> Event:
    """A text, track name, marker or cue event (what Latin-1 cannot hold becomes ``?``)."""
    return meta_event(tick, meta, text.encode("latin-1", "replace"))


def tempo_event(tick: int, microseconds: int) -> Event:
    if not 0 < microseconds <= 0xFFFFFF:
        raise ValueError(f"a tempo of {microseconds} microseconds per beat (1 to 16777215)")
    return meta_event(tick, SET_TEMPO, microseconds.to_bytes(3, "big"))


def time_signature_event(tick: int, numerator: int, denominator: int) -> Event:
    """A time signature, with the usual metronome (24 clocks a click, 8 32nds a beat)."""
    power = denominator.bit_length() - 1
    if denominator != 1 << power:
        raise ValueError(f"a time signature's denominator must be a power of 2: {denominator}")
    return meta_event(tick, TIME_SIGNATURE, bytes((numerator, power, 24, 8)))


def key_signature_event(tick: int, sharps: int, minor: bool) -> Event:
    """A key signature: ``sharps`` (negative: flats, -7 to 7), major or minor."""
    if not -7 <= sharps <= 7:
        raise ValueError(f"a key signature has -7 to 7 sharps: {sharps}")
    return meta_event(tick, KEY_SIGNATURE, bytes((sharps & 0xFF, int(minor))))


def encode_track(
    events: Iterable[Event] = (),
    notes: NoteColumns | None = None,
    *,
    channel: int = 0,
    ticks_per_beat: int = 480,
) -> bytes:
    """One MTrk chunk: ``events`` in tick order (stable), and ``notes`` as note-on and
    note-off pairs on ``channel`` (an onset rounded to the nearest tick, an end at least
    a tick later, release velocity 64). At one tick events come before notes and
    note-offs before note-ons; the track ends at its last event (or at a given end of
    track, if later). Channel messages are written whole (no running status)."""
    ticks: list[int] = []
    payloads: list[bytes] = []
    end = 0
    for event in sorted(events, key=lambda event: event.tick):
        if event.tick < 0:
            raise ValueError(f"an event at tick {event.tick}")
        if event.meta == END_OF_TRACK:
            end = max(end, event.tick)
        elif event.status == META:
            payloads.append(bytes((META, event.meta)) + _vlq(len(event.data)) + event.data)
            ticks.append(event.tick)
        elif event.status in (SYSEX, ESCAPE):
            payloads.append(bytes((event.status,)) + _vlq(len(event.data)) + event.data)
            ticks.append(event.tick)
        else:
            payloads.append(event.message)
            ticks.append(event.tick)
    count = len(notes) if notes is not None else 0
    if notes is not None and count:
        on = np.maximum(0, np.rint(np.frombuffer(notes.onset, dtype=np.float64) * ticks_per_beat))
        off = np.maximum(
            on + 1, np.rint(np.frombuffer(notes.end, dtype=np.float64) * ticks_per_beat)
        )
        note_ticks = np.concatenate((on, off)).astype(np.int64)
        pitch = np.frombuffer(notes.pitch, dtype=np.uint8)
        velocity = np.frombuffer(notes.velocity, dtype=np.uint8)
    else:
        note_ticks = np.zeros(0, np.int64)
        pitch = velocity = np.zeros(0, np.uint8)
    all_ticks = np.concatenate((np.array(ticks, np.int64), note_ticks))
    is_note = np.concatenate((np.zeros(len(ticks), np.int8), np.ones(2 * count, np.int8)))
    is_on = np.concatenate((np.zeros(len(ticks), np.int8), np.ones(count, np.int8)))
    is_on = np.concatenate((is_on, np.zeros(count, np.int8)))
    order = np.lexsort((is_on, is_note, all_ticks))  # stable: given order breaks ties
    sorted_ticks = all_ticks[order]
    deltas = np.diff(sorted_ticks, prepend=0)
    if (deltas >= _MAX_DELTA).any():
        raise MidiFileError("a delta time over 2**28 ticks (the most a file can hold)")
    sizes = 1 + (deltas >= 1 << 7) + (deltas >= 1 << 14) + (deltas >= 1 << 21)
    lengths = np.concatenate(
        (np.array([len(p) for p in payloads], np.int64), np.full(2 * count, 3, np.int64))
    )[order]
    starts = np.concatenate(([0], np.cumsum(sizes + lengths)[:-1])).astype(np.int64)
    out = np.empty(int((sizes + lengths).sum()), np.uint8)
    for k in range(4):  # the delta's bytes, most significant first
        has = sizes > k
        shift = 7 * (sizes[has] - 1 - k)
        more = np.where(k < sizes[has] - 1, 0x80, 0)
        out[starts[has] + k] = ((deltas[has] >> shift) & 0x7F) | more
    where = np.empty(len(order), np.int64)  # each item's payload offset, in given order
    where[order] = starts + sizes
    for offset, payload in zip(where[: len(payloads)].tolist(), payloads, strict=True):
        out[offset : offset + len(payload)] = np.frombuffer(payload, np.uint8)
    if count:
        at = where[len(payloads) :]
        out[at] = np.concatenate(
            (
                np.full(count, NOTE_ON | channel, np.uint8),
                np.full(count, NOTE_OFF | channel, np.uint8),
            )
        )
        out[at + 1] = np.concatenate((pitch, pitch))
        out[at + 2] = np.concatenate((velocity, np.full(count, 64, np.uint8)))
    last = int(sorted_ticks[-1]) if len(sorted_ticks) else 0
    body = out.tobytes() + _vlq(max(0, end - last)) + bytes((META, END_OF_TRACK, 0))
    return b"MTrk" + struct.pack(">I", len(body)) + body


def _vlq(value: int) -> bytes:
    """A variable-length number (7 bits a byte, the high bit: more follow)."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def write_smf(
    path: str | Path, tracks: Sequence[bytes], *, ticks_per_beat: int = 480, midi_type: int = 1
) -> None:
    """Write a type 0 (one track) or type 1 file of :func:`encode_track`'s chunks."""
    if midi_type not in (0, 1) or (midi_type == 0 and len(tracks) != 1):
        raise ValueError(f"a type {midi_type} file of {len(tracks)} tracks")
    if not 0 < ticks_per_beat < 0x8000:
        raise ValueError(f"{ticks_per_beat} ticks per beat (1 to 32767)")
    with open(path, "wb") as out:
        out.write(b"MThd" + struct.pack(">IHHH", 6, midi_type, len(tracks), ticks_per_beat))
        for chunk in tracks:
            out.write(chunk)
