"""Schedulers through real JACK ports: in-process and in a sender process of its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from improv.errors import ImprovError
from improv.io import midi
from improv.io.midi import MidiEvent, NoteTracker, RtMidiInput
from improv.output.scheduler import Scheduler
from improv.output.sender import OutputSpec, ProcessScheduler
from improv.timebase import now

pytestmark = [pytest.mark.jack, pytest.mark.realtime]


@pytest.fixture
def listener(jack_server: str) -> Iterator[RtMidiInput]:
    port = midi.open_input(virtual=True, api="jack", client_name="listener")
    yield port
    port.close()


async def receive_n(port: RtMidiInput, n: int, timeout: float = 5.0) -> list[MidiEvent]:
    return [await asyncio.wait_for(port.receive(), timeout) for _ in range(n)]


def check_arrivals(events: list[MidiEvent], times: list[float]) -> None:
    """Arrivals follow the schedule in order and never early (within the input's half a
    millisecond of timestamp error); how late is ``improv bench scheduler``'s figure."""
    arrivals = [event.time for event in events]
    assert arrivals == sorted(arrivals)
    errors = sorted(a - t for a, t in zip(arrivals, times, strict=True))
    assert errors[0] >= -0.0005


async def test_in_process_scheduler_through_jack(listener: RtMidiInput) -> None:
    out = midi.open_output("listener", api="jack")
    try:
        with Scheduler(out) as scheduler:
            start = now() + 0.05
            times = [start + i * 0.0125 for i in range(16)]
            for t in times:
                scheduler.schedule_note(60, 100, t, t + 0.006)
            events = await receive_n(listener, 32)
            check_arrivals(events[::2], times)
            assert scheduler.stats().sent == 32
    finally:
        out.close()


async def test_process_scheduler_sends_on_time_and_reports(listener: RtMidiInput) -> None:
    reported: list[tuple[bytes, float, float]] = []
    all_reported = threading.Event()

    def on_sent(data: bytes, scheduled: float, sent: float) -> None:
        reported.append((data, scheduled, sent))
        if len(reported) == 32:
            all_reported.set()

    with ProcessScheduler(OutputSpec("listener", api="jack"), on_sent=on_sent) as scheduler:
        assert "listener:in" in scheduler.name
        start = now() + 0.05
        times = [start + i * 0.0125 for i in range(16)]
        for i, t in enumerate(times):
            scheduler.schedule_note(60 + i, 100, t, t + 0.006, channel=3)
        events = await receive_n(listener, 32)
        check_arrivals([e for e in events if e.is_note_on], times)
        assert await asyncio.to_thread(all_reported.wait, 5)
        assert [d for d, _, _ in reported] == [e.data for e in events]
        assert all(sent >= scheduled for _, scheduled, sent in reported)
        stats = scheduler.stats()
        assert stats.sent == 32 and stats.failed == 0
        assert len(scheduler.send_errors()) == 32


async def test_process_scheduler_barge_in_and_panic(listener: RtMidiInput) -> None:
    scheduler = ProcessScheduler(OutputSpec("listener", api="jack"))
    start = now() + 1.0
    scheduler.schedule_note(50, 100, start - 0.9, start + 5.0)  # before start(): kept
    scheduler.start()
    try:
        scheduler.schedule_note(52, 100, start + 1.0, start + 2.0)  # never starts
        (first,) = await receive_n(listener, 1)
        assert first.is_note_on and first.pitch == 50
        scheduler.cancel_after(now())  # posted: the note-off is what says it was done
        (off,) = await receive_n(listener, 1)
        assert off.is_note_off and off.pitch == 50
        scheduler.schedule_note(55, 100, now(), now() + 10.0)
        await receive_n(listener, 1)
        scheduler.stop(release=False)  # the engine's order: stop, then panic
        scheduler.panic()  # posted
        released = await receive_n(listener, 2)
        tracker = NoteTracker()
        for event in [first, off, *released]:
            tracker.feed(event.data)
        assert not tracker.any_sounding()
        assert scheduler.pending() == 0
    finally:
        scheduler.close()
    assert not scheduler.running


async def test_process_scheduler_reports_a_missing_port(jack_server: str) -> None:
    with pytest.raises(ImprovError, match="no MIDI port matches"):
        ProcessScheduler(OutputSpec("nowhere", api="jack")).start()
