"""Standard MIDI Files, the bytes: what is written reads back, mido reads our files as
it reads its own, and every malformed file is one clear MidiFileError."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import mido
import pytest
from mido.midifiles.meta import encode_variable_int as _vlq

from improv.smf import (
    END_OF_TRACK,
    MARKER,
    META,
    SET_TEMPO,
    TRACK_NAME,
    Event,
    MidiFileError,
    NoteColumns,
    encode_track,
    key_signature_event,
    load_midi,
    read_smf,
    tempo_event,
    text_event,
    time_signature_event,
    timeline,
    write_smf,
)


def _header(midi_type: int = 0, tracks: int = 1, division: int = 480) -> bytes:
    return b"MThd" + struct.pack(">IHHH", 6, midi_type, tracks, division)


def _chunk(body: bytes) -> bytes:
    return b"MTrk" + struct.pack(">I", len(body)) + body


def _file(body: bytes, **header: int) -> bytes:
    return _header(**header) + _chunk(body)


EVENTS = [
    text_event(0, TRACK_NAME, "solo - take 1"),
    tempo_event(0, 400_000),
    time_signature_event(0, 3, 4),
    key_signature_event(0, -2, False),
    Event(0, 0xC1, b"\x42"),  # program change, one data byte
    Event(0, 0xF0, b"\x7e\x7f\x09\x01\xf7"),  # sysex: General MIDI on
    text_event(480, MARKER, "Bb7"),
    Event(500, 0xE1, b"\x00\x40"),  # pitch bend
    Event(700, 0xF7, b"\xf8"),  # escape: any bytes as they are
    tempo_event(960, 300_000),
    text_event(1440, MARKER, "Eb7"),
]


def _written(tmp_path: Path, tracks: list[bytes], midi_type: int = 1, tpb: int = 480) -> Path:
    path = tmp_path / "out.mid"
    write_smf(path, tracks, ticks_per_beat=tpb, midi_type=midi_type)
    return path


def test_type_0_round_trip_keeps_every_event(tmp_path: Path) -> None:
    notes = NoteColumns()
    notes.append(60, 100, 0.0, 1.0)
    notes.append(62, 90, 1.0, 1.5)
    path = _written(tmp_path, [encode_track(EVENTS, notes, channel=1)], midi_type=0)
    smf = read_smf(path.read_bytes())
    assert (smf.midi_type, smf.ticks_per_beat, len(smf.tracks)) == (0, 480, 1)
    (track,) = smf.tracks
    assert [e for e in track if e.status >= 0xF0 or e.status & 0xF0 not in (0x80, 0x90)] == [
        *EVENTS,
        Event(1440, META, b"", END_OF_TRACK),
    ]
    played = [(e.tick, e.is_note_on, e.data[0]) for e in track if e.is_note_on or e.is_note_off]
    # at one tick: events before notes, a note-off before a note-on
    assert played == [(0, True, 60), (480, False, 60), (480, True, 62), (720, False, 62)]
    assert [e.meta for e in track if e.tick == 480] == [MARKER, -1, -1]
    assert [e.text for e in track if e.meta == MARKER] == ["Bb7", "Eb7"]
    assert next(e for e in track if e.meta == SET_TEMPO).tempo == 400_000
    assert next(e for e in track if e.meta == 0x58).time_signature == (3, 4)
    assert next(e for e in track if e.meta == 0x59).key_signature == (-2, False)


def test_type_1_round_trip_keeps_tracks_apart(tmp_path: Path) -> None:
    notes = NoteColumns()
    notes.append(40, 70, 2.0, 4.0)
    tracks = [
        encode_track(EVENTS[:4], ticks_per_beat=96),
        encode_track([text_event(0, TRACK_NAME, "bass")], notes, channel=2, ticks_per_beat=96),
        encode_track([Event(10, META, b"", END_OF_TRACK)]),  # an empty track that lasts
    ]
    smf = read_smf(_written(tmp_path, tracks, tpb=96))
    assert (smf.midi_type, smf.ticks_per_beat) == (1, 96)
    assert smf.tracks[0][:-1] == tuple(EVENTS[:4])
    assert [e.message for e in smf.tracks[1][1:-1]] == [b"\x92\x28\x46", b"\x82\x28\x40"]
    assert [e.tick for e in smf.tracks[1]] == [0, 192, 384, 384]
    assert smf.tracks[2] == (Event(10, META, b"", END_OF_TRACK),)


def test_running_status_is_read_across_meta_events_and_ended_by_a_sysex() -> None:
    body = (
        b"\x00\x90\x3c\x64"  # note-on C4
        + b"\x10\x3e\x64"  # running status: note-on D4
        + b"\x00\xff\x06\x02C7"  # a marker keeps running status
        + b"\x10\x3c\x00"  # running status: note-on velocity 0, a note-off
        + b"\x00\xff\x2f\x00"
    )
    (track,) = read_smf(_file(body)).tracks
    assert [(e.tick, e.message) for e in track if e.status < 0xF0] == [
        (0, b"\x90\x3c\x64"),
        (16, b"\x90\x3e\x64"),
        (32, b"\x90\x3c\x00"),
    ]
    assert track[-2].is_note_off and not track[-2].is_note_on
    after_sysex = b"\x00\x90\x3c\x64\x00\xf0\x01\xf7\x00\x3c\x00"
    with pytest.raises(MidiFileError, match="no status to run on"):
        read_smf(_file(after_sysex))


def test_a_file_mido_wrote_with_running_status_reads_as_mido_reads_it(tmp_path: Path) -> None:
    rng = random.Random(3)
    track = mido.MidiTrack()
    for _ in range(300):
        kind = rng.choice(["note_on", "note_on", "note_off", "control_change", "sysex"])
        time = rng.choice([0, 0, 1, 200, 20_000])
        if kind == "control_change":
            message = mido.Message(kind, channel=3, control=7, value=rng.randrange(128), time=time)
        elif kind == "sysex":
            message = mido.Message(kind, data=[1, 2, rng.randrange(128)], time=time)
        else:
            velocity = rng.choice([0, 1, 127])
            message = mido.Message(kind, note=rng.randrange(128), velocity=velocity, time=time)
        track.append(message)
    midi = mido.MidiFile(type=0, ticks_per_beat=240)
    midi.tracks.append(track)
    path = tmp_path / "mido.mid"
    midi.save(path)
    whole = sum(len(_vlq(m.time)) + len(m.bytes()) + (m.type == "sysex") for m in track)
    assert len(path.read_bytes()) < 14 + 8 + whole + 4  # mido wrote running status
    ours = [(e.tick, e.message) for e in read_smf(path).tracks[0] if e.status != META]
    tick, theirs = 0, []
    for message in mido.MidiFile(path).tracks[0]:
        tick += message.time
        if not message.is_meta:
            theirs.append((tick, bytes(message.bytes())))
    assert ours == theirs


def test_note_on_with_velocity_0_is_a_note_off() -> None:
    on, zero, off = Event(0, 0x93, b"\x3c\x40"), Event(0, 0x93, b"\x3c\x00"), Event(0, 0x83, b"<@")
    assert (on.is_note_on, on.is_note_off) == (True, False)
    assert (zero.is_note_on, zero.is_note_off) == (False, True)
    assert (off.is_note_on, off.is_note_off, off.channel) == (False, True, 3)


def _mido_events(path: Path) -> list[list[object]]:
    """Each track as mido reads it: (absolute tick, message without its time)."""
    tracks = []
    for track in mido.MidiFile(path).tracks:
        tick, events = 0, []
        for message in track:
            tick += message.time
            events.append((tick, message.copy(time=0)))
        tracks.append(events)
    return tracks


def test_mido_reads_our_files_as_it_reads_its_own(tmp_path: Path) -> None:
    """The same content written by improv.smf and by mido: mido reads both alike."""
    rng = random.Random(7)
    notes = NoteColumns()
    for _ in range(200):
        onset = rng.choice([0.0, 0.5, 3.0, 500.0]) * rng.random()
        notes.append(rng.randrange(128), rng.randrange(1, 128), onset, onset + rng.random())
    meta = [
        text_event(0, TRACK_NAME, "conductor é"),
        tempo_event(0, 612_244),
        time_signature_event(0, 7, 8),
        key_signature_event(0, 6, True),
        text_event(4 * 480, MARKER, "F#m7b5"),
        Event(5 * 480, 0xF0, b"\x43\x10\x4c\xf7"),
    ]
    ours = _written(
        tmp_path, [encode_track(meta), encode_track([Event(0, 0xC5, b"\x21")], notes, channel=5)]
    )

    midi = mido.MidiFile(type=1, ticks_per_beat=480)
    conductor = [
        (0, mido.MetaMessage("track_name", name="conductor é")),
        (0, mido.MetaMessage("set_tempo", tempo=612_244)),
        (0, mido.MetaMessage("time_signature", numerator=7, denominator=8)),
        (0, mido.MetaMessage("key_signature", key="D#m")),
        (4 * 480, mido.MetaMessage("marker", text="F#m7b5")),
        (5 * 480, mido.Message("sysex", data=[0x43, 0x10, 0x4C])),
    ]
    played = [(0, 0, mido.Message("program_change", channel=5, program=0x21))]
    for pitch, velocity, onset, end in zip(
        notes.pitch, notes.velocity, notes.onset, notes.end, strict=True
    ):
        on = round(onset * 480)
        off = max(on + 1, round(end * 480))
        played.append((on, 2, mido.Message("note_on", channel=5, note=pitch, velocity=velocity)))
        played.append((off, 1, mido.Message("note_off", channel=5, note=pitch, velocity=64)))
    notes_in_order = [(tick, message) for tick, _, message in sorted(played, key=lambda e: e[:2])]
    for events in (conductor, notes_in_order):
        track, last = mido.MidiTrack(), 0
        for tick, message in events:
            track.append(message.copy(time=tick - last))
            last = tick
        midi.tracks.append(track)
    theirs = tmp_path / "theirs.mid"
    midi.save(theirs)
    assert ours.read_bytes() != theirs.read_bytes()  # mido uses running status; we do not
    assert _mido_events(ours) == _mido_events(theirs)


def test_the_timeline_applies_tempo_changes_as_mido_plays_them(tmp_path: Path) -> None:
    rng = random.Random(5)
    notes = NoteColumns()
    for beat in range(200):
        onset = beat * 0.75 + rng.random() / 7
        notes.append(60, 80, onset, onset + 0.5)
    conductor = [
        tempo_event(0, 612_244),
        tempo_event(40 * 96, 277_777),
        tempo_event(70 * 96, 1_000_003),
    ]
    path = _written(
        tmp_path,
        [encode_track(conductor), encode_track([], notes, channel=0, ticks_per_beat=96)],
        tpb=96,
    )
    ours = [(seconds, e.message) for seconds, e in timeline(load_midi(path)) if e.status < 0xF0]
    theirs, seconds = [], 0.0
    for message in mido.MidiFile(path):
        seconds += message.time
        if not message.is_meta:
            theirs.append((seconds, bytes(message.bytes())))
    assert ours == theirs  # to the bit
    last = round(notes.end[-1] * 96) / 96  # the last note-off, in beats
    expected = 40 * 0.612244 + 30 * 0.277777 + (last - 70) * 1.000003
    assert ours[-1][0] == pytest.approx(expected, rel=1e-12)


def test_a_gap_too_long_for_a_file_is_refused() -> None:
    with pytest.raises(MidiFileError, match=r"2\*\*28"):
        encode_track([text_event(1 << 28, MARKER, "far")])


MALFORMED = {
    "not MIDI": (b"RIFF\x00\x00\x00\x04RMID", "not a MIDI file"),
    "short header": (b"MThd\x00\x00\x00\x06\x00\x00", "header is truncated"),
    "header length": (b"MThd\x00\x00\x00\x04" + bytes(6), "header of 4 bytes"),
    "type 2": (_file(b"\x00\xff\x2f\x00", midi_type=2), "type 2"),
    "type 3": (_file(b"\x00\xff\x2f\x00", midi_type=3), "MIDI type 3"),
    "0 ticks per beat": (_file(b"\x00\xff\x2f\x00", division=0), "0 ticks per beat"),
    "SMPTE": (_file(b"\x00\xff\x2f\x00", division=0xE728), r"SMPTE time \(25 frames"),
    "missing track": (_file(b"\x00\xff\x2f\x00", tracks=2), "says 2 tracks, the file holds 1"),
    "truncated chunk": (_file(b"\x00\xff\x2f\x00")[:-2], r"track 1 is truncated \(4 bytes said, 2"),
    "event past the end": (_file(b"\x00\x90\x3c"), "track 1: an event runs past the end"),
    "meta past the end": (_file(b"\x00\xff\x06\x05C7"), "runs past the end"),
    "long delta": (_file(b"\x81\x81\x81\x81\x01\x90\x3c\x40"), "delta time longer than 4 bytes"),
    "long length": (_file(b"\x00\xff\x06\x81\x81\x81\x81\x01"), "length longer than 4 bytes"),
    "no running status": (
        _file(b"\x00\x3c\x40"),
        r"track 1, byte 23: data byte 0x3C with no status",
    ),
    "status as data": (_file(b"\x00\x90\x3c\x90"), "a status byte where a data byte of 0x90"),
    "real-time status": (_file(b"\x00\xf8"), "status 0xF8"),
    "meta type": (_file(b"\x00\xff\x86\x00"), "meta type 0x86"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_file_is_one_clear_error(case: str) -> None:
    data, message = MALFORMED[case]
    with pytest.raises(MidiFileError, match=message) as caught:
        read_smf(data)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("data", "decode", "message"),
    [
        (b"\x00\x00\x00", "tempo", "tempo 0"),
        (b"\x07\xa1", "tempo", "set_tempo of 2 bytes"),
        (b"\x04\x02", "time_signature", "time_signature of 2 bytes"),
        (b"\x09\x00", "key_signature", "9 sharps"),
        (b"\x00\x02", "key_signature", "mode 2"),
    ],
)
def test_a_meta_event_that_says_nothing_readable_is_an_error(
    data: bytes, decode: str, message: str
) -> None:
    with pytest.raises(MidiFileError, match=message):
        getattr(Event(0, META, data, 0x51), decode)


def test_load_midi_checks_the_file_before_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "take.mid"
    path.write_bytes(_file(b"\x00\x90\x3c\x40\x60\x80\x3c\x40\x00\xff\x2f\x00"))
    assert len(load_midi(path).tracks[0]) == 3
    with pytest.raises(MidiFileError, match=r"take\.mid: too large \(0\.0 MiB > "):
        load_midi(path, limit=10)
    with pytest.raises(MidiFileError, match="a folder, not a file"):
        load_midi(tmp_path)
    with pytest.raises(MidiFileError, match=r"/dev/zero: not a regular file"):
        load_midi("/dev/zero")
    with pytest.raises(MidiFileError, match=r"gone\.mid: no such file"):
        read_smf(tmp_path / "gone.mid")
    path.write_bytes(b"MThd")
    with pytest.raises(MidiFileError, match=r"take\.mid: the header is truncated"):
        load_midi(path)


def test_alien_chunks_are_skipped() -> None:
    alien = b"XFIH" + struct.pack(">I", 3) + b"abc"
    data = _header() + alien + _chunk(b"\x00\xff\x2f\x00")
    assert read_smf(data).tracks == ((Event(0, META, b"", END_OF_TRACK),),)


def test_writing_refuses_what_no_file_can_say(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="type 0 file of 2 tracks"):
        write_smf(tmp_path / "x.mid", [encode_track(), encode_track()], midi_type=0)
    with pytest.raises(ValueError, match="power of 2"):
        time_signature_event(0, 4, 6)
    with pytest.raises(ValueError, match="-7 to 7"):
        key_signature_event(0, 8, False)
    with pytest.raises(ValueError, match="tempo of 0"):
        tempo_event(0, 0)
