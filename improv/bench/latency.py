"""The harness: plays the performer into real MIDI ports and records what comes back.

Life cycle of a run (:func:`run`):

1. Calibrate the transport: a harness-to-harness loopback through the same MIDI API
   (on JACK, one period of quantisation), so its latency can be told apart from the
   agent's own error.
2. Open one pair of ports per configuration: virtual ports a spawned ``improv jam``
   connects to (``--spawn``), or the named ports of an external agent. Spawned agents
   start together and are waited for (their start-up log line, or their first MIDI).
3. Find each agent's grid: the harness's MIDI clock when it sends one (the agent
   follows it), else the agent's count-in clicks (improv plays one), else the
   harness's own bars with the phase fitted later to the answers.
4. Deal the turns round robin (``block`` at a time): a call on the agent's next bar
   line, played by a precise scheduler (:class:`~improv.output.scheduler.Scheduler`),
   then the answer window (phrase mode: until the answer is over, with a bound).
   CPU burners run or pause per configuration.
5. Stop: MIDI clock STOP, SIGINT to spawned agents (their ``--json`` summaries are
   collected), close the ports. The agent's process tree (spawned, or ``--pid``) is
   sampled for memory and CPU all along.

Every message in either direction is timed on one clock, ``time.monotonic()``
(:func:`improv.timebase.now`): on the sender's thread right after the send, and on
receipt from the MIDI driver's own arrival times (:class:`~improv.bench.listen.Listener`).
The analysis lives in :mod:`improv.bench.measure`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from improv.bench import jackinfo
from improv.bench.calls import CallsPlan, FileCalls, GeneratedCalls, midi_files
from improv.bench.jackinfo import JackPeriod, XrunCounter
from improv.bench.listen import Listener
from improv.bench.matrix import Configuration, rounds
from improv.bench.measure import CLICK_CHANNEL, Event, Grid, Turn, answer_state
from improv.bench.mqttwatch import MqttWatcher, Received
from improv.bench.procs import Burner, SpawnedAgent, TreeSampler, improv_command
from improv.engine.clock import ClockSender, InternalClock, keep_ahead
from improv.errors import ImprovError
from improv.io.midi import (
    CLOCK,
    MidiOutput,
    PortStats,
    RtMidiOutput,
    note_on,
    open_output,
)
from improv.music.notes import Note
from improv.music.time import Metre
from improv.output.scheduler import Scheduler
from improv.timebase import now

log = logging.getLogger(__name__)

LEAD_S = 0.25
"""A call is handed to the scheduler this long before its first note."""
CLOCK_BARS = 1
"""Bars of MIDI clock sent before START, so a follower locks its tempo first."""
CALIBRATION_MESSAGES = 200


class CallSource(Protocol):
    def call(self, bar: int) -> list[Note]: ...


@dataclass(slots=True)
class Settings:
    """How to run the harness (the command line, checked)."""

    api: str
    configs: list[Configuration]
    spawn: bool = False
    agent_in: str | None = None  # the agent's input port: the harness sends calls to it
    agent_out: str | None = None  # the agent's output port: the harness listens to it
    jam_args: list[str] = field(default_factory=list)
    turns: int | None = 10
    minutes: float | None = None
    warmup: int = 1
    block: int = 1
    calls: Path | None = None
    seed: int = 0
    key: str = "F"
    form: str = "blues"
    channels: frozenset[int] | None = None  # the agent's answer channels (0-based)
    mqtt: str | None = None
    mqtt_prefix: str | None = None  # external agents: what to subscribe to
    calibrate: bool = True
    ready_timeout_s: float = 120.0
    count_in_wait_s: float | None = None  # None: two bars and a bit if spawned, else 0
    pid: int | None = None  # an external agent's process: its tree's CPU and memory
    metre: Metre = field(default_factory=Metre)
    plan: CallsPlan | None = None  # which tempo, key, metre and form the calls are played at


@dataclass(slots=True)
class TargetData:
    """What one configuration's agent was sent and played, raw."""

    config: Configuration
    sent: list[Event] = field(default_factory=list)
    received: list[Event] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    grid: Grid | None = None
    follows_clock: bool = False
    aligned_by: str = "none"  # "clock", "count-in" or "none" (the harness's own bars)
    agent_summary: dict[str, Any] | None = None
    agent_command: list[str] | None = None
    agent_warnings: list[str] = field(default_factory=list)  # the last 50 it logged
    rss: list[tuple[float, int]] = field(default_factory=list)  # the agent's process tree
    cpu: list[tuple[float, float]] = field(default_factory=list)  # (time, CPU seconds)
    malformed: list[Event] = field(default_factory=list)  # packets that were no MIDI
    mqtt: list[Received] = field(default_factory=list)
    clock_ticks_in: int = 0
    error: str | None = None
    send_error_ms_p99: float | None = None  # the harness's own scheduler


