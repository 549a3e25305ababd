"""Following a MIDI clock master's transport, through real JACK ports, the master a
process of its own (:mod:`tests.engine.master`): START, STOP, CONTINUE, Song Position
Pointer while stopped and while running, a tempo change, a clock that stops coming
without a STOP, a master that starts again in the middle of a bar; and a soak of 50
stop/start cycles (``-m bench``).

The master plays 300 BPM (a beat is 0.2 s) and improv trades two bars on the form's
slots: a call in bars 0-1 of the master's grid is answered from the bar line of bar 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator

import numpy as np
import pytest

from improv.io import midi
from improv.io.midi import MidiEvent
from improv.io.midi.loopback import RecordingOutput
from improv.output.sender import OutputSpec
from improv.timebase import now
from tests.engine.master import Master
from tests.engine.rig import Listening, Rig
from tests.fixtures.jack import lost_cycles

pytestmark = [pytest.mark.jack, pytest.mark.realtime]

B = 0.2  # seconds per beat at 300 BPM
ON_THE_LINE_S = B / 4
"""How near the bar line an answer must be heard to count as started there: within a
sixteenth, which tells the bar line from an eighth or a beat off. Finer errors are the
soak benchmark's to measure against :data:`TARGET_MS`: held to that goal, the suite's
runs on a loaded two-core machine failed on the host's stalls (one by 29 ms)."""
TARGET_MS = 20.0
CALL = [(65 + (i * 3) % 8, i * 0.5, 0.4) for i in range(12)]  # six beats of eighths


@contextlib.asynccontextmanager
async def master_jam(jack_server: str, **settings: object) -> AsyncIterator[tuple[Master, Rig]]:
    """A master process on JACK, and improv following it (``--clock midi``)."""
    async with Master() as master:
        agent_in = midi.open_input("master", api="jack")
        listener = midi.open_input(virtual=True, api="jack", client_name="listener")
        rig = Rig(
            midi_in=agent_in,
            midi_out=OutputSpec("listener", api="jack"),
            performer_out=RecordingOutput(),
            listener=listener,
            clock="midi",
            **settings,
        )
        try:
            async with rig:
                yield master, rig
        finally:
            listener.close()


def answer_note(after: float) -> object:
    return lambda e: e.is_note_on and e.channel == 0 and e.time > after


async def answer_at(rig: Rig, expected: float) -> MidiEvent:
    """The answer's first note, which should sound at ``expected``."""
    return await rig.receive_until(answer_note(expected - 2 * B), 8.0)  # type: ignore[arg-type]


async def until(t: float) -> None:
    """Let the music play to time ``t`` (playing, not synchronising)."""
    await asyncio.sleep(max(0.0, t - now()))


def start_run(master: Master, ticks_beats: float, stop_at: float | None = None) -> float:
    """SPP 0, START, ticks, the call in bars 0-1 and maybe a STOP; returns beat 0's time."""
    t0 = now() + 0.4
    master.locate(t0 - 0.02, 0.0)
    master.start(t0 - 0.01)
    master.clock(t0, ticks_beats)
    master.play(CALL, t0, B)
    if stop_at is not None:
        master.stop(t0 + stop_at * B)
    return t0


async def test_start_stop_start_answers_every_run(jack_server: str) -> None:
    async with master_jam(jack_server) as (master, rig):
        for _ in range(3):  # stopped in the middle of each answer
            t0 = start_run(master, 12.0, stop_at=12.0)
            await master.flush()
            first = await answer_at(rig, t0 + 8 * B)
            assert abs(first.time - (t0 + 8 * B)) < ON_THE_LINE_S
            await until(t0 + 12 * B + 0.3)
            await rig.drain()
            late = [e for e in rig.note_ons(0) if e.time > t0 + 12 * B + ON_THE_LINE_S]
            assert not late, "notes after STOP"
            rig.assert_nothing_left_sounding()
            assert rig.agent.jam_state()["turn"] == "idle"
        summary = await rig.stop()
    assert summary.turns == 3
    heard_all = summary.notes_in == 3 * len(CALL)
    assert heard_all or (lost_cycles() and summary.notes_in < 3 * len(CALL)), summary.notes_in


