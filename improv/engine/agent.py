"""The agent: the one place where MIDI I/O, the clock, turn-taking, the generator and the
scheduler meet.

Lifecycle, as uvicorn's server: :meth:`Agent.run` starts up (the sender, the clock, the
count-in), runs the main loop as named tasks in an ``asyncio.TaskGroup`` (``midi-in``
reads the performer, ``conductor`` keeps time, turns and beats, ``clock-out`` fills
metronome and MIDI clock ahead, ``stop`` waits for the end), and shuts down on every
exit path: stop, pause, SIGINT, SIGTERM, an exception or a vanished port release what
sounds and send CC 123; then the ports close. Signal handlers only set a flag.

The loop thread moves small messages only: models run on the generator's workers and
MIDI goes out from a sender process (:mod:`improv.output.sender`: no thread of this
process can delay a note, and should this process die, the sender still silences what
sounds) or, for an output that lives in this process (the tests' loopback), from the
scheduler's thread. Observers (the console view, the MQTT bridge) are told about
state, beats, notes, phrases and per-turn figures through :class:`JamObserver`; control
changes come in through :meth:`Agent.apply_control` and land at musically sensible
moments.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from improv.engine import turns
from improv.engine.band import LOOKAHEAD_S as BAND_LOOKAHEAD_S
from improv.engine.band import PERIOD_S as BAND_PERIOD_S
from improv.engine.band import BandPlayer, BandSettings
from improv.engine.clock import (
    PPQN,
    ClockSender,
    InternalClock,
    LocatedClock,
    Metronome,
    MidiClockFollower,
    MusicalClock,
    keep_ahead,
)
from improv.engine.config import JamConfig
from improv.engine.context import ANSWER, CALL, ChordTimeline, Context
from improv.engine.generator import AnswerPlayer, AnswerRequest, Generator, Responder
from improv.engine.model_access import allowed_model
from improv.engine.recording import NoteJournal
from improv.io.control import ControlChange, ControlError
from improv.io.midi import (
    CC_ALL_NOTES_OFF,
    CC_ALL_SOUND_OFF,
    CC_SUSTAIN,
    STOP,
    MidiEvent,
    MidiInput,
    MidiOutput,
    control_change,
    note_off,
)
from improv.music.notes import Note, Phrase
from improv.music.pitch import Key
from improv.music.time import TICKS_PER_BEAT, Metre, Swing, quantize_beats
from improv.output.scheduler import OutputScheduler, Scheduler
from improv.output.sender import OutputSpec, ProcessScheduler
from improv.timebase import now

log = logging.getLogger(__name__)

COLLISION_S = 0.150
"""An answer note starting this soon after a performer's note-on talks over them."""
START_DELAY_S = 0.3
"""From start-up to the first count-in click (or bar 0): time to get everything going."""
FILL_AHEAD_S = 0.5
"""How far ahead the metronome and the MIDI clock out are scheduled."""


class JamObserver:
    """Told what happens in the jam; every call comes from the loop thread and must
    return at once (queue, never wait). Override what you need."""

    def on_state(self, state: dict[str, Any]) -> None:
        """Mode, turn, tempo, key, form, bar, beat, chord, model ... changed."""

    def on_beat(self, bar: int, beat: float, chord: str | None) -> None:
        """A beat is falling now (bar counts from 0; negative in the count-in)."""

    def on_note(self, role: str, pitch: int, velocity: int, at: float) -> None:
        """A note started (velocity > 0) or ended (0) at jam position ``at`` (beats);
        the agent's notes are told when they are scheduled, ahead of time."""

    def on_phrase(self, role: str, phrase: Phrase, turn: int) -> None:
        """A call (``role`` "call") or an answer ("answer") has finished."""

    def on_metrics(self, metrics: dict[str, Any]) -> None:
        """A turn has finished: its figures (keys of MQTT's ``metrics`` payload)."""


@dataclass(slots=True)
class JamSummary:
    """The figures of a whole jam (``improv jam --json`` prints them)."""

    turns: int = 0
    notes_in: int = 0
    notes_out: int = 0
    deadline_misses: int = 0
    fallback_notes: int = 0
    send_error_ms_p50: float = 0.0
    send_error_ms_p99: float = 0.0
    send_error_ms_max: float = 0.0
    # improv's own notes only (its channel), without the band's or the clock's messages
    answer_send_error_ms_p50: float | None = None
    answer_send_error_ms_p99: float | None = None
    answer_send_error_ms_max: float | None = None
    band_notes: int = 0  # notes the rhythm section played
    stuck_notes: int = 0  # note-ons sent whose note-off never was, on any channel
    answer_start_error_ms_p99: float | None = None
    answer_start_error_ms_max: float | None = None
    generation_headroom_ms_min: float | None = None
    generation_ms_p50: float | None = None
    generation_ms_max: float | None = None
    candidates: int = 0  # candidate answers drafted in the whole jam
    candidates_min: int | None = None  # per answer
    candidates_p50: float | None = None
    critic_total: float | None = None  # the winners' mean critic score
    transform: dict[str, int] = field(default_factory=dict)  # winners by motif transform
    messages_sent: int = 0
    messages_late: int = 0  # sent more than 1 ms after their time
    messages_by_standby: int = 0  # sent by the standby thread (improv.output.standby)
    send_failures: int = 0
    malformed_in: int = 0
    dropped_in: int = 0
    input_queue_full: int = 0  # rtmidi's own queue found full: input may have been lost
    notes_coalesced: int = 0  # input notes too dense for the models (engine.context)
    model: str = ""
    tempo: float = 0.0
    mode: str = ""
    bars: int = 0
    choruses: float = 0.0
    seconds: float = 0.0
    stopped_by: str = ""
    collisions: int = 0  # answer notes starting within 150 ms after a performer's note-on
    phrase_wait_ms_p50: float | None = None  # phrase mode: call's last note-off to answer
    phrase_wait_ms_p99: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {name: _round(getattr(self, name)) for name in self.__dataclass_fields__}


def collisions(answer_ons: Sequence[float], performer_ons: Sequence[float]) -> int:
    """Answer notes starting within :data:`COLLISION_S` after a performer's note-on."""
    if not answer_ons or not performer_ons:
        return 0
    ons = np.sort(np.asarray(performer_ons, dtype=np.float64))
    answers = np.asarray(answer_ons, dtype=np.float64)
    before = np.searchsorted(ons, answers, side="right") - 1  # the last note-on at or before
    valid = before >= 0
    gaps = answers[valid] - ons[before[valid]]
    return int(np.count_nonzero(gaps < COLLISION_S))


