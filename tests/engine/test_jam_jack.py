"""End to end through real rtmidi ports on a JACK dummy server: the agent in-process, and
``improv jam`` as a subprocess stopped by SIGINT."""

from __future__ import annotations

import asyncio
import math
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from improv.engine.sender import OutputSpec
from improv.io import midi
from improv.io.midi import MidiEvent, note_off, note_on
from tests.engine.rig import Rig, call_notes, is_cc123, unpaired

pytestmark = pytest.mark.jack


@pytest.fixture
def test_ports(jack_server: str) -> Iterator[tuple[midi.RtMidiOutput, midi.RtMidiInput]]:
    """The test's own ports: a performer's output and a listener's input."""
    performer = midi.open_output(virtual=True, api="jack", client_name="performer")
    listener = midi.open_input(virtual=True, api="jack", client_name="listener")
    yield performer, listener
    performer.close()
    listener.close()


async def test_answer_on_the_bar_line_through_jack(
    test_ports: tuple[midi.RtMidiOutput, midi.RtMidiInput],
) -> None:
    performer, listener = test_ports
    agent_in = midi.open_input("performer", api="jack")
    agent_out = OutputSpec("listener", api="jack")  # a sender process, as improv jam's
    async with Rig(
        midi_in=agent_in, midi_out=agent_out, performer_out=performer, listener=listener
    ) as rig:
        rig.play(call_notes(6.0))
        first = await rig.receive_until(lambda e: e.is_note_on and e.channel == 0)
        assert abs(first.time - rig.time_at(8.0)) < 0.03  # one JACK period is 1.3 ms
        await asyncio.wait_for(rig.recorder.answered.wait(), 5.0)
        summary = await rig.stop()
    assert summary.turns == 1 and summary.deadline_misses == 0
    assert not unpaired(rig.received)
    assert any(is_cc123(e) for e in rig.received)


async def _read(listener: midi.RtMidiInput, until: float) -> list[MidiEvent]:
    events: list[MidiEvent] = []
    try:
        async with asyncio.timeout(until):
            while True:
                events.append(await listener.receive())
    except TimeoutError:
        return events


async def test_sigint_releases_everything(
    test_ports: tuple[midi.RtMidiOutput, midi.RtMidiInput],
) -> None:
    performer, listener = test_ports
    command = [
        *(sys.executable, "-m", "improv.cli", "jam", "--in", "performer", "--out", "listener"),
        *("--midi-api", "jack", "--tempo", "300", "--bars", "2", "--count-in", "0"),
        *("--model", "rules", "--json", "--seed", "5"),
    ]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert process.stderr is not None
        async with asyncio.timeout(30):
            while b"jam: " not in (line := await process.stderr.readline()):
                assert line, "improv jam ended before it started"
        for i in range(8):  # a call of eight notes (the agent's clock: whenever it is)
            performer.send(note_on(0, 60 + i, 90))
            await asyncio.sleep(0.08)  # playing, not synchronising
            performer.send(note_off(0, 60 + i))
        events: list[MidiEvent] = []
        async with asyncio.timeout(10):
            while not any(e.is_note_on for e in events):
                events.append(await listener.receive())
        process.send_signal(signal.SIGINT)  # in the middle of the answer
        async with asyncio.timeout(10):
            stdout, _ = await process.communicate()
        events += await _read(listener, 0.3)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    assert b'"stopped_by":"SIGINT"' in stdout
    assert not unpaired(events)  # every note-on got its note-off ...
    assert any(is_cc123(e) for e in events)  # ... and CC 123 went out


async def test_a_vanished_output_port_is_reopened_by_the_sender_process(
    test_ports: tuple[midi.RtMidiOutput, midi.RtMidiInput], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPROV_MIDI_WATCHDOG_S", "0.05")  # the sender process's watchdog
    performer, listener = test_ports
    agent_in = midi.open_input("performer", api="jack")
    spec = OutputSpec("listener", api="jack")
    async with Rig(
        midi_in=agent_in, midi_out=spec, performer_out=performer, listener=listener
    ) as rig:
        rig.play(call_notes(6.0))
        await rig.receive_until(lambda e: e.is_note_on and e.channel == 0)
        listener.close()  # the synth goes away in the middle of the answer ...
        await asyncio.wait_for(rig.recorder.answered.wait(), 5.0)
        cut = next(p for role, p, _ in rig.recorder.phrases if role == "answer")
        assert cut.end - cut.onset < 7.0  # ... which ends there
        rig.listener = listener = midi.open_input(virtual=True, api="jack", client_name="listener")
        rig.received.clear()
        await rig.receive_until(is_cc123)  # re-opened: whatever it held is silenced
        start = 16.0 * math.ceil((rig.agent.position() + 2.0) / 16.0)
        rig.play(call_notes(6.0), at_beat=start)
        first = await rig.receive_until(lambda e: e.is_note_on and e.channel == 0, 10.0)
        assert abs(first.time - rig.time_at(start + 8.0)) < 0.03  # kept its time
        summary = await rig.stop()
    listener.close()
    assert summary.turns == 2
    assert not unpaired(rig.received)
    assert any(is_cc123(e) for e in rig.received[-3:])
