"""Real rtmidi ports on a JACK dummy server: round trips, bad input, vanishing peers."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from improv.cli import main
from improv.errors import UsageError
from improv.io import midi
from improv.io.midi import MidiEvent, RtMidiInput, RtMidiOutput, note_on
from improv.timebase import now
from tests.fixtures.jack import JackServer

pytestmark = [pytest.mark.jack, pytest.mark.realtime]


@pytest.fixture(autouse=True)
def fast_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(midi.watchdog(), "interval_s", 0.05)


@pytest.fixture
def ports(jack_server: str) -> Iterator[list[RtMidiInput | RtMidiOutput]]:
    """Ports a test opens; all closed afterwards, before the server stops."""
    opened: list[RtMidiInput | RtMidiOutput] = []
    yield opened
    for port in reversed(opened):
        port.close()


class StatusLog:
    """Collects connect/disconnect notifications from the watchdog thread."""

    def __init__(self) -> None:
        self.states: list[bool] = []
        self._changed = threading.Condition()

    def __call__(self, connected: bool) -> None:
        with self._changed:
            self.states.append(connected)
            self._changed.notify_all()

    async def wait_for(self, state: bool, count: int = 1, timeout: float = 10.0) -> None:
        def wait() -> bool:
            with self._changed:
                return self._changed.wait_for(lambda: self.states.count(state) >= count, timeout)

        assert await asyncio.to_thread(wait), f"no {state} notification: {self.states}"


async def receive_n(port: RtMidiInput, n: int, timeout: float = 5.0) -> list[MidiEvent]:
    events: list[MidiEvent] = []
    try:
        while len(events) < n:
            events.append(await asyncio.wait_for(port.receive(), timeout))
    except TimeoutError:
        raise AssertionError(f"{len(events)} of {n} events came: {events}; {port.stats}") from None
    return events


async def connected(midi_in: RtMidiInput, out: RtMidiOutput, timeout: float = 5.0) -> None:
    """Return once a message from ``out`` has come through ``midi_in``: the connection
    is live in JACK's graph, so what the test sends next is not sent into a port that is
    not yet connected. A connection made takes effect in a later cycle (later still
    after a server restart), and what is sent before it is lost: the handshake is sent
    again every 100 ms (75 JACK cycles) until one comes."""
    handshake = bytes([0x80, 0, 0])
    deadline = now() + timeout
    while True:
        assert out.send(handshake)
        try:
            event = await asyncio.wait_for(midi_in.receive(), 0.1)
        except TimeoutError:
            if now() > deadline:
                raise AssertionError(f"no handshake came in {timeout} s; {midi_in.stats}") from None
            continue
        assert event.data == handshake
        return


async def test_round_trip_through_virtual_ports(
    ports: list[RtMidiInput | RtMidiOutput],
) -> None:
    midi_in = midi.open_input(virtual=True, api="jack")
    ports.append(midi_in)
    out = midi.open_output("improv-in", api="jack", client_name="performer")
    ports.append(out)
    await connected(midi_in, out)
    sent, received = out.stats.sent, midi_in.stats.received  # the handshake's
    sent_at = []
    for pitch in (60, 64, 67):
        sent_at.append(now())
        assert out.send(note_on(0, pitch, 100))
        await asyncio.sleep(0.01)
    events = await receive_n(midi_in, 3)
    assert [e.pitch for e in events] == [60, 64, 67]
    for event, t in zip(events, sent_at, strict=True):
        assert t <= event.time < t + 0.05  # one JACK period is 1.3 ms
    assert out.stats.sent == sent + 3 and midi_in.stats.received == received + 3


def test_ports_are_listed_and_matched(ports: list[RtMidiInput | RtMidiOutput]) -> None:
    ports.append(midi.open_input(virtual=True, api="jack", client_name="listed-in"))
    ports.append(midi.open_output(virtual=True, api="jack", client_name="listed-out"))
    (entry,) = midi.list_ports("jack")
    assert "listed-out:out" in entry.inputs  # what improv can read from
    assert "listed-in:in" in entry.outputs  # what improv can write to
    with pytest.raises(UsageError, match="no MIDI port matches"):
        midi.open_input("no-such-port", api="jack")


def test_improv_ports_json(
    ports: list[RtMidiInput | RtMidiOutput], capsys: pytest.CaptureFixture[str]
) -> None:
    ports.append(midi.open_output(virtual=True, api="jack", client_name="json-out"))
    assert main(["ports", "--midi-api", "jack", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    (entry,) = listing["apis"]
    assert entry["api"] == "jack" and "json-out:out" in entry["inputs"]


async def rogue_into(
    ports: list[RtMidiInput | RtMidiOutput], **input_options: Any
) -> tuple[RtMidiInput, RtMidiOutput]:
    """A virtual JACK input (``improv-in``) and a connected output ``rogue`` into it."""
    midi_in = midi.open_input(virtual=True, api="jack", **input_options)
    ports.append(midi_in)
    rogue = midi.open_output("improv-in", api="jack", client_name="rogue")
    ports.append(rogue)
    await connected(midi_in, rogue)
    return midi_in, rogue


async def test_malformed_input_is_counted_not_fatal(
    ports: list[RtMidiInput | RtMidiOutput],
) -> None:
    midi_in, rogue = await rogue_into(ports, ignore_sysex=False, capacity=64)
    garbage = [
        bytes([0x3C, 0x64]),  # running status with no status before it
        bytes([0x90, 60]),  # truncated
        bytes([0x45]),  # stray data byte
        bytes([0xF4]),  # undefined status
        bytes([0xF0, 1, 2, 0x90, 3, 0xF7]),  # sysex cut by a status byte
    ]
    for packet in garbage:
        rogue.send(packet)
    for pitch in range(40, 50):  # notes without note-offs
        rogue.send(note_on(0, pitch, 90))
    events = await receive_n(midi_in, 10)
    assert [e.pitch for e in events] == list(range(40, 50))
    assert midi_in.stats.malformed >= len(garbage)
    tracker = midi.NoteTracker()
    for event in events:
        tracker.feed(event.data)
    assert len(tracker.sounding()) == 10
    assert len([m for m in tracker.release_messages() if m[0] == 0x80]) == 10


async def test_unterminated_sysex_is_salvaged_at_the_next_eox(
    ports: list[RtMidiInput | RtMidiOutput],
) -> None:
    # rtmidi's JACK back end glues every event after an unterminated sysex onto it until
    # an event ends in 0xF7; the parser then recovers the messages inside.
    midi_in, rogue = await rogue_into(ports, ignore_sysex=False)
    rogue.send(bytes([0xF0, 1, 2, 3]))
    for pitch in range(40, 44):
        rogue.send(note_on(0, pitch, 90))
    rogue.send(bytes([0xF7]))
    events = await receive_n(midi_in, 4)
    assert [e.pitch for e in events] == [40, 41, 42, 43]
    assert midi_in.stats.malformed >= 1


async def test_one_unterminated_sysex_does_not_make_an_input_deaf(
    ports: list[RtMidiInput | RtMidiOutput],
) -> None:
    # ``F0 01 02`` and never an event ending in 0xF7: the guard's probe frees rtmidi
    midi_in, rogue = await rogue_into(ports, guard_sysex=True)  # sysex ignored
    rogue.send(bytes([0xF0, 1, 2]))
    for pitch in range(40, 44):
        rogue.send(note_on(0, pitch, 90))
        await asyncio.sleep(0.01)
    events = await receive_n(midi_in, 4, timeout=2.0)
    assert [e.pitch for e in events] == [40, 41, 42, 43]
    assert midi_in.stats.malformed == 1
    rogue.send(note_on(0, 50, 90))  # and the input stays free
    (event,) = await receive_n(midi_in, 1, timeout=2.0)
    assert event.pitch == 50 and midi_in.stats.malformed == 1


async def test_in_a_flood_the_guard_cuts_glued_sysex_short(
    ports: list[RtMidiInput | RtMidiOutput],
) -> None:
    # Each unterminated sysex glues what follows into one message until the guard's
    # probe; rtmidi's queue slots keep the largest message they held, so a flood of them
    # must not glue GUARD_S of it each time. Glued notes share their message's time.
    midi_in, rogue = await rogue_into(ports, guard_sysex=True)
    glues = 8
    for _ in range(glues):
        rogue.send(bytes([0xF0, 1, 2]))
        for i in range(100):  # a note a millisecond
            rogue.send(note_on(0, 40 + i % 40, 90))
            await asyncio.sleep(0.001)
    events = await receive_n(midi_in, 100 * glues, timeout=5.0)
    assert midi_in.stats.malformed == glues
    runs = [len(list(group)) for _, group in itertools.groupby(e.time for e in events)]
    glued = [run for run in runs if run > 1]  # (two notes of one JACK cycle, too)
    first, later = glued[0], sorted(glued[1:])
    assert first >= 10, runs  # the first glue: the guard still at GUARD_S
    # GUARD_S (30 ms) of notes at first, then GUARD_FLOOD_S (2 ms) and a cycle or two
    assert later[len(later) // 2] <= max(3, first // 3), glued


async def test_sysex_flood_is_bounded(ports: list[RtMidiInput | RtMidiOutput]) -> None:
    midi_in = midi.open_input(virtual=True, api="jack", ignore_sysex=False, capacity=64)
    ports.append(midi_in)
    flood = midi.open_output("improv-in", api="jack", client_name="flood")
    ports.append(flood)
    sysex = bytes([0xF0, *([0x11] * 200), 0xF7])
    # nothing reads while the flood arrives: the buffer must hold at most its capacity
    deadline = now() + 10
    while midi_in.stats.dropped == 0 and now() < deadline:
        for _ in range(20):  # what the sender's JACK ring buffer takes per period
            flood.send(sysex)
        await asyncio.sleep(0.005)
    assert midi_in.stats.dropped > 0
    assert midi_in.pending() <= 64
    while midi_in.poll() is not None:
        pass
    flood.send(note_on(0, 73, 100))
    # the flood's tail may still be on its way (JACK, rtmidi's queue): whole sysex
    # messages, then the note, nothing lost or glued behind the flood
    while not (event := (await receive_n(midi_in, 1))[0]).is_note_on:
        assert event.data == sysex, event
    assert event.pitch == 73


async def test_vanished_peer_is_reopened_by_name(
    ports: list[RtMidiInput | RtMidiOutput],
) -> None:
    performer = midi.open_output(virtual=True, api="jack", client_name="performer")
    listener = midi.open_input(virtual=True, api="jack", client_name="listener")
    ports.append(listener)
    midi_in = midi.open_input("performer", api="jack")
    ports.append(midi_in)
    out = midi.open_output("listener", api="jack")
    ports.append(out)
    in_log, out_log = StatusLog(), StatusLog()
    midi_in.add_status_listener(in_log)
    out.add_status_listener(out_log)

    performer.close()
    await in_log.wait_for(False)
    assert not midi_in.connected

    performer = midi.open_output(virtual=True, api="jack", client_name="performer")
    ports.append(performer)
    await in_log.wait_for(True)
    performer.send(note_on(0, 62, 100))
    (event,) = await receive_n(midi_in, 1)
    assert event.pitch == 62 and midi_in.stats.reconnects == 1

    listener.close()
    ports.remove(listener)
    await out_log.wait_for(False)
    assert not out.send(note_on(0, 1, 1)) and out.stats.dropped == 1
    listener = midi.open_input(virtual=True, api="jack", client_name="listener")
    ports.append(listener)
    await out_log.wait_for(True)
    assert out.send(note_on(0, 63, 100))
    (event,) = await receive_n(listener, 1)
    assert event.pitch == 63


def test_a_closed_port_stays_closed_when_a_watchdog_round_still_holds_it(
    ports: list[RtMidiInput | RtMidiOutput],
) -> None:
    """The watchdog checks a copy of its list of ports: a port closed while a round is
    under way is still in that copy, and must not come back as a client nobody owns."""
    lister = midi.open_output(virtual=True, api="jack", client_name="lister")
    ports.append(lister)
    ghost = midi.open_output(virtual=True, api="jack", client_name="ghost")
    in_flight_round = [ghost]
    ghost.close()
    midi.watchdog().check(in_flight_round)
    assert ghost.port.rt is None and not ghost.connected
    assert not [name for name in lister.port.rt.get_ports() if name.startswith("ghost")]


async def test_ports_survive_a_jack_server_restart(
    jack_process: JackServer, ports: list[RtMidiInput | RtMidiOutput]
) -> None:
    midi_in = midi.open_input(virtual=True, api="jack")
    ports.append(midi_in)
    status = StatusLog()
    midi_in.add_status_listener(status)
    jack_process.stop()
    await status.wait_for(False)
    assert not midi_in.connected
    jack_process.start()
    await status.wait_for(True, timeout=20)
    performer = midi.open_output("improv-in", api="jack", client_name="performer", wait_s=5)
    ports.append(performer)
    await connected(midi_in, performer)
    performer.send(note_on(0, 65, 100))
    (event,) = await receive_n(midi_in, 1)
    assert event.pitch == 65


async def test_a_full_rtmidi_queue_is_counted(
    ports: list[RtMidiInput | RtMidiOutput], caplog: pytest.LogCaptureFixture
) -> None:
    """rtmidi drops what comes while its own queue is full and says so on stderr only:
    a burst larger than the queue, delivered in one JACK cycle, is counted and logged."""
    midi_in = midi.open_input(virtual=True, api="jack", client_name="small", capacity=16)
    ports.append(midi_in)
    out = midi.open_output("small", api="jack", client_name="burst")
    ports.append(out)
    await connected(midi_in, out)
    burst = 200
    for i in range(burst):  # far faster than a JACK cycle: one cycle delivers them all
        out.send(note_on(0, i % 128, 1 + i % 127))
    heard = [await asyncio.wait_for(midi_in.receive(), 5.0)]
    while len(heard) < burst:
        try:
            heard.append(await asyncio.wait_for(midi_in.receive(), 0.5))
        except TimeoutError:  # nothing more is coming: the rest was lost
            break
    assert len(heard) < burst  # the queue of 16 could not hold the burst
    assert midi_in.stats.queue_full >= 1
    assert "rtmidi's queue was full" in caplog.text
