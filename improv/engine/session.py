"""One jam, built in one place: responders, ports, agent, simulated performer, MQTT, record.

``improv jam``, the benchmarks, the fuzzer, the examples and the tests all build a jam
here, so a part added to the jam (the band, the synth, the web page) is wired once.
The lifecycle reads as uvicorn's does: :meth:`Session.prepare` (load the models, off the
loop), :meth:`Session.start` (ports, agent, sender, bridge, side tasks), :meth:`run`
(the jam), and the shutdown in ``run``'s ``finally`` (side tasks, bridge, record)::

    session = Session(config, calls=demo_calls(config))
    await session.prepare()
    summary = await session.run()
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from improv.engine.agent import Agent, JamObserver, JamSummary
from improv.engine.config import JamConfig
from improv.engine.context import ChordTimeline
from improv.engine.performer import Call, Performance, SimulatedPerformer, calls_from_notes
from improv.engine.recording import NoteJournal, RecordKeeper, journal_path
from improv.engine.responders import (
    Responders,
    build_responders,
    responder_loader,
    rules_answer,
)
from improv.io.midi import MidiInput, MidiOutput, open_input
from improv.io.midi.loopback import loopback
from improv.music.forms import Form
from improv.music.notes import Note
from improv.music.pitch import Key
from improv.output.sender import OutputSpec

if TYPE_CHECKING:
    from improv.io.mqtt import MqttBridge
    from improv.io.synth.process import SynthProcess
    from improv.io.web.server import WebServer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Ports:
    """The agent's MIDI input and output, and the simulated performer's output (if any).

    The agent's output is usually an :class:`OutputSpec`: its sender process opens the
    port, so no thread of this process can delay a note."""

    midi_in: MidiInput
    midi_out: MidiOutput | OutputSpec
    performer_out: MidiOutput | None = None


def open_ports(config: JamConfig, *, simulated: bool) -> Ports:
    """The ports ``config`` names; a simulated performer plays through the in-process
    loopback, and its jam's output goes nowhere unless ``--out`` names a port."""
    api = config.midi_api
    midi_in: MidiInput
    if simulated:
        performer_out, midi_in = loopback("performer")
        if config.port_out:
            return Ports(midi_in, OutputSpec(config.port_out, api=api, wait_s=2.0), performer_out)
        return Ports(midi_in, OutputSpec(discard=True), performer_out)
    if config.virtual:
        midi_in = open_input(api=api, virtual=True, client_name="improv-in", port_name="in")
        return Ports(midi_in, OutputSpec(api=api, virtual=True))
    midi_in = open_input(config.port_in, api=api, wait_s=2.0)
    return Ports(midi_in, OutputSpec(config.port_out, api=api, wait_s=2.0))


def feed_synth(
    ports: Ports, synth: SynthProcess, channel_out: int, thru: bool, band: Sequence[int] = ()
) -> Ports:
    """``ports`` with the built-in synth fed from them: improv's sender process hands it
    what it sent (improv on ``channel_out``, 0-15, the clicks, the ``band``'s channels)
    once the messages due together have gone out, the input each of the performer's
    messages as it arrives (see :mod:`improv.io.synth.process`); with ``thru`` the
    performer's messages reach it through the sender instead, so none is heard twice."""
    from improv.io.synth.process import PERFORMER_CHANNELS, sender_channels

    tap = getattr(ports.midi_in, "add_tap", None)
    if tap is not None and not thru:
        tap(synth.feed(PERFORMER_CHANNELS).tap)
    if isinstance(ports.midi_out, OutputSpec):
        channels = sender_channels(channel_out, band)
        spec = replace(ports.midi_out, synth=synth.address, synth_channels=channels)
        ports = replace(ports, midi_out=spec)
    return ports