def _note_key(channel: int, pitch: int) -> int:
    """One int for a (channel, pitch) pair: the key of the sent note-ons kept."""
    return channel << 7 | pitch


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


@dataclass(slots=True)
class _Turn:
    """Bookkeeping of the answer in progress."""

    number: int
    request: AnswerRequest
    player: AnswerPlayer | None = None
    cut_at: float | None = None  # where a barge-in or stop cut it
    send_index: int = 0  # the scheduler's send-error count when it began
    scheduled: list[tuple[Note, float]] = field(default_factory=list)  # note, on time
    waited_s: float | None = None  # phrase mode: from the call's last note-off to its start
    continues: bool = False  # the rest of an answer redrafted at a key change: no new turn


@dataclass(slots=True)
class _Stop:
    reason: str = ""
    grace_s: float = 0.0


class _Stopped(Exception):
    """Raised inside the task group to end the main loop."""


class Agent:
    """Listens on ``midi_in``, answers on ``midi_out``. Owns (and closes) both ports.

    ``midi_out`` is a port to open in a sender process of its own (an
    :class:`OutputSpec`: real ports, the demo), so that no thread of this process can
    delay a send, or an output object of this process (the in-process loopback of the
    tests), sent to by a thread.
    """

    def __init__(
        self,
        config: JamConfig,
        *,
        midi_in: MidiInput,
        midi_out: MidiOutput | OutputSpec,
        primary: Responder,
        fallbacks: Sequence[Responder] = (),
        inline: Callable[[AnswerRequest], list[Note]],
        observers: Sequence[JamObserver] = (),
        load_responder: Callable[[str], Responder] | None = None,
        timeline: ChordTimeline | None = None,
        handle_signals: bool = True,
        journal: NoteJournal | None = None,
        band: BandSettings | None = None,
    ) -> None:
        self.config = config
        self.midi_in = midi_in
        self.scheduler: OutputScheduler
        self._out_port: MidiOutput | None = None
        if isinstance(midi_out, OutputSpec):
            self.scheduler = ProcessScheduler(midi_out, on_sent=self._sent)
        else:
            self.scheduler = Scheduler(midi_out, on_sent=self._sent)
            self._out_port = midi_out
        # the sender's reports, handed over from its reader thread; the loop takes them
        # (_take_reports) and owns everything below
        self._reports: deque[tuple[bytes, float, float]] = deque(maxlen=1 << 16)
        self._send_errors: deque[float] = deque(maxlen=1 << 14)  # seconds, as reported
        self._own_send_errors: deque[float] = deque(maxlen=1 << 16)  # improv's notes only
        self._sounding: set[tuple[int, int]] = set()  # (status channel, pitch) as sent
        self._sent_count = 0
        self._note_ons: deque[tuple[int, float, float]] = deque(maxlen=256)
        self._answer_sent: deque[tuple[int, float]] = deque()  # (pitch, time) sent: the record
        # answers played but not yet journalled: their sent reports may still be coming
        self._unconfirmed: deque[tuple[list[tuple[Note, float]], float]] = deque()
        self._output_open = False
        self.observers = list(observers)
        self.generator = Generator(
            primary,
            fallbacks,
            inline,
            lookahead_s=config.lookahead_ms / 1000.0,
            margin_s=config.margin_ms / 1000.0,
        )
        self._load_responder = load_responder
        self._handle_signals = handle_signals
        self.metre = config.metre_obj
        self.swing = Swing(config.swing)
        self.key: Key = config.key_obj
        self.timeline = timeline or ChordTimeline(config.form_obj())
        self.form = self.timeline.form_at(0.0)  # (a performer file's own changes, say)
        self.context = Context(
            self.timeline,
            self.metre,
            sink=self.generator.listen,
            rewind=self.generator.rewind,
        )
        self.channel_out = config.channel_out - 1
        self.clock: MusicalClock = InternalClock(config.tempo, math.inf, self.metre)
        self.follower: MidiClockFollower | None = None
        self.located: LocatedClock | None = None
        self._halted = False  # the master stopped (or its clock went): nothing is answered
        self._clock_lost = False
        self._reached = -math.inf  # the furthest jam position stepped (beats)
        self.state = turns.initial_state(self._turn_params(config))
        self.summary = JamSummary(model=primary.name)
        self.started = asyncio.Event()  # the clock runs: others may read positions
        self.muted = False
        self.paused = False
        self._stop: _Stop | None = None
        self._stop_event = asyncio.Event()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._turn: _Turn | None = None
        self._turn_count = 0
        self._fillers: list[Callable[[float], object]] = []
        self._clock_sender: ClockSender | None = None
        self._last_beat = -(10**9)
        self._end_beat: float | None = None
        self._done_at: float | None = None  # when the answer's last note ends (beats)
        self._start_time = 0.0
        self._answer_errors: list[float] = []
        self._model_loading: asyncio.Future[Responder] | None = None  # one load at a time
        self._model_queued: tuple[str, asyncio.Future[None]] | None = None  # the next, latest
        self._model_ready: Responder | None = None  # loaded, used from the next answer
        self._seed = config.seed if config.seed is not None else int(time.time()) & 0xFFFF
        self._performer_open: dict[int, tuple[float, int, bool]] = {}  # onset, velocity, kept
        self._performer_ons: deque[float] = deque(maxlen=1 << 16)  # note-on times
        self._answer_on_times: deque[float] = deque(maxlen=1 << 16)  # as sent: collisions
        self._released_at: float | None = None  # when the performer last fell silent
        self._waits: deque[float] = deque(maxlen=1 << 12)  # phrase mode: note-off to answer (s)
        self.journal = journal or NoteJournal()  # what was played: on disk, not in memory
        self._metre_due: tuple[float, float, Metre] | None = None  # (at, to, metre): waits
        self.metre_changes: list[tuple[float, float, Metre]] = []  # made: (at, to, metre)
        self.band: BandPlayer | None = None
        if band is not None and band.parts:
            self.band = BandPlayer(
                band,
                self.scheduler,
                clock=lambda: self.clock,
                timeline=self.timeline,
                metre=self.metre,
                swing=config.swing,
                slot_at=lambda beats: turns.slot_at(self.state, beats),
                end_beat=lambda: self._end_beat,
                journal=self.journal,
                seed=self._seed,
                tempo=config.tempo,
            )

    # --- public ------------------------------------------------------------------------

    async def run(self) -> JamSummary:
        """Play until stopped (or the last chorus ends); the jam's figures."""
        await self.open_output()
        try:
            self._startup()
        except BaseException:
            self.summary.stopped_by = "error"
            self._shutdown()
            raise
        stopped_by = "stop"
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._listen(), name="midi-in")
                group.create_task(self._conduct(), name="conductor")
                if self._fillers:
                    group.create_task(
                        keep_ahead(self._fillers, now, lookahead_s=FILL_AHEAD_S, period_s=0.1),
                        name="clock-out",
                    )
                if self.band is not None:
                    group.create_task(
                        keep_ahead(
                            [self.band.fill],
                            now,
                            lookahead_s=BAND_LOOKAHEAD_S,
                            period_s=BAND_PERIOD_S,
                        ),
                        name="band",
                    )
                group.create_task(self._watch_stop(), name="stop")
        except* _Stopped:
            stopped_by = self._stop.reason if self._stop else "stop"
        except* Exception:
            stopped_by = "error"
            raise
        finally:
            self.summary.stopped_by = stopped_by
            self._shutdown()
        return self.summary

    async def open_output(self) -> None:
        """Start the sender (a sender process opens its port: a moment). :meth:`run`
        does it if not done; call it first where control may come in early (MQTT)."""
        if self._output_open:
            return
        try:
            if isinstance(self.scheduler, ProcessScheduler):
                await asyncio.to_thread(self.scheduler.start)
            else:
                self.scheduler.start()
        except BaseException:
            self.summary.stopped_by = "error"
            self._shutdown()
            raise
        self._output_open = True

    def request_stop(self, reason: str = "stop", grace_s: float = 0.0) -> None:
        """End the jam: at once, or after the answer in progress (``grace_s`` at most).
        Safe from signal handlers (it only sets a flag)."""
        if self._stop is None:
            self._stop = _Stop(reason, grace_s)
        self._stop_event.set()

    def apply_control(self, change: ControlChange) -> asyncio.Future[None] | None:
        """Take a validated control change (from MQTT) on the loop thread; applied at a
        musically sensible moment. Raises :class:`ControlError` when it cannot be; a
        model change returns a future that ends when the model is loaded (or fails)."""
        if change.model is not None and self._load_responder is None:
            raise ControlError("this jam cannot change its model")
        model = allowed_model(change.model, self.config.models_dir) if change.model else None
        if change.metre is not None:
            self._check_metre(change.metre)  # before anything of the request applies
        at = now() + self.generator.lookahead_s + 0.05  # past what is already scheduled
        if change.tempo is not None:
            if not isinstance(self.clock, InternalClock):
                raise ControlError("tempo follows the MIDI clock master: cannot set it")
            self.clock.set_tempo(change.tempo, at)
            self.config = replace(self.config, tempo=change.tempo)
            self._update_lead()
        if change.key is not None:
            self._set_key(change.key, at)
        if change.form is not None:
            self._set_form(change.form, at)
        if change.metre is not None:  # past the clicks and clock already scheduled too
            self._set_metre(change.metre, max(at, now() + FILL_AHEAD_S + 0.05))
        if change.mode is not None or change.bars is not None:
            self.config = replace(
                self.config,
                mode=change.mode or self.config.mode,
                bars=change.bars or self.config.bars,
            )
            self.state = turns.with_params(self.state, self._turn_params(self.config))
        if change.temperature is not None:
            self.config = replace(self.config, temperature=change.temperature)
        if change.mute is not None:
            self.muted = change.mute
            if change.mute:
                self._cut_answer("muted")
        if change.pause is not None and change.pause != self.paused:
            self.paused = change.pause
            if not self._halted:  # while the master is stopped, the turns wait for it
                self._step(turns.Pause(change.pause))
        for part, _muted in change.band_mute:
            if self.band is None or part not in self.band.section.parts:
                raise ControlError(f"band_mute: no {part} in this band")
        for part, muted in change.band_mute:
            assert self.band is not None
            self.band.set_mute(part, muted)
        if change.panic:
            self._cut_answer("panic")
            self.scheduler.panic()
        self._publish_state()
        self._wake.set()
        return self._change_model(model) if model is not None else None

    def position(self, t: float | None = None) -> float:
        """The jam position (beats) at monotonic time ``t`` (default now)."""
        return self.clock.beat_at(now() if t is None else t)

    # --- lifecycle ---------------------------------------------------------------------

    def _startup(self) -> None:
        self._loop = asyncio.get_running_loop()
        config = self.config
        bar_s = 60.0 / config.tempo * self.metre.beats_per_bar
        count_in = config.count_in if config.clock == "internal" else 0
        self._start_time = now() + START_DELAY_S + count_in * bar_s
        if config.clock == "midi":
            self.follower = MidiClockFollower(self.metre, config.tempo)
            self.located = LocatedClock(self.follower)
            self.clock = self.located
            self._halt(0.0)  # until the master starts
        else:
            self.clock = InternalClock(config.tempo, self._start_time, self.metre)
        if count_in and (config.metronome or config.count_in):
            self._fillers.append(Metronome.count_in(self.scheduler, self.clock, count_in).fill)
        if config.metronome:
            self._fillers.append(Metronome(self.scheduler, self.clock, 0.0).fill)
        if config.send_clock and config.clock == "internal":
            sender = ClockSender(self.scheduler, self.clock, -count_in * self.metre.beats_per_bar)
            self._clock_sender = sender
            self._fillers.append(sender.fill)
        if config.choruses is not None:
            self._end_beat = config.choruses * self.form.beats
        self._update_lead()
        self._listen_to_ports()
        if self._handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._loop.add_signal_handler(sig, self.request_stop, sig.name)
        self.generator.listen(())  # warm the workers up
        self.started.set()
        self._publish_state()
        log.info(
            "jam: %s, %s %s, %g BPM, %s %d bars, model %s",
            self.form.name,
            self.key.name,
            self.metre,
            config.tempo,
            config.mode,
            config.bars,
            self.generator.primary.name,
        )

    def _shutdown(self) -> None:
        """Every exit path comes here: silence, CC 123, close."""
        if self._loop is not None and self._handle_signals:
            with contextlib.suppress(Exception):
                for sig in (signal.SIGINT, signal.SIGTERM):
                    self._loop.remove_signal_handler(sig)
        t = now()
        with contextlib.suppress(Exception):
            self._cut_answer("stop")
        if self._clock_sender is not None:
            with contextlib.suppress(Exception):
                self._clock_sender.stop(t)
        scheduler = self.scheduler
        scheduler.stop(release=False, timeout=1.0)
        if self._clock_sender is not None:
            scheduler.send(bytes((STOP,)))  # the sender is stopped now
        scheduler.panic()  # note-offs for all that sounds, pedal up, CC 123
        scheduler.send(control_change(self.channel_out, CC_ALL_NOTES_OFF, 0))
        if self.band is not None:
            self.band.all_notes_off()
        for pitch in list(self._performer_open):  # keys still down: they end here
            self._performer_off(pitch, t)
        self.generator.close()
        self._confirm_record()
        self._finish_summary(t)
        for close in (scheduler.close, self.midi_in.close, self._close_out_port):
            try:
                close()
            except Exception:
                log.exception("jam: closing failed")
        self._publish_state()

    def _close_out_port(self) -> None:
        if self._out_port is not None:
            self._out_port.close()

    async def _watch_stop(self) -> None:
        await self._stop_event.wait()
        stop = self._stop or _Stop()
        log.info("jam: stopping (%s)", stop.reason)
        if stop.grace_s > 0 and self._turn is not None:
            deadline = now() + stop.grace_s
            while self._turn is not None and now() < deadline:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, deadline - now())):
                        await self._wake.wait()
        self._cut_answer(stop.reason)
        raise _Stopped

    # --- MIDI in -----------------------------------------------------------------------

    async def _listen(self) -> None:
        async for event in self.midi_in:
            try:
                self._on_midi(event)
            except Exception:  # a bad message must never end the jam
                log.exception("MIDI in: could not handle %r", event)

    def _on_midi(self, event: MidiEvent) -> None:
        if event.is_system:
            if event.is_transport and self.follower is not None:
                kind = self.follower.feed(event.data, event.time)
                if kind is not None and (kind != "tick" or self._clock_lost):
                    self._transport(kind, event.time)
            elif self.config.thru and not event.is_transport:
                self.scheduler.schedule(now(), event.data)
            return
        channel_in = self.config.channel_in
        if channel_in is not None and event.channel != channel_in - 1:
            return
        if event.is_note_on:
            self._performer_on(event.pitch, event.velocity, event.time)
        elif event.is_note_off:
            self._performer_off(event.pitch, event.time)
        elif event.is_control_change and event.control == CC_SUSTAIN:
            self._step(turns.Pedal(event.value >= 64), self.clock.beat_at(event.time))
        elif event.is_control_change and event.control in (CC_ALL_NOTES_OFF, CC_ALL_SOUND_OFF):
            for pitch in list(self._performer_open):
                if self.config.thru:  # each note passed thru gets its own note-off
                    self.scheduler.schedule(now(), note_off(event.channel, pitch))
                self._performer_off(pitch, event.time)
        if self.config.thru:
            self.scheduler.schedule(now(), event.data)

    def _performer_on(self, pitch: int, velocity: int, t: float) -> None:
        beats = self.clock.beat_at(t)
        self.summary.notes_in += 1
        self._performer_ons.append(t)
        if pitch in self._performer_open:
            self._performer_off(pitch, t)
        self._step(turns.NoteOn(pitch, velocity), beats)
        if self.band is not None:
            self.band.hear(pitch, velocity, beats)
        kept = self.context.note_on(CALL, pitch, velocity, self._grid(beats))
        self._performer_open[pitch] = (beats, velocity, kept)
        if kept:  # a note coalesced in a flood is counted, neither kept nor told
            for observer in self.observers:
                observer.on_note(CALL, pitch, velocity, beats)

    def _performer_off(self, pitch: int, t: float) -> None:
        opened = self._performer_open.pop(pitch, None)
        if opened is None:
            return
        beats = self.clock.beat_at(t)
        if not self._performer_open:
            self._released_at = t
        self._step(turns.NoteOff(pitch), beats)
        onset, velocity, kept = opened
        if not kept:
            return
        self.context.note_off(CALL, pitch, self._grid(beats))
        self.journal.add(CALL, [Note(pitch, velocity, onset, max(1e-3, beats - onset))])
        for observer in self.observers:
            observer.on_note(CALL, pitch, 0, beats)

    def _grid(self, beats: float) -> float:
        """A performed position on the straight grid the models think in."""
        return quantize_beats(self._straight(beats))

    def _straight(self, beats: float) -> float:
        """A sounding position on the straight grid (swing undone), not quantized."""
        return self.swing.unrender(beats) if self.swing.ratio != 1.0 else beats

    def _listen_to_ports(self) -> None:
        add = getattr(self.midi_in, "add_status_listener", None)
        if add is not None:
            add(lambda connected: self._from_watchdog("in", connected))
        self.scheduler.add_status_listener(lambda connected: self._from_watchdog("out", connected))

    def _from_watchdog(self, role: str, connected: bool) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._port_status, role, connected)

    def _port_status(self, role: str, connected: bool) -> None:
        """A port vanished or came back: the agent keeps its time and plays on."""
        if not connected:
            log.warning("MIDI %s port lost: releasing notes, waiting for it", role)
            self._cut_answer(f"{role} port lost")
            if role == "in":
                for pitch in list(self._performer_open):
                    self._performer_off(pitch, now())
            self.scheduler.panic()
        else:
            log.warning("MIDI %s port back", role)
            if role == "out":  # whatever it held when it went: silence it
                self.scheduler.send(control_change(self.channel_out, CC_ALL_NOTES_OFF, 0))

    # --- transport (a MIDI clock master) -------------------------------------------------

    def _transport(self, kind: str, t: float) -> None:
        """Follow the master: STOP (or its clock lost) halts, what sounds ends; START,
        CONTINUE, a tick after a loss and a Song Position Pointer while running go on
        from the master's new position, with the turns afresh."""
        follower = self.follower
        assert follower is not None and self.located is not None
        if kind == "stop":
            self._clock_lost = False
            self._halt(t)
        elif kind == "position" and not follower.running:
            self._relocate_clock()  # located while stopped: shown now, played at CONTINUE
            self._publish_state()
        elif follower.running:
            if self._clock_lost:
                log.warning("MIDI clock back: playing on")
            self._clock_lost = False
            self._resume(t)
        self._wake.set()

    def _watch_clock(self, t: float) -> None:
        """A running master whose ticks stop (a pulled cable) is treated as stopped."""
        follower = self.follower
        if follower is None or not follower.running or self._clock_lost:
            return
        if follower.silent_for(t) > follower.lost_after_s:
            log.warning("MIDI clock lost: no tick for %.2f s; halting", follower.silent_for(t))
            self._clock_lost = True
            self._halt(t)

    def _halt(self, t: float) -> None:
        beats = self.clock.beat_at(t)
        self._halted = True
        if self.band is not None:
            self.band.halt()
        self._step(turns.Relocate(), beats)  # the answer ends now, its notes with it
        if self.state.phase is not turns.Phase.IDLE:
            self._step(turns.Pause(True), beats)
        self._publish_state()

    def _resume(self, t: float) -> None:
        self._relocate_clock()
        if self.band is not None:
            self.band.halt()  # it comes in again on the next beat of the new position
        beats = self.clock.beat_at(t)
        self._halted = False
        self._step(turns.Relocate(), beats)
        if not self.paused:
            self._step(turns.Pause(False), beats)
        self._publish_state()

    def _follow_tempo(self) -> None:
        """The master's tempo, as fitted, sets the turns' lead (checked at bar lines)."""
        follower = self.follower
        if follower is None or follower.ticks < PPQN:
            return
        bpm = round(follower.bpm, 1)
        if abs(bpm - self.config.tempo) >= 0.5:
            self.config = replace(self.config, tempo=bpm)
            self._update_lead()

    def _relocate_clock(self) -> None:
        """Jam positions go on past all reached, whatever the master's song position."""
        assert self.located is not None
        if not math.isfinite(self._reached):
            return  # the master's first start: its positions as they are
        ticks = [round(b * PPQN) for b in (self.form.beats, 2 * self.state.params.turn_beats)]
        period = math.lcm(*ticks) / PPQN
        self.located.relocate(self._reached + self.metre.beats_per_bar, period)

    def _song(self, beats: float) -> float:
        """The master's song position of a jam position (the same on improv's own clock)."""
        return self.located.song(beats) if self.located is not None else beats

    # --- time, turns and beats ---------------------------------------------------------

    async def _conduct(self) -> None:
        while True:
            t = now()
            self._take_reports()
            self._watch_clock(t)
            beats = self.clock.beat_at(t)
            self._beats(beats)
            self._step(turns.Tick(), beats)
            if self._done_at is not None and beats >= self._done_at:
                self._done_at = None
                self._step(turns.AnswerDone(), beats)
            if self._end_beat is not None and beats >= self._end_beat:
                self.request_stop("choruses", grace_s=0.0)
                return
            await self._sleep_until(self._next_due(beats))

    def _next_due(self, beats: float) -> float:
        due_beats = math.floor(beats + 1e-9) + 1.0
        wake = turns.next_wakeup(self.state)
        if wake is not None:
            due_beats = min(due_beats, max(wake, beats))
        if self._end_beat is not None:
            due_beats = min(due_beats, max(self._end_beat, beats))
        if self._done_at is not None:
            due_beats = min(due_beats, max(self._done_at, beats))
        due = self.clock.time_at(due_beats)
        follower = self.follower
        if follower is not None and follower.running and (heard := follower.heard_at) is not None:
            due = min(due, heard + follower.lost_after_s + 0.001)
        return due

    async def _sleep_until(self, t: float) -> None:
        timeout = min(0.25, max(0.0, t - now()))
        self._wake.clear()
        if timeout <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    def _beats(self, beats: float) -> None:
        index = math.floor(beats + 1e-9)
        if index <= self._last_beat:
            return
        self._last_beat = index
        song = round(self._song(index))
        bar = math.floor(song / self.metre.beats_per_bar + 1e-9)
        beat = song - bar * self.metre.beats_per_bar
        chord = self.timeline.symbol_at(index) if index >= 0 else None
        for observer in self.observers:
            observer.on_beat(bar, beat, chord)
        if beat == 0:
            self._follow_tempo()
            self._publish_state()

    def _step(self, event: turns.Event, beats: float | None = None) -> None:
        at = self.clock.beat_at(now()) if beats is None else beats
        if self._metre_due is not None and at >= self._metre_due[1] - 1e-9:
            self._switch_metre()  # whatever comes first past the change meets the new bars
        if math.isfinite(at) and not self._halted:
            self._reached = max(self._reached, at)
        before = (self.state.turn, turns.slot_at(self.state, at))
        self.state, actions = turns.step(self.state, event, at)
        for action in actions:
            self._act(action)
        if (self.state.turn, turns.slot_at(self.state, at)) != before:
            self._publish_state()
        if actions:
            self._wake.set()

    def _act(self, action: turns.Action) -> None:
        if isinstance(action, turns.CallStarted):
            self.context.phrase("start", CALL, action.start)
        elif isinstance(action, turns.AnswerPlanned):
            self._plan(action)
        elif isinstance(action, turns.CallEnded):
            self._call_ended(action)
        elif isinstance(action, turns.CancelAnswer):
            self._cut_answer(action.reason, action.at)
        elif isinstance(action, turns.AnswerEnded):
            self._answer_ended()

    # --- answers -----------------------------------------------------------------------

    def _plan(self, planned: turns.AnswerPlanned) -> None:
        if self._turn is not None:
            self._cut_answer("superseded")
        end = planned.end
        if self._end_beat is not None:
            end = min(end, self._end_beat)
        if self._metre_due is not None:  # no answer runs across a metre change
            end = min(end, self._metre_due[0])
        if self.muted or end <= planned.start:
            return
        self._turn_count += 1
        call = self.context.played(CALL, planned.call_start - 1.0, planned.start)
        lo, hi = self.config.pitch_range
        request = AnswerRequest(
            start=planned.start,
            end=end,
            call=tuple(call),
            chords=self.timeline.changes(planned.call_start, end),
            metre=self.metre,
            key=self.key,
            pitch_range=(lo, hi),
            velocity=round(float(np.mean([n.velocity for n in call]))) if call else 80,
            density=len(call) / max(1.0, planned.call_end - planned.call_start),
            temperature=self.config.temperature,
            top_p=self.config.top_p,
            seed=self._seed + self._turn_count,
            turn=self._turn_count,
            mode=self.config.mode,
        )
        self._take_pending_model()
        self.context.hold()
        turn = _Turn(self._turn_count, request, send_index=self._send_count())
        if self.config.mode == "phrase" and self._released_at is not None:
            turn.waited_s = self._time_of(planned.start) - self._released_at
        self._turn = turn
        assert self._loop is not None
        turn.player = self.generator.answer(
            request,
            loop=self._loop,
            time_of=self._time_of,
            play=self._play,
            on_done=lambda player: self._generated(turn, player),
        )

    def _generated(self, turn: _Turn, player: AnswerPlayer) -> None:
        """The whole answer is scheduled: the turn may end with its last note (phrase
        mode hands the turn back then, not at the end of the answer's window)."""
        if self._turn is turn and turn.cut_at is None:
            self._done_at = max((n.end for n in player.played), default=turn.request.start)
            self._wake.set()

    def _time_of(self, beats: float) -> float:
        """When a straight-grid position sounds: swung, on the clock."""
        return self.clock.time_at(self.swing.render(beats) if self.swing.ratio != 1.0 else beats)

    def _play(self, note: Note, source: str) -> bool:
        """Schedule one answer note (the generator's callback, on the loop thread)."""
        on = self._time_of(note.onset)
        off = self._time_of(note.end) - 0.002
        t = now()
        if not math.isfinite(on) or on < t + 0.001:
            return False  # never late: a note that cannot go out in time is dropped
        if off <= on:
            off = on + 0.01
        if not self.muted:
            self.scheduler.schedule_note(note.pitch, note.velocity, on, off, self.channel_out)
            if self._turn is not None:
                self._turn.scheduled.append((note, on))
            if self.band is not None:
                self.band.hear(note.pitch, note.velocity, note.onset)
        for observer in self.observers:
            observer.on_note(ANSWER, note.pitch, note.velocity, note.onset)
        return True

    def _call_ended(self, ended: turns.CallEnded) -> None:
        self.context.phrase("end", CALL, ended.end)
        call = self.context.played(CALL, ended.start - 1.0, ended.end)
        number = self._turn.number if self._turn is not None else self._turn_count
        phrase = self.context.phrase_of(CALL, ended.start, ended.end, call)
        for observer in self.observers:
            observer.on_phrase(CALL, phrase, number)
        if call and self._turn is not None:
            self.generator.learn(call, self._turn.request)

    def _cut_answer(self, reason: str, at: float | None = None) -> None:
        """Stop the answer now (barge-in, pause, stop): what sounds ends cleanly."""
        turn = self._turn
        if turn is None:
            return
        t = now()
        cut = self.clock.beat_at(t) if at is None else at
        if self._time_of(cut) < t:  # heard late: what was due until now has gone out
            cut = max(cut, self._straight(self.clock.beat_at(t)))
        cut = max(cut, turn.request.start)
        turn.cut_at = min(cut, turn.request.end)
        if turn.player is not None and not turn.player.finished:
            turn.player.cancel(turn.cut_at)
        when = self._time_of(turn.cut_at)  # inf when the master has stopped: now
        when = max(t, when) if math.isfinite(when) else t
        self.scheduler.cancel_after(when, self.channel_out)
        log.debug("answer %d cut at beat %.2f: %s", turn.number, turn.cut_at, reason)
        self._answer_ended()

    def _answer_ended(self) -> None:
        turn, self._turn = self._turn, None
        self._done_at = None
        if turn is None:
            return
        end = turn.cut_at if turn.cut_at is not None else turn.request.end
        player = turn.player
        played = [
            replace(n, duration=min(n.duration, end - n.onset))
            for n in (player.played if player else [])
            if n.onset < end - 1e-9
        ]
        self.context.resume(played, turn.request.start)
        self._unconfirmed.append((turn.scheduled, end))
        self._confirm_record(keep_last=True)
        if end <= turn.request.start + 1e-9:
            return  # cut before it began (the performer went on): no turn
        self.summary.turns += 0 if turn.continues else 1
        if turn.waited_s is not None and math.isfinite(turn.waited_s):
            self._waits.append(turn.waited_s)
        phrase = self.context.phrase_of(ANSWER, turn.request.start, end, played)
        for observer in self.observers:
            observer.on_phrase(ANSWER, phrase, turn.number)
        self._turn_metrics(turn, played)
        self._wake.set()

    # --- figures -----------------------------------------------------------------------

    def _sent(self, data: bytes, scheduled: float, sent: float) -> None:
        """What went out: the hand-off from the sender's thread (or the sender process's
        reader), one append; the loop reads it in :meth:`_take_reports`."""
        self._reports.append((data, scheduled, sent))

    def _take_reports(self) -> None:
        """On the loop: fold the sender's reports into the figures and the record."""
        reports = self._reports
        while reports:
            data, scheduled, sent = reports.popleft()
            self._send_errors.append(sent - scheduled)
            self._sent_count += 1
            event = MidiEvent(data, sent)
            if not (event.is_note_on or event.is_note_off):
                continue
            note = (event.channel, event.pitch)
            if event.channel == self.channel_out:  # improv's own
                self._own_send_errors.append(sent - scheduled)
            if event.is_note_off:
                self._sounding.discard(note)
                continue
            self._sounding.add(note)
            self._note_ons.append((_note_key(*note), scheduled, sent))
            if event.channel == self.channel_out:
                self._answer_sent.append((event.pitch, scheduled))
                self._answer_on_times.append(scheduled)

    def _confirm_record(self, *, keep_last: bool = False) -> None:
        """Journal the answers as they went out: the notes whose note-on the sender
        reported sent, each cut where its answer was; nothing planned but unsent, nothing
        sent but unplanned. The latest answer waits (``keep_last``) while its reports,
        which come in batches, may still be on their way; once the sender has stopped,
        every report is in."""
        self._take_reports()
        while len(self._unconfirmed) > (1 if keep_last else 0):
            scheduled, end = self._unconfirmed.popleft()
            last_on = max((on for _, on in scheduled), default=-math.inf)
            sent: set[tuple[int, float]] = set()
            while self._answer_sent and self._answer_sent[0][1] <= last_on + 1e-9:
                sent.add(self._answer_sent.popleft())
            self.journal.add(
                ANSWER,
                [
                    replace(note, duration=max(1e-3, min(note.duration, end - note.onset)))
                    for note, on in scheduled
                    if (note.pitch, on) in sent
                ],
            )

    def _send_count(self) -> int:
        self._take_reports()
        return self._sent_count

    def _sent_at(self, channel: int, pitch: int, scheduled: float) -> float | None:
        """When the note-on of ``pitch`` scheduled for ``scheduled`` really went out."""
        self._take_reports()
        key = _note_key(channel, pitch)
        for k, at, sent in list(self._note_ons):
            if k == key and abs(at - scheduled) < 1e-6:
                return sent
        return None

    def _turn_errors(self, since: int) -> np.ndarray:
        """Send errors (ms) reported since the count was ``since``."""
        self._take_reports()
        count = min(self._sent_count - since, len(self._send_errors))
        errors = list(self._send_errors)[len(self._send_errors) - count :] if count > 0 else []
        return np.asarray(errors, dtype=np.float64) * 1000.0

    def _turn_metrics(self, turn: _Turn, played: Sequence[Note]) -> None:
        figures = turn.player.figures if turn.player is not None else None
        start_error: float | None = None
        if figures is not None and figures.first_time is not None and played:
            sent = self._sent_at(self.channel_out, played[0].pitch, figures.first_time)
            if sent is not None:
                start_error = (sent - figures.first_time) * 1000.0
                self._answer_errors.append(start_error)
        errors = self._turn_errors(turn.send_index)
        metrics: dict[str, Any] = {
            "turn": turn.number,
            "notes_out": len(played),
            "send_error_ms_p50": float(np.percentile(errors, 50)) if len(errors) else None,
            "send_error_ms_p99": float(np.percentile(errors, 99)) if len(errors) else None,
            "send_error_ms_max": float(errors.max()) if len(errors) else None,
            "answer_start_error_ms": start_error,
            "generation_ms": figures.generation_ms if figures else None,
            "generation_headroom_ms_min": figures.headroom_ms_min if figures else None,
            "deadline_misses": figures.deadline_misses if figures else 0,
            "fallback_notes": figures.fallback_notes if figures else 0,
            "candidates": figures.candidates if figures else 0,
            "critic_total": figures.critic_total if figures else None,
            "critic_parts": figures.critic_parts if figures else None,
            "transform": figures.transform if figures else None,
        }
        for observer in self.observers:
            observer.on_metrics(metrics)

    def _finish_summary(self, t: float) -> None:
        s = self.summary
        stats = self.scheduler.stats()  # a round trip: every report is in before it
        self._take_reports()
        gen = self.generator.stats
        s.notes_out = self.journal.count(ANSWER)
        s.deadline_misses = gen.deadline_misses
        s.fallback_notes = gen.fallback_notes
        s.send_error_ms_p50 = stats.send_error_ms_p50
        s.send_error_ms_p99 = stats.send_error_ms_p99
        s.send_error_ms_max = stats.send_error_ms_max
        s.messages_sent = stats.sent
        own = np.asarray(self._own_send_errors, dtype=np.float64) * 1000.0
        if len(own):
            s.answer_send_error_ms_p50 = float(np.percentile(own, 50))
            s.answer_send_error_ms_p99 = float(np.percentile(own, 99))
            s.answer_send_error_ms_max = float(own.max())
        s.band_notes = self.band.notes if self.band is not None else 0
        s.stuck_notes = len(self._sounding)
        s.send_failures = stats.failed
        s.messages_late = stats.late
        s.messages_by_standby = stats.by_standby
        if self._answer_errors:
            s.answer_start_error_ms_p99 = float(np.percentile(self._answer_errors, 99))
            s.answer_start_error_ms_max = float(max(self._answer_errors))
        s.generation_headroom_ms_min = gen.headroom_ms_min
        if gen.generation_ms:
            s.generation_ms_p50 = float(np.percentile(gen.generation_ms, 50))
            s.generation_ms_max = float(max(gen.generation_ms))
        s.candidates = sum(gen.candidates)
        if gen.candidates:
            s.candidates_min = min(gen.candidates)
            s.candidates_p50 = float(np.percentile(gen.candidates, 50))
        if gen.critic_totals:
            s.critic_total = float(np.mean(gen.critic_totals))
        s.transform = dict(gen.transforms)
        s.malformed_in = self.midi_in.stats.malformed
        s.dropped_in = self.midi_in.stats.dropped
        s.input_queue_full = self.midi_in.stats.queue_full
        s.notes_coalesced = self.context.coalesced
        s.tempo = self.config.tempo
        s.mode = self.config.mode
        s.bars = self.config.bars
        s.model = self.generator.primary.name
        beats = self.clock.beat_at(t)
        s.choruses = max(0.0, beats / self.form.beats) if math.isfinite(beats) else 0.0
        s.seconds = max(0.0, t - self._start_time)
        self._take_reports()
        s.collisions = collisions(list(self._answer_on_times), list(self._performer_ons))
        if self._waits:
            s.phrase_wait_ms_p50 = float(np.percentile(self._waits, 50)) * 1000.0
            s.phrase_wait_ms_p99 = float(np.percentile(self._waits, 99)) * 1000.0

    # --- state and control -------------------------------------------------------------

    def jam_state(self) -> dict[str, Any]:
        """The retained state others follow (MQTT ``state``)."""
        beats = self.clock.beat_at(now())
        if not math.isfinite(beats):
            beats = 0.0
        song = self._song(beats)
        index = math.floor(song + 1e-9)
        bar = math.floor(index / self.metre.beats_per_bar + 1e-9)
        slot, bars_left = turns.slot_at(self.state, beats)
        idle = self.paused or self._halted
        return {
            "mode": self.config.mode,
            "turn": "idle" if idle else self.state.turn,
            "slot": None if idle else slot,
            "slot_bars_left": None if idle else bars_left,
            "tempo": round(self.clock.bpm_at(now()), 3),
            "metre": str(self.metre),
            "key": self.key.name,
            "form": self.form.name,
            "bar": bar,
            "beat": float(index - bar * self.metre.beats_per_bar),
            "chord": self.timeline.symbol_at(beats) if beats >= 0 else None,
            "model": self.generator.primary.name,
            "device": str(getattr(self.generator.primary, "device", "cpu")),
            "temperature": self.config.temperature,
            "bars": self.config.bars,
            "chorus": max(0, math.floor(song / self.form.beats)) if song >= 0 else 0,
            "muted": self.muted,
            "paused": self.paused,
        }

    def _publish_state(self) -> None:
        if not self.observers:
            return
        state = self.jam_state()
        for observer in self.observers:
            observer.on_state(state)

    def _turn_params(self, config: JamConfig) -> turns.TurnParams:
        lead = (config.lookahead_ms + config.margin_ms) / 1000.0 * config.tempo / 60.0
        return turns.TurnParams(
            mode=turns.Mode(config.mode),
            bars=config.bars,
            beats_per_bar=config.metre_obj.beats_per_bar,
            barge_in=turns.BargeIn(config.barge_in),
            gap_beats=config.gap,
            align=turns.Align(config.align),
            max_answer_beats=max(8.0, config.bars * config.metre_obj.beats_per_bar),
            lead_beats=min(lead, config.metre_obj.beats_per_bar),
            slots=turns.Slots(config.slots),
            first=turns.First(config.first),
        )

    def _update_lead(self) -> None:
        self.state = turns.with_params(self.state, self._turn_params(self.config))

    def _set_key(self, key: Key, at: float) -> None:
        """The chords move at the next bar line; the models hear the new key at once (a
        note's worth early at most), since their input cannot go back in time. An answer
        drafted in the old key that runs past the bar line is cut there and its rest
        drafted afresh (the models hold what they hear while they draft: without this,
        they would learn the key only when the answer ended)."""
        bar_line = self._next_bar_line(at)
        self.key = key
        self.form = self.form.in_key(key.tonic)
        self.timeline.set_form(self.form, bar_line, keep_origin=True)
        self.config = replace(self.config, key=key.name)
        self.context.key_change(key.tonic, self.clock.beat_at(at))
        if self.band is not None:
            self.band.replan(bar_line)
        self._redraft_from(bar_line)

    def _redraft_from(self, beats: float) -> None:
        turn = self._turn
        if turn is None or turn.cut_at is not None or turn.request.end <= beats + 1e-9:
            return
        request, call = turn.request, (self.state.call_start, self.state.call_end)
        self._cut_answer("key change", beats)  # the models hear the change as it ends
        start = max(beats, request.start)
        self._plan(turns.AnswerPlanned(*call, start, request.end))
        if self._turn is not None and start > request.start:
            self._turn.continues = True

    def _set_form(self, name: str, at: float) -> None:
        from improv.music.forms import get_form

        try:
            form = get_form(name, self.key, self.metre)
        except ValueError as exc:
            raise ControlError(str(exc)) from None
        self.form = form
        chorus = self.timeline.next_chorus(self.clock.beat_at(at))
        self.timeline.set_form(form, chorus)
        if self.band is not None:
            self.band.replan(chorus)
        self.config = replace(self.config, form=name)

    def _check_metre(self, metre: Metre) -> None:
        """Refuse a metre change the jam cannot make, with the reason."""
        from improv.tokens import MAX_BAR_TICKS

        if not isinstance(self.clock, InternalClock):
            raise ControlError("metre: the MIDI clock master counts the bars; start with --metre")
        if metre.ticks_per_bar > MAX_BAR_TICKS:
            limit = MAX_BAR_TICKS / TICKS_PER_BEAT
            raise ControlError(f"metre {metre}: the models read bars of {limit:g} beats at most")
        if self._metre_due is not None:
            due = self._metre_due[2]
            raise ControlError(f"metre: the change to {due} is due at the next bar line")

    def _set_metre(self, metre: Metre, t: float) -> None:
        """Bars of ``metre`` from the first bar line after ``t``. The jam position jumps
        there (no time passing) to a bar line of ``metre`` where the form goes on from
        the same bar and the trading slots from the same bar of the same player's slot,
        so every part that counts bars from position 0 counts them right; the parts
        that hold positions follow when the jam reaches it (:meth:`_switch_metre`)."""
        assert isinstance(self.clock, InternalClock)
        old, per_bar, bars = self.metre, metre.beats_per_bar, self.config.bars
        at = max(0.0, self._next_bar_line(t))
        slot_beats = bars * old.beats_per_bar
        slot = math.floor(at / slot_beats + 1e-9)
        in_slot = round((at - slot * slot_beats) / old.beats_per_bar)
        period = 2 * bars * per_bar  # two slots: the performer's and improv's
        residue = ((slot % 2) * bars + in_slot) * per_bar
        to = residue + period * math.ceil((at - residue) / period - 1e-9)
        form = self.timeline.form_at(at)
        bar = round((at - self.timeline.chorus_start(at)) / old.beats_per_bar) % form.n_bars
        self.timeline.set_form(form.in_metre(metre), to, origin=to - bar * per_bar)
        self.clock.change_metre(metre, at, to)
        self._metre_due = (at, to, metre)
        if self.band is not None:
            self.band.change_metre(metre, at, to)
        if self._turn is not None and self._turn.request.end > at + 1e-9:
            self._cut_answer("metre change", at)
        log.info("metre: %s from beat %g (the jam goes on at %g)", metre, at, to)

    def _switch_metre(self) -> None:
        """The jam has reached a metre change: the parts that count bars take the new
        ones; the turns start afresh on the slots of the form (as after a relocation)."""
        assert self._metre_due is not None
        at, to, metre = self._metre_due
        self._metre_due = None
        self._cut_answer("metre change", at)  # an answer up to the bar line ends in its bars
        self.metre_changes.append((at, to, metre))
        if self._end_beat is not None:  # --choruses: the bars left are played, in the new bars
            bars_left = (self._end_beat - at) / self.metre.beats_per_bar
            self._end_beat = to + bars_left * metre.beats_per_bar
        self.metre = self.clock.metre = metre
        self.form = self.timeline.form_at(to)
        self.config = replace(self.config, metre=str(metre))
        self.context.metre_change(metre, at, to)
        self._update_lead()
        self._step(turns.Relocate(), to)
        self._publish_state()

    def _next_bar_line(self, t: float) -> float:
        beats = self.clock.beat_at(t)
        return math.ceil(beats / self.metre.beats_per_bar - 1e-9) * self.metre.beats_per_bar

    def _change_model(self, spec: str) -> asyncio.Future[None]:
        """Load a model off the loop, one load at a time: a request made while one loads
        waits, replacing any earlier waiting one (refused as replaced), so a flood of
        requests costs one load in flight and one waiting, never a hundred."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._model_loading is None:
            self._start_load(spec, done)
        else:
            if self._model_queued is not None:
                earlier, waiting = self._model_queued
                _fail(waiting, ControlError(f"model {earlier!r}: replaced by a later request"))
            self._model_queued = (spec, done)
        return done

    def _start_load(self, spec: str, done: asyncio.Future[None]) -> None:
        assert self._load_responder is not None
        loading = asyncio.get_running_loop().run_in_executor(None, self._load_responder, spec)
        self._model_loading = loading
        loading.add_done_callback(lambda f: self._loaded(spec, f, done))

    def _loaded(
        self, spec: str, loading: asyncio.Future[Responder], done: asyncio.Future[None]
    ) -> None:
        self._model_loading = None
        if loading.cancelled():
            _fail(done, ControlError(f"model {spec!r}: loading was cancelled"))
        elif (exc := loading.exception()) is not None:
            log.error("model change failed: %s", exc)
            _fail(done, ControlError(f"model {spec!r}: {exc}"))
        else:
            self._model_ready = loading.result()
            if not done.done():
                done.set_result(None)
        if self._model_queued is not None:
            (next_spec, next_done), self._model_queued = self._model_queued, None
            self._start_load(next_spec, next_done)

    def _take_pending_model(self) -> None:
        responder, self._model_ready = self._model_ready, None
        if responder is None:
            return
        self.generator.set_primary(responder)
        log.info("model: now %s", responder.name)


def _fail(future: asyncio.Future[None], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)