async def test_continue_goes_on_from_where_it_stopped(jack_server: str) -> None:
    async with master_jam(jack_server) as (master, rig):
        t0 = start_run(master, 7.0, stop_at=7.0)  # stopped after the call, before bar 2
        await master.flush()
        await until(t0 + 7 * B + 0.3)
        assert rig.agent.jam_state()["bar"] == 1  # song position 7: bar 1
        assert not rig.note_ons(0)  # the planned answer went with the STOP
        t1 = now() + 0.3  # song position 7 sounds at t1
        master.resume(t1 - 0.01)
        master.clock(t1, 20.0)
        master.play(CALL, t1 + (16 - 7) * B, B)  # a call in bars 4-5
        await master.flush()
        first = await answer_at(rig, t1 + (24 - 7) * B)  # answered from bar 6
        assert abs(first.time - (t1 + (24 - 7) * B)) < ON_THE_LINE_S
        await rig.stop()
    rig.assert_nothing_left_sounding()


async def test_song_position_while_stopped_and_while_running(jack_server: str) -> None:
    async with master_jam(jack_server) as (master, rig):
        t0 = now() + 0.4  # song position 32 (bar 8) sounds at t0
        master.locate(t0 - 0.02, 32.0)
        master.resume(t0 - 0.01)
        master.clock(t0, 12.0)  # song 32-44
        master.play(CALL, t0, B)
        await master.flush()
        first = await answer_at(rig, t0 + 8 * B)
        assert abs(first.time - (t0 + 8 * B)) < ON_THE_LINE_S
        t1 = t0 + 12 * B  # in the middle of the answer the master jumps to bar 16
        master.locate(t1 - 0.005, 64.0)
        master.clock(t1, 12.0)  # song 64-76
        master.play(CALL, t1, B)
        await master.flush()
        await until(t1 + 0.05)
        assert rig.agent.jam_state()["bar"] == 16
        second = await answer_at(rig, t1 + 8 * B)
        assert abs(second.time - (t1 + 8 * B)) < ON_THE_LINE_S
        cut = [e for e in rig.note_ons(0) if t1 + ON_THE_LINE_S < e.time < second.time]
        assert not cut  # the first answer ended with the jump
        await rig.stop()
    rig.assert_nothing_left_sounding()


async def test_a_tempo_change_is_followed(jack_server: str) -> None:
    async with master_jam(jack_server) as (master, rig):
        t0 = now() + 0.4
        master.locate(t0 - 0.02, 0.0)
        master.start(t0 - 0.01)
        t8 = master.clock(t0, 8.0)  # two bars at 300 BPM, then 240 BPM
        master.clock(t8, 20.0, bpm=240.0)
        slow = 0.25
        master.play(CALL, t8 + 8 * slow, slow)  # a call in bars 4-5, at 240
        await master.flush()
        expected = t8 + 16 * slow  # bar 6
        first = await answer_at(rig, expected)
        assert abs(first.time - expected) < ON_THE_LINE_S
        assert abs(rig.agent.clock.bpm_at(first.time) - 240.0) < 2.0
        await rig.stop()


async def test_a_clock_that_stops_coming_halts_until_it_is_back(jack_server: str) -> None:
    async with master_jam(jack_server) as (master, rig):
        t0 = start_run(master, 10.0)  # ticks stop at beat 10, no STOP (a pulled cable)
        await master.flush()
        await answer_at(rig, t0 + 8 * B)
        lost = t0 + 10 * B
        await until(lost + 1.0)
        await rig.drain()
        silent_from = lost + rig.agent.follower.lost_after_s + 0.3  # type: ignore[union-attr]
        assert not [e for e in rig.note_ons(0) if e.time > silent_from]
        rig.assert_nothing_left_sounding()  # what sounded has ended
        assert rig.agent.jam_state()["turn"] == "idle"
        t1 = now() + 0.2  # the cable is back: song position 10 at t1
        master.clock(t1, 16.0)
        master.play(CALL, t1 + 6 * B, B)  # a call in bars 4-5
        await master.flush()
        first = await answer_at(rig, t1 + 14 * B)  # answered from bar 6
        assert abs(first.time - (t1 + 14 * B)) < ON_THE_LINE_S
        await rig.stop()