class Session:
    """One jam from a :class:`JamConfig` and the parts that are not settings.

    ``form`` overrides the config's (a performer file's own changes); ``calls`` make a
    simulated performer; ``ports``, ``responders``, ``journal`` and ``timeline`` (the one
    prebuilt responders read) replace what the config would open, load and make (tests,
    benchmarks); ``bridge`` is an MQTT bridge to attach,
    started here and closed at the end unless ``own_bridge`` is false (its caller closes it);
    ``web`` is a live page's server to attach (its caller starts and closes it: it listens
    before the models load, so a port in use fails at once); ``synth``, a started built-in
    synth, is fed what improv sends and the performer plays.
    """

    def __init__(
        self,
        config: JamConfig,
        *,
        form: Form | None = None,
        calls: Sequence[Call] = (),
        observers: Sequence[JamObserver] = (),
        bridge: MqttBridge | None = None,
        web: WebServer | None = None,
        ports: Ports | None = None,
        responders: Responders | None = None,
        handle_signals: bool = True,
        own_bridge: bool = True,
        journal: NoteJournal | None = None,
        timeline: ChordTimeline | None = None,
        synth: SynthProcess | None = None,
    ) -> None:
        self.form = form or config.form_obj()
        self.config = config
        self.calls = list(calls)
        self.timeline = timeline or ChordTimeline(self.form)
        self.observers = list(observers)
        self.bridge = bridge
        self.web = web
        self._own_bridge = own_bridge
        self.responders = responders
        self._ports = ports
        self._handle_signals = handle_signals
        self._journal = journal
        self._agent: Agent | None = None
        self._started = False
        self._record: RecordKeeper | None = None
        self.record_written: bool | None = None  # after the jam: whether --record worked
        self._tasks: list[asyncio.Task[None]] = []
        self.synth = synth  # the built-in synth (started and closed by the caller)

    @property
    def agent(self) -> Agent:
        if self._agent is None:
            raise RuntimeError("the session has not started")
        return self._agent

    async def prepare(self) -> Responders:
        """Load the models (in a thread: seconds for a checkpoint); idempotent."""
        if self.responders is None:
            config = self.config
            self.responders = await asyncio.to_thread(
                build_responders,
                config.model,
                config.key_obj,
                config.metre_obj,
                self.timeline,
                device=config.device,
                candidates=config.candidates,
            )
            log.info("model: %s", self.responders.description)
        return self.responders

    def build(self) -> Agent:
        """Open the ports and make the agent (after :meth:`prepare`, or with
        ``responders`` given); idempotent. Nothing runs yet."""
        if self._agent is not None:
            return self._agent
        responders = self.responders
        if responders is None:
            raise RuntimeError("Session.prepare() loads the models before build()")
        config = self.config
        ports = self._ports or open_ports(config, simulated=bool(self.calls))
        if self.synth is not None:
            band = config.band_settings()
            band_channels = [band.channel(part) for part in band.parts]
            ports = feed_synth(
                ports, self.synth, config.channel_out - 1, config.thru, band_channels
            )
        self._ports = ports
        journal = self._journal or NoteJournal(
            journal_path(config.record) if config.record else None
        )
        timeline = self.timeline

        def load(spec: str) -> Any:
            agent = self.agent  # the live key and metre, not the ones at start
            return responder_loader(
                agent.key, agent.metre, timeline, device=config.device, candidates=config.candidates
            )(spec)

        self._agent = Agent(
            config,
            midi_in=ports.midi_in,
            midi_out=ports.midi_out,
            primary=responders.primary,
            fallbacks=responders.fallbacks,
            inline=rules_answer,
            observers=self.observers,
            load_responder=load,
            timeline=timeline,
            handle_signals=self._handle_signals,
            journal=journal,
            band=config.band_settings(),
        )
        return self._agent

    async def start(self) -> Agent:
        """Load and build if not done; start the sender, MQTT and the side tasks."""
        if self._started:
            return self.agent
        await self.prepare()
        agent = self.build()
        ports = self._ports
        assert ports is not None
        config = self.config
        self._started = True
        gc.collect()
        gc.freeze()  # start-up's objects (the model's) live on: collections never walk them
        await agent.open_output()  # before control can come in
        if self.bridge is not None:
            from improv.engine.mqtt_observer import attach

            attach(self.bridge, agent)
            await self.bridge.start()
        if self.web is not None:
            from improv.engine.web_observer import attach as attach_web

            attach_web(self.web, agent)
        if self.calls:
            if ports.performer_out is None:
                raise ValueError("a simulated performer needs a performer output")
            performer = SimulatedPerformer(agent, ports.performer_out, self.calls, channel=0)
            agent.observers.append(performer)
            self._spawn(performer.run(), "performer")
        if config.record is not None:
            self._record = RecordKeeper(config.record, agent, config.tempo, config.channel_out)
            self._spawn(self._record.keep(), "record")
        return agent

    async def run(self) -> JamSummary:
        """Start if not started, jam until stopped, then shut the side parts down."""
        agent = await self.start()
        try:
            return await agent.run()
        finally:
            await self._shutdown()

    def _spawn(self, coroutine: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(coroutine, name=name))

    async def _shutdown(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.bridge is not None and self._own_bridge:
            await self.bridge.close()
        if self._record is not None:
            self.record_written = self._record.finish()


def choruses_for(calls: Sequence[Call], config: JamConfig, form: Form) -> int:
    """Enough choruses for a performer file's calls, each answered once."""
    turns_needed = 2 * len(calls) * config.bars
    return max(1, math.ceil(turns_needed / form.n_bars))


# --- what a simulated performer plays ------------------------------------------------


def performance_form(config: JamConfig, performance: Performance, form_given: bool) -> Form:
    """The form over a performer file: its own changes (in the key and metre played)
    unless ``--form`` or another ``--metre`` says otherwise; else the config's form."""
    if performance.form is None or form_given or config.metre_obj != performance.metre:
        return config.form_obj()
    return performance.form.in_key(config.key_obj.tonic)


def performance_calls(config: JamConfig, performance: Performance) -> list[Call]:
    """A performer file cut into calls of ``config.bars``, moved to the jam's key."""
    notes = in_key(performance.notes, performance.key, config.key_obj)
    per_bar = config.metre_obj.beats_per_bar
    return calls_from_notes(notes, config.bars, per_bar, performance.source, 0.5)


def demo_calls(config: JamConfig) -> list[Call]:
    """The demo's calls: the first bars of each file in ``examples/calls/``, or, where
    the examples are not installed, :func:`generated_calls`."""
    from improv.io.midi.files import read_take

    per_bar = config.metre_obj.beats_per_bar
    folder = examples_dir() / "calls"
    files = sorted(folder.glob("*.mid")) if folder.is_dir() else []
    calls: list[Call] = []
    for path in files:
        take = read_take(path)
        calls += calls_from_notes(take.notes, config.bars, per_bar, path.name)[:1]
    return calls or generated_calls(config)


def generated_calls(config: JamConfig) -> list[Call]:
    """Three calls by the rule-based generator, sparse to dense (the benchmarks' calls)."""
    from improv.craft.rules import BluesGenerator, Voice

    form = config.form_obj()
    beats = max(2, int(config.bars * form.metre.beats_per_bar) - 2)
    generator = BluesGenerator(7, config.key_obj)
    return [
        Call(
            tuple(
                generator.phrase(
                    form.changes(), form.metre, start=0.0, beats=beats, voice=Voice(density=d)
                )
            ),
            "generated",
        )
        for d in (0.4, 0.6, 0.8)
    ]


def examples_dir() -> Path:
    import improv

    return Path(improv.__file__).resolve().parents[1] / "examples"


def in_key(notes: Sequence[Note], played: Key, wanted: Key) -> list[Note]:
    """The performer's notes moved to the jam's key (by the smaller interval), as a
    player asked to take it in another key would."""
    shift = (wanted.tonic - played.tonic) % 12
    shift -= 12 if shift > 6 else 0
    return [replace(n, pitch=min(127, max(0, n.pitch + shift))) for n in notes]
