"""The musical clock: where in the form we are at any monotonic time, and when a beat falls.

Two sources share one interface (:class:`MusicalClock`): :class:`InternalClock` keeps
its own tempo and metre (tempo changes land on the next bar line, so the position never
jumps), and :class:`MidiClockFollower` follows a master's MIDI clock (24 ticks per
beat, start, stop, continue, song position), fitting a line through the recent ticks
so that tempo and phase move smoothly despite transport jitter. Time is always passed
in (``time.monotonic()`` seconds): nothing here sleeps or reads a clock, so everything
is testable with made-up times.

:class:`ClockSender` (``--send-clock``: improv as master) and :class:`Metronome`
(click and count-in) turn a clock into scheduled MIDI; ``fill(until)`` schedules what
falls before ``until``, and :func:`keep_ahead` calls it from the event loop.
"""

from __future__ import annotations

import asyncio
import bisect
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from improv.io.midi import CLOCK, CONTINUE, SONG_POSITION, START, STOP
from improv.music.time import Metre

PPQN = 24
"""MIDI clock ticks per quarter-note beat."""


@dataclass(frozen=True, slots=True)
class Position:
    """A moment in the music: ``beats`` from bar 0 beat 0 (negative in a count-in)."""

    beats: float
    bar: int
    beat: float  # beats from the bar line, 0 <= beat < beats_per_bar


def position_of(beats: float, metre: Metre) -> Position:
    per_bar = metre.beats_per_bar
    bar = math.floor(beats / per_bar + 1e-9)
    return Position(beats, bar, max(0.0, beats - bar * per_bar))


class MusicalClock(Protocol):
    """What the engine asks of a clock. Times are monotonic seconds, positions beats."""

    metre: Metre

    def beat_at(self, t: float) -> float: ...

    def time_at(self, beats: float) -> float: ...

    def bpm_at(self, t: float) -> float: ...

    def running_at(self, t: float) -> bool: ...


def position(clock: MusicalClock, t: float) -> Position:
    return position_of(clock.beat_at(t), clock.metre)


def next_grid_time(clock: MusicalClock, t: float, step_beats: float = 1.0) -> float:
    """Time of the first grid line (every ``step_beats`` from beat 0) strictly after ``t``."""
    beats = clock.beat_at(t)
    index = math.floor(beats / step_beats + 1e-9) + 1
    return clock.time_at(index * step_beats)


def next_bar_time(clock: MusicalClock, t: float) -> float:
    return next_grid_time(clock, t, clock.metre.beats_per_bar)


@dataclass(frozen=True, slots=True)
class _Segment:
    time: float
    beats: float
    bpm: float


