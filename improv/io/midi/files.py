"""Standard MIDI Files at the edge: write a jam, read a performer's take.

A jam file has a conductor track (tempo, time signature, one marker per chord change,
as in the WJazzD-style corpus files), a performer track and an agent track, each note
on its own channel so a DAW shows who played what. Reading keeps only what drives the
agent: notes in beats (``ticks / ticks_per_beat``, so tempo changes do not move the
beat grid), the first tempo, the time signature and the marker texts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
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