@dataclass(slots=True)
class RunData:
    """Everything a run recorded; :mod:`improv.bench.report` turns it into figures."""

    settings: Settings
    started: float
    ended: float = 0.0
    transport: list[tuple[float, float]] = field(default_factory=list)
    transport_sent: int = 0  # calibration messages sent (``transport`` holds those intact)
    jack_period: JackPeriod | None = None
    xruns: int | None = None  # JACK cycles the server ran late (None: not on JACK)
    xrun_times: list[float] = field(default_factory=list)
    targets: list[TargetData] = field(default_factory=list)
    mqtt_error: str | None = None


class _Recorder:
    """The harness's output, stamping every message it sends (clock ticks are counted)."""

    def __init__(self, output: MidiOutput, log: list[Event]) -> None:
        self.output = output
        self.name = output.name
        self.stats: PortStats = output.stats
        self.log = log
        self.ticks = 0

    @property
    def connected(self) -> bool:
        return self.output.connected

    def send(self, data: bytes) -> bool:
        ok = self.output.send(data)
        if ok:
            if data[0] == CLOCK:
                self.ticks += 1
            else:
                self.log.append(Event(now(), bytes(data)))
        return ok

    def close(self) -> None:
        self.output.close()


def jam_argv(settings: Settings, config: Configuration, client: str, mqtt_prefix: str) -> list[str]:
    """The ``improv jam`` arguments of a spawned agent on ``client``'s ports: the
    harness's own, then the configuration's, then the user's (after ``--``)."""
    argv = ["jam", "--in", f"{client}:to-agent", "--out", f"{client}-listen:from-agent"]
    argv += ["--midi-api", settings.api, "--tempo", f"{config.tempo:g}", "--mode", config.mode]
    argv += ["--bars", str(config.bars), "--json"]
    if config.send_clock:
        argv += ["--clock", "midi"]
    if settings.mqtt:
        argv += ["--mqtt", settings.mqtt, "--mqtt-prefix", mqtt_prefix]
    return argv + config.jam_options() + list(settings.jam_args)