class InternalClock:
    """A clock of its own: bar 0 beat 0 at ``start_time``, at ``bpm``, in ``metre``.

    A metre change (:meth:`change_metre`) makes the jam position jump, at the bar line
    where it lands, to a bar line of the new metre: every part that counts bars as
    ``position // beats_per_bar`` (the turns, the models' token streams, the state) goes
    on counting so, and no time passes in the positions jumped over (:meth:`skip`).
    """

    def __init__(self, bpm: float, start_time: float, metre: Metre | None = None) -> None:
        _check_bpm(bpm)
        self.metre = metre or Metre()  # the metre now: the agent moves it at the change
        self._segments = [_Segment(start_time, 0.0, bpm)]
        self._times = [start_time]
        self._beats = [0.0]
        self._first_metre = self.metre
        self._metres: list[tuple[float, float, Metre]] = []  # (from, to, metre): jumps

    @property
    def start_time(self) -> float:
        return self._segments[0].time

    def _at_time(self, t: float) -> _Segment:
        return self._segments[max(0, bisect.bisect_right(self._times, t) - 1)]

    def _at_beat(self, beats: float) -> _Segment:
        return self._segments[max(0, bisect.bisect_right(self._beats, beats) - 1)]

    def beat_at(self, t: float) -> float:
        seg = self._at_time(t)
        return seg.beats + (t - seg.time) * seg.bpm / 60.0

    def time_at(self, beats: float) -> float:
        index = max(0, bisect.bisect_right(self._beats, beats) - 1)
        seg = self._segments[index]
        t = seg.time + (beats - seg.beats) * 60.0 / seg.bpm
        if index + 1 < len(self._segments):  # a position jumped over: when the jump is
            t = min(t, self._segments[index + 1].time)
        return t

    def bpm_at(self, t: float) -> float:
        return self._at_time(t).bpm

    def metre_at(self, beats: float) -> Metre:
        """The metre in force at jam position ``beats``."""
        metre = self._first_metre
        for _, to, changed in self._metres:
            if beats >= to - 1e-9:
                metre = changed
        return metre

    def skip(self, beats: float) -> float:
        """``beats``, or where the jam goes on when a metre change jumped over it."""
        for at, to, _ in self._metres:
            if at - 1e-9 <= beats < to - 1e-9:
                return to
        return beats

    def change_metre(self, metre: Metre, at: float, to: float) -> float:
        """From bar line ``at`` (a position not yet reached) the jam goes on at ``to``,
        a bar line of ``metre``, at the same moment; returns that moment. A tempo or
        metre change planned past ``at`` is replaced."""
        when = self.time_at(at)
        bpm = self._at_beat(at).bpm
        keep = bisect.bisect_left(self._beats, at)
        del self._segments[keep:], self._times[keep:], self._beats[keep:]
        self._metres = [m for m in self._metres if m[0] < at - 1e-9]
        self._segments.append(_Segment(when, to, bpm))
        self._times.append(when)
        self._beats.append(to)
        self._metres.append((at, to, metre))
        return when

    def running_at(self, t: float) -> bool:
        return True

    def set_tempo(self, bpm: float, t: float) -> float:
        """Change tempo at the first bar line after ``t``; returns when it takes effect.

        Changes already planned after that bar line are replaced.
        """
        _check_bpm(bpm)
        beats = self.beat_at(t)
        metre = self.metre_at(beats)
        bar_beats = metre.bar_start(math.floor(beats / metre.beats_per_bar + 1e-9) + 1)
        bar_beats = self.skip(bar_beats)  # a metre change lands there: from its new bar
        when = self.time_at(bar_beats)
        keep = bisect.bisect_left(self._beats, bar_beats)
        del self._segments[keep:], self._times[keep:], self._beats[keep:]
        self._segments.append(_Segment(when, bar_beats, bpm))
        self._times.append(when)
        self._beats.append(bar_beats)
        return when


def _check_bpm(bpm: float) -> None:
    if not 20.0 <= bpm <= 400.0:
        raise ValueError(f"tempo must lie in [20, 400] BPM: {bpm}")


SETTLE_TICKS = 12
"""Ticks (half a beat) after a START, CONTINUE or pause that fit the phase alone when
the tempo is known (and the fewest ticks that make a tempo known)."""


