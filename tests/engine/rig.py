"""A test rig: the agent between two port pairs (in-process loopback, or real rtmidi
ports on a JACK server), a performer that plays into its input on the agent's own
clock, and a listener on its output."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from improv.engine.agent import JamObserver
from improv.engine.config import JamConfig
from improv.engine.generator import Responder
from improv.engine.recording import NoteJournal
from improv.engine.responders import Responders, RulesResponder
from improv.engine.session import Ports, Session
from improv.io import midi
from improv.io.midi import MidiEvent, MidiInput, MidiOutput
from improv.io.midi.loopback import loopback
from improv.music.notes import Note, Phrase
from improv.output.scheduler import Scheduler
from improv.output.sender import OutputSpec
from improv.timebase import now
from tests.fixtures.jack import lost_cycles

FAST = {"tempo": 300.0, "bars": 2, "count_in": 0, "model": "rules", "seed": 3}


@dataclass
class Recorder(JamObserver):
    """Keeps what the agent tells its observers."""

    states: list[dict[str, Any]] = field(default_factory=list)
    beats: list[tuple[int, float, str | None]] = field(default_factory=list)
    phrases: list[tuple[str, Phrase, int]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    beat: asyncio.Event = field(default_factory=asyncio.Event)

    def on_state(self, state: dict[str, Any]) -> None:
        self.states.append(state)

    def on_beat(self, bar: int, beat: float, chord: str | None) -> None:
        self.beats.append((bar, beat, chord))
        self.beat.set()

    async def until_bar(self, bar: int) -> None:
        """Wait for the first beat of ``bar`` (or a later one)."""
        while not self.beats or self.beats[-1][0] < bar:
            self.beat.clear()
            await asyncio.wait_for(self.beat.wait(), 5.0)

    def on_phrase(self, role: str, phrase: Phrase, turn: int) -> None:
        self.phrases.append((role, phrase, turn))
        if role == "answer":
            self.answered.set()

    def on_metrics(self, metrics: dict[str, Any]) -> None:
        self.metrics.append(metrics)


class Listening:
    """Reads what the agent sends on ``listener``, keeping it in ``received``."""

    def __init__(self, listener: MidiInput) -> None:
        self.listener = listener
        self.received: list[MidiEvent] = []

    async def receive_until(
        self, predicate: Callable[[MidiEvent], bool], timeout: float = 5.0
    ) -> MidiEvent:
        """Read the agent's output until a message matches (kept in ``received``)."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.listener.receive()
                self.received.append(event)
                if predicate(event):
                    return event

    async def drain(self) -> None:
        while (event := self.listener.poll()) is not None:
            self.received.append(event)

    def note_ons(self, channel: int | None = None) -> list[MidiEvent]:
        return [
            e for e in self.received if e.is_note_on and (channel is None or e.channel == channel)
        ]

    def assert_nothing_left_sounding(self) -> None:
        """Every note-on heard has its note-off. Should the JACK server have given up a
        client's cycle (its MIDI lost, see :func:`tests.fixtures.jack.lost_cycles`), a
        note still open on the wire is the transport's loss and only warned about; a
        :class:`Rig` checks what improv itself sent first, whatever the transport did."""
        sounding = unpaired(self.received)
        lost = lost_cycles()
        if sounding and lost:
            warnings.warn(
                f"{sounding} left open on the wire after JACK lost cycles: {lost}", stacklevel=2
            )
            return
        assert not sounding, f"left sounding on the wire: {sounding}"