class _Target:
    """One configuration's agent, live: its ports, scheduler, clock and grid."""

    def __init__(self, settings: Settings, config: Configuration, calls: CallSource) -> None:
        self.settings = settings
        self.config = config
        self.data = TargetData(config, follows_clock=config.send_clock)
        self.calls = calls
        self.metre = settings.metre
        self.beat_s = 60.0 / config.tempo
        self.grid = Grid(0.0, self.beat_s, self.metre.beats_per_bar)
        self.listener: Listener | None = None
        self.midi_out: RtMidiOutput | None = None
        self.recorder: _Recorder | None = None
        self.scheduler: Scheduler | None = None
        self.sender: ClockSender | None = None
        self.agent: SpawnedAgent | None = None
        self.heard = asyncio.Event()
        self.turns_played = 0
        self.failed = False

    @property
    def name(self) -> str:
        return self.config.name

    # --- ports and agent ------------------------------------------------------------

    def open(self, run_id: str) -> None:
        s = self.settings
        i = self.config.index
        if s.spawn:
            client = f"improv-bench-{run_id}-{i}"
            self.midi_out = open_output(
                api=s.api, virtual=True, client_name=client, port_name="to-agent"
            )
            self.listener = Listener(
                s.api, port=None, client_name=client + "-listen", port_name="from-agent"
            )
            argv = jam_argv(s, self.config, client, self.mqtt_prefix(run_id))
            self.data.agent_command = ["improv", *argv]
            self.agent = SpawnedAgent(improv_command(argv), self.name)
        else:
            assert s.agent_in is not None and s.agent_out is not None
            wait_s = max(5.0, s.count_in_wait_s or 0.0)  # the agent may start after us
            self.midi_out = open_output(
                s.agent_in, api=s.api, client_name="improv-bench", port_name="calls", wait_s=wait_s
            )
            self.listener = Listener(
                s.api,
                port=s.agent_out,
                client_name="improv-bench-listen",
                port_name="answers",
                wait_s=wait_s,
            )
        self.recorder = _Recorder(self.midi_out, self.data.sent)
        self.scheduler = Scheduler(self.recorder).start()

    def mqtt_prefix(self, run_id: str) -> str:
        if self.settings.spawn:
            return f"improv-bench/{run_id}/c{self.config.index}/"
        return self.settings.mqtt_prefix or "improv/+/"

    # --- the grid -------------------------------------------------------------------

    def start_clock(self, t: float) -> None:
        """Become the agent's master: beat 0 (START) at ``t``, ticks from a bar before."""
        assert self.scheduler is not None
        per_bar = self.metre.beats_per_bar
        self.grid = Grid(t, self.beat_s, per_bar)
        clock = InternalClock(self.config.tempo, t, self.metre)
        self.sender = ClockSender(self.scheduler, clock, from_beat=-CLOCK_BARS * per_bar)
        self.data.aligned_by = "clock"

    async def find_grid(self, timeout_s: float) -> None:
        """Without a clock: lock the bar lines to the agent's count-in clicks, if any.

        Waits for the clicks (channel 10) until none has come for 1.5 beats after the
        last (a count-in), or until ``timeout_s`` (a metronome never stops; no clicks at
        all); the loudest click is a bar line.
        """
        self.grid = Grid(now(), self.beat_s, self.metre.beats_per_bar)
        deadline = now() + timeout_s
        while now() < deadline:
            clicks = self._clicks()
            if clicks and now() > clicks[-1].t + 1.5 * self.beat_s:
                break
            self.heard.clear()
            wake = min(deadline, clicks[-1].t + 1.5 * self.beat_s) if clicks else deadline
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.heard.wait(), max(0.01, wake - now()))
        clicks = self._clicks()
        if not clicks:
            return
        accent = max(clicks, key=lambda e: (e.data[2], -e.t))
        self.grid = Grid(accent.t, self.beat_s, self.metre.beats_per_bar)
        self.data.aligned_by = "count-in"

    def _clicks(self) -> list[Event]:
        assert self.listener is not None
        return [
            e
            for e in self.listener.events()
            if len(e.data) == 3 and e.data[0] == 0x90 | CLICK_CHANNEL and e.data[2] > 0
        ]

    # --- turns ----------------------------------------------------------------------

    def play_turn(self, start: float, warmup: bool) -> Turn:
        """Schedule a call from bar line ``start``; the turn it opens."""
        assert self.scheduler is not None
        grid, metre, c = self.grid, self.metre, self.config
        bar = round(grid.beat_at(start) / metre.beats_per_bar)
        notes = self.calls.call(bar)
        start_beats = grid.beat_at(start)
        last_off = start
        for note in notes:
            on = grid.time_at(start_beats + note.onset)
            off = grid.time_at(start_beats + note.end) - 0.001
            self.scheduler.schedule_note(note.pitch, note.velocity, on, max(off, on + 0.005))
            last_off = max(last_off, off)
        bars_s = c.bars * grid.bar_s
        if c.mode == "trade":
            call_end, slot, end = start + bars_s, start + bars_s, start + 2 * bars_s
        else:
            call_end, slot, end = last_off, None, start + 2 * bars_s + grid.bar_s
        turn = Turn(
            index=len(self.data.turns),
            call_start=start,
            call_end=call_end,
            window_end=end,
            slot=slot,
            warmup=warmup,
            call_notes=len(notes),
            early_s=0.5 * self.beat_s,
        )
        self.data.turns.append(turn)
        self.turns_played += 1
        return turn

    async def wait_answer(self, turn: Turn) -> Turn:
        """Phrase mode: the next call waits for the answer to end, so a slow agent's
        answer never runs into it. After the nominal window, while an answer has begun
        and a note of it sounds or ended less than a bar ago (a rest inside an answer
        that replays a call can last beats), for at most ``bars`` more bars; the turn's
        window ends then."""
        assert self.listener is not None
        await _sleep_until(turn.window_end)
        quiet = self.grid.bar_s
        bound = turn.window_end + self.config.bars * self.grid.bar_s
        since = turn.call_end - turn.early_s
        waited = False
        while now() < bound:
            events = [e for e in self.listener.events() if e.t >= since]
            begun, quiet_since = answer_state(events, self.settings.channels)
            if not begun or (quiet_since is not None and now() >= quiet_since + quiet):
                break
            waited = True
            wake = bound if quiet_since is None else min(bound, quiet_since + quiet)
            self.heard.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.heard.wait(), max(0.005, wake - now()))
        if not waited:
            return turn
        longer = replace(turn, window_end=now())
        self.data.turns[self.data.turns.index(turn)] = longer
        return longer

    def close(self) -> None:
        self.data.grid = self.grid
        if self.scheduler is not None:
            self.scheduler.stop(release=True)
            stats = self.scheduler.stats()
            self.data.send_error_ms_p99 = stats.send_error_ms_p99
        if self.midi_out is not None:
            with contextlib.suppress(Exception):
                self.midi_out.close()
        if self.listener is not None:
            self.listener.close()
            self.data.received = self.listener.events()  # final times: after the last poll
            self.data.malformed = self.listener.malformed()
            self.data.clock_ticks_in = self.listener.clock_ticks


