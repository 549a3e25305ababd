"""End to end through real rtmidi ports on a JACK dummy server: ``improv jam`` as a
subprocess stopped by a signal, and an output port that vanishes under the sender
process. (Trade and phrase modes, MIDI clock, barge-in and malformed input run through
JACK ports too: the ``jack`` cases of test_agent.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from improv.io import midi
from improv.io.midi import note_off, note_on
from improv.output.sender import OutputSpec
from tests.engine.rig import Listening, Rig, call_notes, is_cc123, spawn_jam, unpaired

pytestmark = [pytest.mark.jack, pytest.mark.realtime]


@pytest.fixture
def test_ports(jack_server: str) -> Iterator[tuple[midi.RtMidiOutput, midi.RtMidiInput]]:
    """The test's own ports: a performer's output and a listener's input."""
    performer = midi.open_output(virtual=True, api="jack", client_name="performer")
    listener = midi.open_input(virtual=True, api="jack", client_name="listener")
    yield performer, listener
    performer.close()
    listener.close()


def _children(pid: int) -> list[int]:
    """Child processes of ``pid`` (started from any of its threads)."""
    found: list[int] = []
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in path.read_text().split()]
    return found


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name
)
async def test_a_signal_releases_everything(
    test_ports: tuple[midi.RtMidiOutput, midi.RtMidiInput], sig: signal.Signals
) -> None:
    performer, listener = test_ports
    heard = Listening(listener)
    process = await spawn_jam()
    try:
        senders = _children(process.pid)
        for i in range(8):  # a call of eight notes (the agent's clock: whenever it is)
            performer.send(note_on(0, 60 + i, 90))
            await asyncio.sleep(0.08)  # playing, not synchronising
            performer.send(note_off(0, 60 + i))
        await heard.receive_until(lambda e: e.is_note_on, 10.0)
        process.send_signal(sig)  # in the middle of the answer
        async with asyncio.timeout(10):
            stdout, _ = await process.communicate()
        await heard.receive_until(is_cc123, 5.0)  # the sender process sends it last
        await asyncio.sleep(0.05)  # anything after it would show (playing, not syncing)
        await heard.drain()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    events = heard.received
    assert not unpaired(events)  # every note-on got its note-off ...
    assert is_cc123(events[-1])  # ... and CC 123 went out last
    if sig == signal.SIGKILL:  # the orphaned sender silenced everything and went
        assert process.returncode == -signal.SIGKILL and senders
        async with asyncio.timeout(5):
            while any(Path(f"/proc/{pid}").exists() for pid in senders):
                await asyncio.sleep(0.05)  # polling /proc: there is no event to await
    else:
        assert process.returncode == 0
        assert f'"stopped_by":"{sig.name}"'.encode() in stdout


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
    rig.assert_nothing_left_sounding()
    assert any(is_cc123(e) for e in rig.received[-3:])