class Rig(Listening):
    """``async with Rig(mode="phrase") as rig:`` runs an agent until the block ends."""

    def __init__(
        self,
        *,
        midi_in: MidiInput | None = None,
        midi_out: MidiOutput | OutputSpec | None = None,
        performer_out: MidiOutput | None = None,
        listener: MidiInput | None = None,
        primary: Responder | None = None,
        journal: NoteJournal | None = None,
        **settings: Any,
    ) -> None:
        self.config = JamConfig(**{**FAST, **settings})
        if midi_in is None:
            performer_out, midi_in = loopback("performer")
        if midi_out is None:
            midi_out, listener = loopback("listener")
        assert performer_out is not None and listener is not None
        super().__init__(listener)
        self.performer_out = performer_out
        self.recorder = Recorder()
        self.session = Session(
            self.config,
            observers=[self.recorder],
            ports=Ports(midi_in, midi_out),
            responders=Responders(primary or RulesResponder(), [], "test"),
            handle_signals=False,
            journal=journal,
        )
        self.agent = self.session.build()
        self.sent: list[MidiEvent] = []  # what improv's sender says it sent, as it said it
        self._tap_sent()
        self.performer = Scheduler(performer_out, switch_interval_s=None)
        self._task: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> Rig:
        self._task = asyncio.create_task(self.session.run())
        await asyncio.wait_for(self.agent.started.wait(), 5.0)
        self.performer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> Any:
        self.performer.stop(release=True)
        if self._task is None:
            return None
        stopping = now()
        self.agent.request_stop("test")
        summary = await asyncio.wait_for(self._task, 5.0)
        self._task = None
        with contextlib.suppress(TimeoutError):  # real ports deliver the last CC 123 later
            await self.receive_until(lambda e: is_cc123(e) and e.time >= stopping, 2.0)
        await self.drain()
        return summary

    def _tap_sent(self) -> None:
        scheduler = self.agent.scheduler
        report = scheduler.on_sent

        def tap(data: bytes, scheduled: float, sent_at: float) -> None:
            self.sent.append(MidiEvent(bytes(data), sent_at))
            if report is not None:
                report(data, scheduled, sent_at)

        scheduler.on_sent = tap

    def assert_nothing_left_sounding(self) -> None:
        assert self.sent or not self.received, "improv's own record of what it sent is empty"
        assert not unpaired(self.sent), f"improv left sounding: {unpaired(self.sent)}"
        super().assert_nothing_left_sounding()

    def take_task(self) -> asyncio.Task[Any]:
        """The running session's task, for a caller that awaits its end itself (an
        error, say): :meth:`stop` no longer waits for it."""
        task, self._task = self._task, None
        assert task is not None, "the session is not running"
        return task

    def time_at(self, beats: float) -> float:
        return self.agent.clock.time_at(beats)

    def play(self, notes: Sequence[Note], at_beat: float = 0.0, channel: int = 0) -> None:
        """Schedule the performer's notes (beats from ``at_beat``) on the agent's clock."""
        for note in notes:
            on = self.time_at(at_beat + note.onset)
            self.performer.schedule_note(
                note.pitch, note.velocity, on, self.time_at(at_beat + note.end), channel
            )


@contextlib.contextmanager
def jack_wiring() -> Iterator[dict[str, Any]]:
    """:class:`Rig` arguments for real ports on the JACK server ``$JACK_DEFAULT_SERVER``
    names: the test's performer and listener as virtual ports, the agent's input on the
    performer's, and its output through a sender process on the listener's, as in
    ``improv jam --in performer --out listener``."""
    performer = midi.open_output(virtual=True, api="jack", client_name="performer")
    listener = midi.open_input(virtual=True, api="jack", client_name="listener")
    agent_in = midi.open_input("performer", api="jack")
    try:
        yield {
            "midi_in": agent_in,
            "midi_out": OutputSpec("listener", api="jack"),
            "performer_out": performer,
            "listener": listener,
        }
    finally:
        for port in (agent_in, listener, performer):
            port.close()


def call_notes(beats: float = 6.0, step: float = 0.5, pitch: int = 65) -> list[Note]:
    """An eighth-note line, ``beats`` long."""
    count = int(beats / step)
    return [Note(pitch + (i * 3) % 8, 90, i * step, step * 0.8) for i in range(count)]


def unpaired(events: Sequence[MidiEvent]) -> set[tuple[int, int]]:
    """(channel, pitch) of note-ons left without their own note-off, or an All Notes Off
    or All Sound Off of their channel after them (what improv sends when a port it lost
    comes back: the note-offs due meanwhile could not go out)."""
    sounding: set[tuple[int, int]] = set()
    for event in events:
        if event.is_note_on:
            sounding.add((event.channel, event.pitch))
        elif event.is_note_off:
            sounding.discard((event.channel, event.pitch))
        elif event.is_control_change and event.control in (120, 123):
            sounding = {(c, p) for c, p in sounding if c != event.channel}
    return sounding


def is_cc123(event: MidiEvent) -> bool:
    return event.is_control_change and event.control == 123


JAM_COMMAND = (
    *(sys.executable, "-m", "improv.cli", "jam", "--in", "performer", "--out", "listener"),
    *("--midi-api", "jack", "--tempo", "300", "--bars", "2", "--count-in", "0"),
    *("--model", "rules", "--json", "--seed", "5"),
)
"""``improv jam`` between the ``performer`` and ``listener`` test ports, as a musician runs it."""


async def spawn_jam(*extra: str) -> asyncio.subprocess.Process:
    """``improv jam`` (:data:`JAM_COMMAND` and ``extra``) in a process of its own,
    returned once it says it has started."""
    process = await asyncio.create_subprocess_exec(
        *JAM_COMMAND, *extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(30):
            while b"jam: " not in (line := await process.stderr.readline()):
                assert line, "improv jam ended before it started"
    except BaseException:
        if process.returncode is None:
            process.kill()
        await process.wait()
        raise
    return process