# --- the run ------------------------------------------------------------------------


def _call_source(settings: Settings, config: Configuration) -> CallSource:
    if settings.calls is not None:
        paths = midi_files(settings.calls)
        return FileCalls(paths, config.mode, config.bars, settings.metre, settings.key)
    seed = settings.seed + config.index
    metre = settings.metre
    return GeneratedCalls(seed, config.mode, config.bars, metre, settings.key, settings.form)


async def calibrate(api: str, run_id: str, count: int = 200) -> list[tuple[float, float]]:
    """Loopback latency of the transport: ``count`` messages from one harness port to
    another, at irregular intervals so that they fall all over the transport's period.
    Each message is unique: those that never arrive intact are missing from the pairs."""
    out = open_output(api=api, virtual=True, client_name=f"improv-bench-{run_id}-cal")
    listener = Listener(
        api,
        port=f"improv-bench-{run_id}-cal:out",
        client_name=f"improv-bench-{run_id}-cal-in",
        port_name="in",
    )
    heard = asyncio.Event()
    listener.bind(asyncio.get_running_loop(), heard)
    sent: list[Event] = []
    scheduler = Scheduler(_Recorder(out, sent)).start()
    try:
        for _ in range(60):  # the first message through proves the connection
            heard.clear()
            out.send(note_on(15, 127, 127))  # unlike any message measured below
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(heard.wait(), 0.05)
                break
        else:
            raise ImprovError("transport calibration: the loopback never delivered")
        sent.clear()
        rng = random.Random(0)
        t = now() + 0.05
        for i in range(count):
            t += rng.uniform(0.003, 0.009)
            scheduler.schedule(t, note_on(15, i % 128, 1 + i // 128))
        deadline = t + 1.0
        wanted = {note_on(15, i % 128, 1 + i // 128) for i in range(count)}
        while now() < deadline and not wanted <= {e.data for e in listener.events()}:
            heard.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(heard.wait(), max(0.01, deadline - now()))
    finally:
        scheduler.stop(release=False)
        listener.close()
        out.close()
    arrived: dict[bytes, float] = {}
    for event in listener.events():
        arrived.setdefault(event.data, event.t)  # a repeat is a corrupted copy
    pairs = [(e.t, arrived[e.data]) for e in sent if e.data in arrived]
    if len(pairs) < count:
        log.warning("transport calibration: %d of %d arrived", len(pairs), count)
    return pairs


async def _sleep_until(t: float) -> None:
    delay = t - now()
    if delay > 0:
        await asyncio.sleep(delay)


class Harness:
    """One run over every configuration (see the module docstring)."""

    def __init__(
        self, settings: Settings, on_turn: Callable[[TargetData, Turn], None] | None = None
    ) -> None:
        self.settings = settings
        self.on_turn = on_turn
        self.run_id = str(os.getpid())
        self.data = RunData(settings, started=now())
        self.targets: list[_Target] = []
        self.burner = Burner()
        self.xruns = XrunCounter()
        self.watcher: MqttWatcher | None = None
        self.usage: TreeSampler | None = None

    async def run(self) -> RunData:
        s = self.settings
        if s.pid is not None:
            self.usage = TreeSampler(s.pid, name=f"pid {s.pid}").start()
        if s.calibrate:
            self.data.transport = await calibrate(s.api, self.run_id, CALIBRATION_MESSAGES)
            self.data.transport_sent = CALIBRATION_MESSAGES
        if s.api == "jack":
            self.data.jack_period = jackinfo.period()
            if self.xruns.open():
                self.data.xruns = 0
        tasks: list[asyncio.Task[None]] = []
        try:
            for config in s.configs:
                target = _Target(s, config, _call_source(s, config))
                self.data.targets.append(target.data)
                if config.skipped:
                    target.data.error = f"skipped: {config.skipped}"
                    continue
                self.targets.append(target)
                target.open(self.run_id)
                assert target.listener is not None
                target.listener.bind(asyncio.get_running_loop(), target.heard)
            if s.mqtt:
                prefixes = [t.mqtt_prefix(self.run_id) for t in self.targets]
                self.watcher = MqttWatcher(s.mqtt, prefixes)
                tasks.append(asyncio.create_task(self.watcher.run(), name="mqtt"))
                await asyncio.wait_for(self.watcher.subscribed.wait(), 10.0)
            await self._start_agents()
            senders = [t.sender.fill for t in self.targets if t.sender is not None]
            if senders:
                tasks.append(asyncio.create_task(keep_ahead(senders, now), name="clock-out"))
            await self._play()
        finally:
            await self._finish()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.burner.close()
            if self.data.xruns is not None:
                self.data.xruns = self.xruns.count
                self.data.xrun_times = list(self.xruns.times)
            self.xruns.close()
            if self.usage is not None:
                self.usage.stop()
                for target in self.targets:
                    target.data.rss, target.data.cpu = list(self.usage.rss), list(self.usage.cpu)
        self.data.ended = now()
        if self.watcher is not None:
            self.data.mqtt_error = self.watcher.error
            for target in self.targets:
                target.data.mqtt = self.watcher.for_prefix(target.mqtt_prefix(self.run_id))
        return self.data

    # --- start-up -------------------------------------------------------------------

    async def _start_agents(self) -> None:
        for target in self.targets:
            if target.agent is not None:
                target.agent.start()
        for target in self.targets:
            if target.agent is not None:
                await self._wait_ready(target, target.agent)
        start = now() + 0.3
        for target in self.targets:
            if target.failed:
                continue
            if target.config.send_clock:
                target.start_clock(start + CLOCK_BARS * target.grid.beats_per_bar * target.beat_s)
        waits = [
            t.find_grid(timeout_s=self._count_in_wait(t))
            for t in self.targets
            if not t.failed and not t.config.send_clock
        ]
        await asyncio.gather(*waits)

    def _count_in_wait(self, target: _Target) -> float:
        """How long to wait for an agent's count-in: ``--wait-count-in``, else two bars
        and a bit for a spawned improv (it counts in as it starts), else none."""
        if self.settings.count_in_wait_s is not None:
            return self.settings.count_in_wait_s
        return 0.8 + 2 * target.beat_s * target.metre.beats_per_bar if self.settings.spawn else 0.0

    async def _wait_ready(self, target: _Target, agent: SpawnedAgent) -> None:
        """The agent listens: its start-up line, or its first MIDI (a count-in click)."""
        deadline = now() + self.settings.ready_timeout_s
        while not (agent.ready.is_set() or target.heard.is_set()):
            if agent.returncode is not None or now() > deadline:
                why = "exited" if agent.returncode is not None else "did not start in time"
                target.failed = True
                target.data.error = f"agent {why}: {agent.stderr_tail()}"
                log.error("%s: agent %s:\n%s", target.name, why, agent.stderr_tail())
                target.data.agent_summary = await asyncio.to_thread(agent.stop)
                return
            await asyncio.sleep(0.02)  # polling a thread's flag, not synchronising time

    # --- turns ----------------------------------------------------------------------

    def _done(self, target: _Target, started: float) -> bool:
        s = self.settings
        if target.failed:
            return True
        if s.minutes is not None and now() - started >= s.minutes * 60.0:
            return True
        return s.turns is not None and target.turns_played >= s.turns + s.warmup

    async def _play(self) -> None:
        s = self.settings
        live = [i for i, t in enumerate(self.targets) if not t.failed]
        if not live:
            return
        started = now()
        cursor = max(now() + LEAD_S, max((t.grid.origin for t in self.targets), default=0.0))
        previous: _Target | None = None
        for index in rounds(live, s.block):
            if all(self._done(t, started) for t in self.targets):
                break
            target = self.targets[index]
            if self._done(target, started):
                continue
            # trade mode: calls on the performer's slots of the form (every other turn)
            every = 2 * target.config.bars if target.config.mode == "trade" else 1
            if target is previous and self.burner.running == target.config.burn:
                start = target.grid.next_bar(cursor, every)
                await _sleep_until(start - LEAD_S)
            else:  # a change of agent or of load: it starts once the last turn is over
                await _sleep_until(cursor)
                self.burner.set(target.config.burn)
                start = target.grid.next_bar(now() + LEAD_S, every)
            warmup = target.turns_played < s.warmup
            turn = target.play_turn(start, warmup)
            if self.on_turn is not None:
                self.on_turn(target.data, turn)
            if target.config.mode == "phrase":
                turn = await target.wait_answer(turn)
            cursor = max(turn.window_end, now() + LEAD_S)
            previous = target
        await _sleep_until(cursor)
        self.burner.set(False)

    # --- shutdown -------------------------------------------------------------------

    async def _finish(self) -> None:
        t = now()
        for target in self.targets:
            if target.sender is not None:
                target.sender.stop(t + 0.01)
        agents = [(tg, tg.agent) for tg in self.targets if tg.agent is not None and not tg.failed]
        summaries = await asyncio.gather(*(asyncio.to_thread(a.stop) for _, a in agents))
        for (target, agent), summary in zip(agents, summaries, strict=True):
            target.data.agent_summary = summary
            target.data.rss, target.data.cpu = list(agent.rss), list(agent.cpu)
            target.data.agent_warnings = list(agent.warnings)
            if summary is None:
                target.data.error = (
                    f"agent exited with {agent.returncode} and no --json summary: "
                    + agent.stderr_tail(6)
                )
                log.warning("%s: %s", target.name, target.data.error)
        await asyncio.sleep(0.2)  # the last note-offs from the agents' shutdown arrive
        for target in self.targets:
            target.close()


async def run(
    settings: Settings, on_turn: Callable[[TargetData, Turn], None] | None = None
) -> RunData:
    return await Harness(settings, on_turn).run()


def total_turns(settings: Settings, configs: Sequence[Configuration]) -> int | None:
    """Calls the run will play (None in a timed run)."""
    if settings.turns is None:
        return None
    return (settings.turns + settings.warmup) * sum(1 for c in configs if not c.skipped)