class MidiClockFollower:
    """Follows incoming MIDI clock; tempo and phase from a line fitted through recent ticks.

    Feed it every system real-time/common message with its receive time. Ticks count
    from the first clock after START (beat 0) or after CONTINUE (the stored song
    position). Clock ticks while stopped still refine the tempo.

    The fit is a line through (tick count, time) over the last ``window`` ticks, so the
    tempo comes from counts over a long span, never from one interval. Ticks arrive
    late and bunched when a thread or the machine stalls (a 40 ms stall delivers five
    ticks of 300 BPM at once): a tick more than ``max(2 ms, a quarter period)`` off the
    line stays out of the fit. Only ``confirm`` such ticks in a row that lie on a line
    of their own with a playable tempo (a bunch does not: its slope is near zero) mean
    a new tempo or phase, and restart the fit from them. START, CONTINUE and a pause
    of a quarter second re-anchor the phase on the next tick and keep the tempo: once a
    tempo is known, the first ``SETTLE_TICKS`` ticks after such a break fit the phase
    alone, on their lower envelope (ticks come late, never early), and a tick late of it
    stays out of the line, so a bunch of held-up first ticks cannot tilt it (a line
    through them would run fast, and notes planned from it come early).
    """

    def __init__(
        self,
        metre: Metre | None = None,
        initial_bpm: float = 120.0,
        window: int = 48,
        confirm: int = 6,
    ) -> None:
        self.metre = metre or Metre()
        self.window = max(2, window)
        self.confirm = max(3, confirm)
        self._points: deque[tuple[int, float]] = deque(maxlen=self.window)  # (counter, t)
        self._suspects: list[tuple[int, float]] = []  # ticks off the line, in a row
        self._reanchor = False  # the next tick sets the phase afresh
        self._tempo_known = False  # a line fitted through SETTLE_TICKS ticks at least once
        self._settle_left = 0  # ticks after a break that fit the phase alone
        self.outliers = 0  # ticks kept out of the fit
        self._counter = 0  # every tick, running or not
        self._period = 60.0 / (initial_bpm * PPQN)  # seconds per tick
        self._intercept: float | None = None  # fitted time of counter 0
        self.running = False
        self._next_index = 0  # song position (ticks) of the next tick to come
        self._anchor: tuple[int, int] | None = None  # (counter, song ticks) while running
        self._last_index = -1
        self.ticks = 0  # ticks received since the last start
        self.last_tick: float | None = None  # when the last tick came
        self._started_at: float | None = None  # when the last START or CONTINUE came

    # --- input ----------------------------------------------------------------------

    def feed(self, data: bytes, t: float) -> str | None:
        """Take one message; returns what it was (``tick``, ``start``, ...) or None."""
        if not data:
            return None
        status = data[0]
        if status == CLOCK:
            self._tick(t)
            return "tick"
        if status == START:
            self._next_index = 0
            self._start(t)
            return "start"
        if status == CONTINUE:
            self._start(t)
            return "continue"
        if status == STOP:
            if self.running:
                self._next_index = self._last_index + 1
            self.running = False
            self._anchor = None
            return "stop"
        if status == SONG_POSITION and len(data) >= 3:
            sixteenths = (data[1] & 0x7F) | (data[2] & 0x7F) << 7
            self._next_index = sixteenths * (PPQN // 4)
            if self.running:  # a jump while playing: the next tick lands there
                self._anchor = (self._counter, self._next_index)
            return "position"
        return None

    def _start(self, t: float) -> None:
        self._started_at = t
        self._reanchor = True
        self.running = True
        self.ticks = 0
        self._anchor = (self._counter, self._next_index)  # the next tick is this index
        self._last_index = self._next_index - 1

    def _tick(self, t: float) -> None:
        self.last_tick = t
        counter = self._counter
        self._counter += 1
        points = self._points
        if points and (self._reanchor or t - points[-1][1] > max(4 * self._period, 0.25)):
            points.clear()  # a new start or a pause: same tempo, new phase
            self._suspects.clear()
            self._settle_left = SETTLE_TICKS if self._tempo_known else 0
        self._reanchor = False
        off = t - self._predict(counter)
        if self._phase_only():  # early is fine: the envelope only ever moves earlier
            off = max(off, 0.0) if points else 0.0
        elif len(points) < 3:
            off = 0.0
        if abs(off) > self._tolerance():
            self._suspects.append((counter, t))
            if not self._new_line():
                self.outliers += 1
                self._advance(counter)
                return
            points.clear()
            points.extend(self._suspects)
            self._suspects.clear()
            self._settle_left = 0  # a new tempo: its line from here on
            self._fit()
        else:
            points.append((counter, t))
            self._suspects.clear()
            self._fit()
            self._settle_left = max(0, self._settle_left - 1)
        self._advance(counter)

    def _phase_only(self) -> bool:
        return self._settle_left > 0

    def _advance(self, counter: int) -> None:
        if self.running and self._anchor is not None:
            self._last_index = counter - self._anchor[0] + self._anchor[1]
            self.ticks += 1

    def _tolerance(self) -> float:
        return max(0.002, 0.25 * self._period)

    def _new_line(self) -> bool:
        """Whether the ticks off the line agree on a line of their own (a new tempo or
        phase), rather than being late or bunched."""
        suspects = self._suspects
        if len(suspects) < self.confirm:
            return False
        del suspects[: -self.confirm]
        period, intercept = _line(suspects)
        if not _playable(period):
            return False
        worst = max(abs(t - intercept - period * x) for x, t in suspects)
        return worst <= max(0.002, 0.25 * period)

    def _fit(self) -> None:
        points = self._points
        if self._phase_only():
            envelope = min(t - self._period * x for x, t in points)
            late = [p for p in points if p[1] - self._period * p[0] - envelope > self._tolerance()]
            for p in late:  # held up: kept out of the line to come
                points.remove(p)
            self._intercept = envelope
            return
        if len(points) >= 2:
            period, intercept = _line(points)
            if _playable(period):
                self._period = period
                self._intercept = intercept
                self._tempo_known = self._tempo_known or len(points) >= SETTLE_TICKS
                return
        x, t = points[-1]
        self._intercept = t - self._period * x

    def _predict(self, counter: int) -> float:
        if self._intercept is None:
            return math.inf
        return self._intercept + self._period * counter

    # --- the clock interface --------------------------------------------------------

    @property
    def bpm(self) -> float:
        return 60.0 / (self._period * PPQN)

    @property
    def song_position(self) -> float:
        """Where the master is (beats): where it stopped, was located or starts from,
        or the last tick's position while it plays."""
        if self.running and self._last_index >= 0:
            return self._last_index / PPQN
        return self._next_index / PPQN

    @property
    def heard_at(self) -> float | None:
        """When the master last showed it plays: its last tick, or a later START or
        CONTINUE (whose first tick comes a moment after it); None before either."""
        times = [x for x in (self.last_tick, self._started_at) if x is not None]
        return max(times) if times else None

    def silent_for(self, t: float) -> float:
        """Seconds since :attr:`heard_at` (inf before anything was heard)."""
        heard = self.heard_at
        return math.inf if heard is None else t - heard

    @property
    def lost_after_s(self) -> float:
        """A running master whose ticks stop this long (a pulled cable) is lost."""
        return max(0.25, 8 * self._period)

    def bpm_at(self, t: float) -> float:
        return self.bpm

    def running_at(self, t: float) -> bool:
        return self.running

    def beat_at(self, t: float) -> float:
        """Song position in beats at ``t``; frozen while stopped, held if ticks stop coming."""
        if not self.running or self._anchor is None or self._intercept is None:
            return self._next_index / PPQN
        anchor_counter, anchor_index = self._anchor
        counter = (t - self._intercept) / self._period
        low = anchor_counter
        high = max(anchor_counter, self._counter)  # at most one tick past the last seen
        counter = min(max(counter, low), high)
        return (counter - anchor_counter + anchor_index) / PPQN

    def time_at(self, beats: float) -> float:
        """When the master will reach ``beats``; ``inf`` while stopped."""
        if not self.running or self._anchor is None or self._intercept is None:
            return math.inf
        anchor_counter, anchor_index = self._anchor
        return self._predict_float(beats * PPQN - anchor_index + anchor_counter)

    def _predict_float(self, counter: float) -> float:
        assert self._intercept is not None
        return self._intercept + self._period * counter


class LocatedClock:
    """A master's clock on a time line of the jam's own that never goes back.

    The master may start again from bar 0, continue or jump (Song Position Pointer);
    what the engine remembers (the rolling context, the models' token streams) is kept
    in jam positions, which must only move forward. A jump adds a whole number of
    ``period`` beats (a common multiple of the form and of two trading slots) to the
    master's position, so the chords and the trading slots fall where they would from
    the master's position, and the jam position stays past everything it has reached.
    """

    def __init__(self, follower: MidiClockFollower) -> None:
        self.follower = follower
        self.metre = follower.metre
        self.offset = 0.0  # jam position minus the master's song position

    def relocate(self, reached: float, period: float) -> None:
        """The master jumped: from here on, jam positions lie at or past ``reached``."""
        song = self.follower.song_position
        self.offset = max(self.offset, period * math.ceil((reached - song) / period - 1e-9))

    def song(self, beats: float) -> float:
        """The master's song position of jam position ``beats``."""
        return beats - self.offset

    def beat_at(self, t: float) -> float:
        return self.follower.beat_at(t) + self.offset

    def time_at(self, beats: float) -> float:
        return self.follower.time_at(beats - self.offset)

    def bpm_at(self, t: float) -> float:
        return self.follower.bpm_at(t)

    def running_at(self, t: float) -> bool:
        return self.follower.running_at(t)


def _playable(period: float) -> bool:
    """Whether a tick period (seconds) is a tempo a master may play (20 to 400 BPM)."""
    return 60.0 / (400.0 * PPQN) <= period <= 60.0 / (20.0 * PPQN)


def _line(points: Sequence[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares (period, intercept) of ``t = intercept + period * counter``."""
    n = len(points)
    x0, t0 = points[0]
    mx = sum(x - x0 for x, _ in points) / n
    mt = sum(t - t0 for _, t in points) / n
    sxx = sum((x - x0 - mx) ** 2 for x, _ in points)
    sxt = sum((x - x0 - mx) * (t - t0 - mt) for x, t in points)
    period = sxt / sxx if sxx > 0 else 0.0
    return period, t0 + mt - period * (x0 + mx)


# --- clock out: MIDI clock, metronome ------------------------------------------------


class Sink(Protocol):
    """Where timed MIDI goes (the :class:`~improv.output.scheduler.Scheduler`)."""

    def schedule(self, time: float, data: bytes) -> None: ...

    def schedule_note(
        self, pitch: int, velocity: int, on_time: float, off_time: float, channel: int = 0
    ) -> int: ...


class ClockSender:
    """improv as master: START at beat ``start_beat``, then 24 clocks per beat.

    ``fill(until)`` schedules the ticks that fall before ``until``; ticks before the
    start beat (a count-in) are sent too, so a slave can lock its tempo in advance.
    """

    def __init__(
        self, sink: Sink, clock: MusicalClock, from_beat: float = 0.0, start_beat: float = 0.0
    ) -> None:
        self._sink = sink
        self._clock = clock
        self._next_tick = math.ceil(from_beat * PPQN - 1e-9)
        self._start_tick = math.ceil(start_beat * PPQN - 1e-9)
        self._started = False
        self._stopped = False

    def fill(self, until: float) -> int:
        """Schedule every tick up to ``until``; returns how many were scheduled."""
        count = 0
        while not self._stopped:
            beats = _skip(self._clock, self._next_tick / PPQN)  # a metre change's jump
            self._next_tick = max(self._next_tick, math.ceil(beats * PPQN - 1e-9))
            t = self._clock.time_at(self._next_tick / PPQN)
            if t > until:
                break
            if not self._started and self._next_tick >= self._start_tick:
                self._sink.schedule(t, bytes((START,)))
                self._started = True
            self._sink.schedule(t, bytes((CLOCK,)))
            self._next_tick += 1
            count += 1
        return count

    def stop(self, t: float) -> None:
        """Send STOP at ``t``; no more ticks are scheduled after it."""
        self._stopped = True
        self._sink.schedule(t, bytes((STOP,)))


@dataclass(frozen=True, slots=True)
class Click:
    """Metronome sound: General MIDI percussion on channel 10 (index 9)."""

    channel: int = 9
    accent_pitch: int = 76  # hi wood block, on the bar line
    pitch: int = 77  # low wood block
    accent_velocity: int = 110
    velocity: int = 80
    length_s: float = 0.04


class Metronome:
    """Clicks every beat from ``from_beat`` to ``until_beat`` (None: forever).

    A count-in is a metronome from ``-bars * beats_per_bar`` to 0.
    """

    def __init__(
        self,
        sink: Sink,
        clock: MusicalClock,
        from_beat: float = 0.0,
        until_beat: float | None = None,
        click: Click | None = None,
    ) -> None:
        self._sink = sink
        self._clock = clock
        self._next_beat = math.ceil(from_beat - 1e-9)
        self._until_beat = until_beat
        self.click = click or Click()

    @classmethod
    def count_in(cls, sink: Sink, clock: MusicalClock, bars: int) -> Metronome:
        return cls(sink, clock, -bars * clock.metre.beats_per_bar, 0.0)

    def fill(self, until: float) -> int:
        count = 0
        while self._until_beat is None or self._next_beat < self._until_beat - 1e-9:
            beats = _skip(self._clock, self._next_beat)  # a metre change's jump: no clicks
            self._next_beat = max(self._next_beat, math.ceil(beats - 1e-9))
            per_bar = _metre_at(self._clock, self._next_beat).beats_per_bar
            t = self._clock.time_at(self._next_beat)
            if t > until:
                break
            click = self.click
            accent = abs(math.remainder(self._next_beat, per_bar)) < 1e-9
            self._sink.schedule_note(
                click.accent_pitch if accent else click.pitch,
                click.accent_velocity if accent else click.velocity,
                t,
                t + click.length_s,
                click.channel,
            )
            self._next_beat += 1
            count += 1
        return count

    @property
    def done(self) -> bool:
        return self._until_beat is not None and self._next_beat >= self._until_beat - 1e-9


def _skip(clock: MusicalClock, beats: float) -> float:
    """Where the jam goes on from ``beats`` (past a metre change's jump, if any)."""
    skip = getattr(clock, "skip", None)
    return float(skip(beats)) if skip is not None else beats


def _metre_at(clock: MusicalClock, beats: float) -> Metre:
    metre_at = getattr(clock, "metre_at", None)
    return metre_at(beats) if metre_at is not None else clock.metre


async def keep_ahead(
    fillers: Sequence[Callable[[float], object]],
    now: Callable[[], float],
    lookahead_s: float = 0.5,
    period_s: float = 0.1,
) -> None:
    """Call every ``fill(now() + lookahead_s)`` each ``period_s`` until cancelled.

    Scheduling half a second ahead means a late loop iteration never makes a tick late:
    the scheduler's thread sends it on time regardless.
    """
    while True:
        until = now() + lookahead_s
        for fill in fillers:
            fill(until)
        await asyncio.sleep(period_s)
