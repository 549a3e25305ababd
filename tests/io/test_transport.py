"""The in-process loopback and the bounded hand-over from a producer thread to the loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from improv.io.midi import PortClosedError, note_on
from improv.io.midi.loopback import RecordingOutput, loopback
from improv.timebase import now


async def test_loopback_delivers_in_order_with_times() -> None:
    out, midi_in = loopback()
    before = now()
    for pitch in range(60, 64):
        assert out.send(note_on(0, pitch, 100))
    events = [await asyncio.wait_for(midi_in.receive(), 1) for _ in range(4)]
    assert [e.pitch for e in events] == [60, 61, 62, 63]
    assert all(before <= e.time <= now() for e in events)
    assert out.stats.sent == 4 and midi_in.stats.received == 4


async def test_events_from_another_thread_wake_the_loop() -> None:
    out, midi_in = loopback()
    receiver = asyncio.create_task(midi_in.receive())
    await asyncio.sleep(0)  # the receiver waits now
    threading.Thread(target=out.send, args=(note_on(0, 61, 90),)).start()
    event = await asyncio.wait_for(receiver, 2)
    assert event.pitch == 61


async def test_a_flood_is_bounded_dropped_and_counted() -> None:
    out, midi_in = loopback(capacity=100)
    sysex = bytes([0xF0]) + bytes(5000) + b"\xf7"  # oversized: malformed, never buffered
    for _ in range(1000):
        out.send(note_on(0, 60, 100))
        out.send(sysex)
    assert midi_in.pending() == 100
    assert midi_in.stats.dropped == 900
    assert midi_in.stats.malformed == 1000
    assert (await midi_in.receive()).pitch == 60


async def test_close_ends_iteration_after_draining() -> None:
    out, midi_in = loopback()
    out.send(note_on(0, 60, 100))
    midi_in.close()
    assert [e.pitch async for e in midi_in] == [60]
    with pytest.raises(PortClosedError):
        await midi_in.receive()
    assert not out.send(note_on(0, 60, 100))


async def test_close_wakes_a_waiting_receiver() -> None:
    _out, midi_in = loopback()
    receiver = asyncio.create_task(midi_in.receive())
    await asyncio.sleep(0)
    midi_in.close()
    with pytest.raises(PortClosedError):
        await asyncio.wait_for(receiver, 1)


def test_recording_output_keeps_messages() -> None:
    out = RecordingOutput()
    out.send(note_on(0, 60, 1))
    out.set_connected(False)
    assert not out.send(note_on(0, 61, 1))
    assert [e.pitch for e in out.take()] == [60]
    assert out.stats.dropped == 1 and out.events == []