async def test_a_master_that_starts_again_mid_bar(jack_server: str) -> None:
    async with master_jam(jack_server) as (master, rig):
        t0 = start_run(master, 10.5)
        await master.flush()
        await answer_at(rig, t0 + 8 * B)
        t1 = t0 + 10.5 * B + 0.01  # START again in the middle of bar 2 (the answer)
        master.start(t1 - 0.005)
        master.clock(t1, 12.0)
        master.play(CALL, t1, B)
        await master.flush()
        first = await answer_at(rig, t1 + 8 * B)
        assert abs(first.time - (t1 + 8 * B)) < ON_THE_LINE_S
        old = [e for e in rig.note_ons(0) if t0 + 10.5 * B + ON_THE_LINE_S < e.time < first.time]
        assert not old  # the answer in progress ended at the restart
        await rig.stop()
    rig.assert_nothing_left_sounding()


async def test_improv_jam_on_the_command_line_plays_again_after_a_stop(jack_server: str) -> None:
    """The report: ``improv jam --virtual --clock midi --mode trade --bars 2``, a master
    that plays three calls, STOP (here in the third answer), and the same again; improv
    answers all six."""
    command = [
        *(sys.executable, "-m", "improv.cli", "jam", "--midi-api", "jack", "--virtual"),
        *("--clock", "midi", "--mode", "trade", "--bars", "2", "--model", "rules", "--json"),
    ]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(60):
            while b"jam: " not in (line := await process.stderr.readline()):
                assert line, "improv jam ended before it started"
        listener = midi.open_input("improv-out", api="jack", client_name="listener", wait_s=5.0)
        heard = Listening(listener)
        try:
            async with Master(to="improv-in") as master:
                for _ in range(2):
                    t0 = now() + 0.4
                    master.locate(t0 - 0.02, 0.0)
                    master.start(t0 - 0.01)
                    master.clock(t0, 46.0)
                    for call in range(3):  # bars 0-1, 4-5, 8-9; answers in 2-3, 6-7, 10-11
                        master.play(CALL, t0 + 16 * call * B, B)
                    master.stop(t0 + 46 * B)
                    await master.flush()
                    for call in range(3):
                        expected = t0 + (16 * call + 8) * B
                        first = await heard.receive_until(answer_note(expected - 2 * B), 8.0)  # type: ignore[arg-type]
                        assert abs(first.time - expected) < ON_THE_LINE_S
                    await until(t0 + 46 * B + 0.3)
        finally:
            listener.close()
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            stdout, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    summary = json.loads(stdout)
    assert summary["turns"] == 6
    heard_all = summary["notes_in"] == 6 * len(CALL)
    assert heard_all or (lost_cycles() and summary["notes_in"] < 6 * len(CALL)), summary


@pytest.mark.bench
async def test_soak_50_stop_start_cycles(jack_server: str) -> None:
    """Each cycle: SPP 0, START, a call in bars 0-1, the answer in bars 2-3, STOP (a
    benchmark: three minutes; the suite's restart tests are the ones above)."""
    cycles = 50
    errors: list[float] = []
    async with master_jam(jack_server) as (master, rig):
        for _ in range(cycles):
            t0 = start_run(master, 16.0, stop_at=16.0)
            await master.flush()
            first = await answer_at(rig, t0 + 8 * B)
            errors.append((first.time - (t0 + 8 * B)) * 1000.0)
            await until(t0 + 16 * B + 0.1)
        summary = await rig.stop()
    ms = np.abs(np.asarray(errors))
    print(
        f"\nsoak: {cycles} stop/start cycles, answer start error (ms):"
        f" p50 {np.percentile(ms, 50):.2f}"
        f" p99 {np.percentile(ms, 99):.2f} max {ms.max():.2f} (target < {TARGET_MS:.0f})"
    )
    print("per cycle:", " ".join(f"{e:.2f}" for e in errors))
    assert summary.turns == cycles
    assert ms.max() < TARGET_MS
    rig.assert_nothing_left_sounding()
