"""Jam files out, performer takes in."""

from __future__ import annotations

import random
from pathlib import Path

import mido
import pytest

from improv.errors import UsageError
from improv.io.midi.files import Track, read_take, write_jam
from improv.music.notes import ChordChange, Note
from improv.music.time import Metre
from improv.smf import NoteColumns

PERFORMER = [Note(60, 100, 0.0, 1.0), Note(64, 90, 1.5, 0.5), Note(67, 80, 2.0, 2.0)]
AGENT = [Note(72, 70, 4.0, 0.25), Note(72, 75, 4.25, 0.75)]  # same pitch, back to back
CHORDS = [ChordChange(0.0, "C7", None), ChordChange(4.0, "F7", None)]


def test_jam_file_has_conductor_and_player_tracks(tmp_path: Path) -> None:
    path = write_jam(
        tmp_path / "jam.mid",
        [Track("performer", PERFORMER, channel=0), Track("improv", AGENT, channel=1, program=66)],
        bpm=150.0,
        metre=Metre(3, 4),
        chords=CHORDS,
    )
    midi = mido.MidiFile(path)
    assert midi.type == 1 and len(midi.tracks) == 3
    meta = {m.type: m for m in midi.tracks[0] if m.is_meta}
    assert mido.tempo2bpm(meta["set_tempo"].tempo) == pytest.approx(150.0)
    assert (meta["time_signature"].numerator, meta["time_signature"].denominator) == (3, 4)
    markers = [m.text for m in midi.tracks[0] if m.type == "marker"]
    assert markers == ["C7", "F7"]
    names = [next(m.name for m in t if m.type == "track_name") for t in midi.tracks[1:]]
    assert names == ["performer", "improv"]
    agent_channels = {m.channel for m in midi.tracks[2] if m.type.startswith("note")}
    assert agent_channels == {1}


def mido_reference(notes: list[Note], channel: int, tpb: int = 480) -> list[mido.Message]:
    """A track's note messages as mido would write them: sorted by tick, note-offs
    before note-ons at one tick, deltas in ticks."""
    events = []
    for note in notes:
        on = max(0, round(note.onset * tpb))
        off = max(on + 1, round(note.end * tpb))
        events.append(
            (
                on,
                2,
                mido.Message("note_on", channel=channel, note=note.pitch, velocity=note.velocity),
            )
        )
        events.append((off, 1, mido.Message("note_off", channel=channel, note=note.pitch)))
    out, last = [], 0
    for tick, _order, message in sorted(events, key=lambda e: (e[0], e[1])):
        out.append(message.copy(time=tick - last))
        last = tick
    return out


def test_encoded_tracks_read_back_as_mido_writes_them(tmp_path: Path) -> None:
    """The file's bytes come from improv's own encoder: every note message, delta
    (one to four bytes) and tie order as mido's writer gives them."""
    rng = random.Random(1)
    notes = [
        Note(rng.randrange(128), rng.randrange(1, 128), onset, rng.choice([0.001, 0.01, 0.5, 3.0]))
        for onset in sorted(
            rng.choice([0.0, 0.25, 1.0, 40.0, 300.0]) * rng.random() for _ in range(500)
        )
    ]
    notes += [Note(60, 90, 0.0, 1.0), Note(62, 90, 1.0, 1.0), Note(64, 90, 300_000.0, 1.0)]
    path = write_jam(
        tmp_path / "jam.mid",
        [
            Track("a", notes, channel=2, program=33),
            Track("b", NoteColumns.of(notes[:9]), channel=9),
        ],
        bpm=97.0,
        chords=CHORDS,
        metres=[(8.0, Metre(3, 4))],
    )
    midi = mido.MidiFile(path)
    for track, (expected, channel) in zip(
        midi.tracks[1:], [(notes, 2), (notes[:9], 9)], strict=True
    ):
        got = [m for m in track if not m.is_meta and m.type != "program_change"]
        assert got == mido_reference(expected, channel)
    programs = [m.program for m in midi.tracks[1] if m.type == "program_change"]
    assert programs == [33]
    tick, conductor = 0, []
    for message in midi.tracks[0]:
        tick += message.time
        conductor.append((tick, message.type))
    assert conductor[:3] == [(0, "track_name"), (0, "set_tempo"), (0, "time_signature")]
    assert conductor[3:-1] == [(0, "marker"), (4 * 480, "marker"), (8 * 480, "time_signature")]
    assert conductor[-1] == (8 * 480, "end_of_track")
    assert Note(64, 90, 300_000.0, 1.0) in read_take(path, channel=2).notes


def test_round_trip_keeps_notes_in_beats(tmp_path: Path) -> None:
    path = write_jam(
        tmp_path / "jam.mid",
        [Track("performer", PERFORMER, 0), Track("improv", AGENT, 1)],
        bpm=90.0,
        chords=CHORDS,
    )
    take = read_take(path)
    assert take.bpm == pytest.approx(90.0) and take.metre == Metre()
    assert take.markers == ((0.0, "C7"), (4.0, "F7"))
    assert take.notes == tuple(sorted(PERFORMER + AGENT, key=lambda n: (n.onset, n.pitch)))
    (only_agent,) = {read_take(path, channel=1).notes}
    assert only_agent == tuple(AGENT)


def test_unpaired_notes_end_with_the_file(tmp_path: Path) -> None:
    midi = mido.MidiFile(ticks_per_beat=96)
    track = mido.MidiTrack()
    track.append(mido.Message("note_on", note=60, velocity=100, time=0))
    track.append(mido.Message("note_on", note=62, velocity=100, time=96))
    track.append(mido.Message("note_off", note=62, time=96))
    midi.tracks.append(track)
    path = tmp_path / "stuck.mid"
    midi.save(path)
    notes = read_take(path).notes
    assert [(n.pitch, n.onset, n.duration) for n in notes] == [(60, 0.0, 2.0), (62, 1.0, 1.0)]


def test_unreadable_file_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.mid"
    path.write_bytes(b"not a midi file")
    with pytest.raises(UsageError, match=r"bad\.mid"):
        read_take(path)
    with pytest.raises(UsageError):
        read_take(tmp_path / "missing.mid")
