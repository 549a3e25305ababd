"""MIDI events, the packet parser and note bookkeeping: pure, no ports."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from improv.io.midi import (
    CC_ALL_NOTES_OFF,
    CC_SUSTAIN,
    EOX_PROBE,
    MidiEvent,
    MidiParser,
    NoteTracker,
    control_change,
    data_length,
    note_off,
    note_on,
    song_position,
)


def test_event_helpers() -> None:
    on = MidiEvent(note_on(3, 60, 100), 1.5)
    assert on.is_note_on and not on.is_note_off
    assert (on.channel, on.pitch, on.velocity, on.type) == (3, 60, 100, 0x90)
    assert MidiEvent(note_on(0, 60, 0), 0).is_note_off  # velocity 0 is a note-off
    assert MidiEvent(note_off(0, 60), 0).is_note_off
    cc = MidiEvent(control_change(1, CC_SUSTAIN, 127), 0)
    assert cc.is_control_change and (cc.control, cc.value) == (64, 127)
    clock = MidiEvent(b"\xf8", 0)
    assert clock.is_realtime and clock.channel == -1 and not clock.is_note_on
    assert song_position(1000) == bytes((0xF2, 1000 & 0x7F, 1000 >> 7))


def test_mido_conversion_round_trips() -> None:
    event = MidiEvent(note_on(2, 64, 90), 3.25)
    message = event.to_mido()
    assert (message.type, message.channel, message.note) == ("note_on", 2, 64)
    assert MidiEvent.from_mido(message, 3.25) == event


def test_clean_message_passes_whole() -> None:
    parser = MidiParser()
    packet = note_on(0, 60, 100)
    assert parser.parse(packet) == [packet]
    assert parser.malformed == 0


def test_running_status_inside_a_packet() -> None:
    parser = MidiParser()
    assert parser.parse(bytes([0x90, 60, 100, 62, 90, 64, 0])) == [
        bytes([0x90, 60, 100]),
        bytes([0x90, 62, 90]),
        bytes([0x90, 64, 0]),
    ]
    assert parser.malformed == 0


def test_garbage_is_dropped_and_counted() -> None:
    parser = MidiParser()
    # stray data, a truncated note-on, an undefined status, then a good CC
    out = parser.parse(bytes([0x45, 0x12, 0x90, 60, 0xF4, 0xB0, 7, 100]))
    assert out == [bytes([0xB0, 7, 100])]
    assert parser.malformed == 4  # two stray bytes, one truncated, one undefined


def test_realtime_bytes_interleave() -> None:
    parser = MidiParser()
    assert parser.parse(bytes([0x90, 60, 0xF8, 100])) == [b"\xf8", bytes([0x90, 60, 100])]


def test_sysex_limits() -> None:
    parser = MidiParser(max_sysex=8)
    assert parser.parse(bytes([0xF0, 1, 2, 3, 0xF7])) == [bytes([0xF0, 1, 2, 3, 0xF7])]
    assert parser.parse(bytes([0xF0]) + bytes(100) + b"\xf7") == []  # oversized
    assert parser.parse(bytes([0xF0, 1, 2, 0x90, 60, 1])) == [bytes([0x90, 60, 1])]  # cut off
    assert parser.parse(bytes([0xF0, 1, 2])) == []  # unterminated at packet end
    assert parser.malformed == 3


@given(st.binary(max_size=64))
def test_parser_never_raises_and_yields_well_formed_messages(packet: bytes) -> None:
    parser = MidiParser(max_sysex=16)
    for message in parser.parse(packet):
        status = message[0]
        assert status >= 0x80
        if status == 0xF0:
            assert message[-1] == 0xF7 and len(message) <= 16
            assert all(b < 0x80 for b in message[1:-1])
        else:
            assert len(message) == data_length(status) + 1
            assert all(b < 0x80 for b in message[1:])


def test_tracker_pairs_notes_and_honours_the_pedal() -> None:
    tracker = NoteTracker()
    tracker.feed(note_on(0, 60, 100))
    tracker.feed(control_change(0, CC_SUSTAIN, 127))
    tracker.feed(note_off(0, 60))
    assert tracker.is_sounding(0, 60) and not tracker.is_down(0, 60)  # held by the pedal
    assert tracker.any_sounding()
    tracker.feed(control_change(0, CC_SUSTAIN, 0))
    assert not tracker.any_sounding()


def test_tracker_release_messages_silence_everything() -> None:
    tracker = NoteTracker()
    tracker.feed(note_on(1, 50, 100))
    tracker.feed(note_on(1, 52, 100))
    tracker.feed(note_on(2, 70, 100))
    tracker.feed(control_change(2, CC_SUSTAIN, 100))
    tracker.feed(note_on(1, 52, 0))  # released
    messages = tracker.release_messages()
    assert note_off(1, 50) in messages and note_off(2, 70) in messages
    assert note_off(1, 52) not in messages
    assert control_change(2, CC_SUSTAIN, 0) in messages
    assert {m for m in messages if m[1] == CC_ALL_NOTES_OFF and m[0] & 0xF0 == 0xB0} == {
        control_change(1, CC_ALL_NOTES_OFF, 0),
        control_change(2, CC_ALL_NOTES_OFF, 0),
    }
    replay = NoteTracker()
    for message in [note_on(1, 50, 100), note_on(2, 70, 100), *messages]:
        replay.feed(message)
    assert not replay.any_sounding()


def test_an_unterminated_sysex_ends_at_the_next_status_byte() -> None:
    """What rtmidi's JACK back end delivers after ``F0 01 02``: everything glued on, up to
    the guard's probe. The sysex is dropped and counted; the notes after it are kept."""
    parser = MidiParser(ignore_sysex=True)
    glued = bytes([0xF0, 1, 2, *note_on(0, 60, 90), *note_off(0, 60), *EOX_PROBE])
    assert parser.parse(glued) == [note_on(0, 60, 90), note_off(0, 60)]
    assert parser.malformed == 1
    assert parser.parse(bytes([0xF0, 1, 2])) == [] and parser.malformed == 2  # alone
    assert parser.parse(note_on(0, 62, 90)) == [note_on(0, 62, 90)]  # the next is heard


def test_sysex_is_ignored_on_request_and_the_probe_always() -> None:
    sysex = bytes([0xF0, 0x43, 0x10, 0xF7])
    assert MidiParser().parse(sysex) == [sysex]
    assert MidiParser(ignore_sysex=True).parse(sysex) == []
    for parser in (MidiParser(), MidiParser(ignore_sysex=True)):
        assert parser.parse(EOX_PROBE) == [] and parser.malformed == 0
