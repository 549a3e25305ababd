"""Latency analysis, pure: what the harness sent and heard -> errors, percentiles, histograms.

Everything works on plain monotonic timestamps and raw MIDI bytes, so every figure is
testable with made-up numbers: known errors go in, the same errors come out.

Definitions (``docs/benchmarks.md`` repeats them for readers of the figures):

- *grid*: where the agent's beats fall. When the agent follows the harness's MIDI
  clock, it is the harness's clock; otherwise it is fitted to the answers (the phase
  that centres their onsets on the nearest grid step). A grid step is 1/12 beat, the
  finest position improv's models place a note on.
- *onset error*: an answer note-on's arrival minus the nearest grid step; figures are
  of its absolute value (``onset_error_ms_p99`` ...), jitter of its signed value.
- *answer start latency*: the first answer note-on minus the call's end (trade: the
  bar line that ends the call on the agent's grid, which is the answer's slot; phrase:
  the call's last note-off); it includes where the answer chose to begin (a rest
  first is latency too). *Answer start error*: that first note's onset error.
- *stuck note*: a note-on that never gets its note-off (CC 123 at shutdown does not
  count: a note only silenced when the agent quits was stuck all along).
- *lost notes*: notes the agent says it played (``notes_out``) that never arrived.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

NOTE_OFF, NOTE_ON, CONTROL_CHANGE = 0x80, 0x90, 0xB0
CC_ALL_SOUND_OFF, CC_ALL_NOTES_OFF = 120, 123
CLICK_CHANNEL = 9  # General MIDI percussion (channel 10): metronome and count-in clicks

PERCENTILES = (50, 95, 99)
FLAG_TURNS = 20  # answered turns before drift is flagged


@dataclass(frozen=True, slots=True)
class Event:
    """One MIDI message as the harness saw it: monotonic seconds and raw bytes."""

    t: float
    data: bytes


@dataclass(frozen=True, slots=True)
class Grid:
    """Where beats fall: beat 0 at ``origin`` (monotonic seconds), ``beat_s`` per beat."""

    origin: float
    beat_s: float
    beats_per_bar: float = 4.0
    steps_per_beat: int = 12

    @property
    def step_s(self) -> float:
        return self.beat_s / self.steps_per_beat

    @property
    def bar_s(self) -> float:
        return self.beat_s * self.beats_per_bar

    def time_at(self, beats: float) -> float:
        return self.origin + beats * self.beat_s

    def beat_at(self, t: float) -> float:
        return (t - self.origin) / self.beat_s

    def nearest_step(self, t: float) -> float:
        """The grid step closest to ``t`` (its time)."""
        return self.origin + round((t - self.origin) / self.step_s) * self.step_s

    def next_bar(self, t: float, every: int = 1) -> float:
        """The first bar line at or after ``t`` (of every ``every`` bars from bar 0)."""
        span = self.bar_s * every
        return self.origin + math.ceil((t - self.origin) / span - 1e-9) * span

    def shifted(self, seconds: float) -> Grid:
        return replace(self, origin=self.origin + seconds)


@dataclass(frozen=True, slots=True)
class Turn:
    """One call as the harness played it, and the window its answer is expected in.

    ``call_end`` is the bar line after the call in trade mode (the answer's slot) and
    the call's last note-off in phrase mode; answer notes are those starting in
    ``[call_end - early_s, window_end)``.
    """

    index: int
    call_start: float
    call_end: float
    window_end: float
    slot: float | None = None
    warmup: bool = False
    call_notes: int = 0
    early_s: float = 0.1


@dataclass(slots=True)
class HeardNote:
    """A note the agent played, as it arrived: note-on time and what ended it."""

    channel: int
    pitch: int
    velocity: int
    on: float
    off: float | None = None
    closed_by: str | None = None  # "off", "cc" (all notes off), or None: still sounding

    @property
    def stuck(self) -> bool:
        return self.closed_by != "off"


@dataclass(slots=True)
class Pairing:
    notes: list[HeardNote] = field(default_factory=list)
    orphan_offs: int = 0  # note-offs with no sounding note
    retriggers: int = 0  # note-ons of a pitch already sounding


def pair_notes(events: Iterable[Event]) -> Pairing:
    """Match note-offs to note-ons (oldest first per channel and pitch); CC 120/123
    closes a channel's notes as ``cc``."""
    result = Pairing()
    sounding: dict[tuple[int, int], list[HeardNote]] = {}
    for event in sorted(events, key=lambda e: e.t):
        data = event.data
        if not data or data[0] >= 0xF0 or len(data) < 3:
            continue
        kind, channel = data[0] & 0xF0, data[0] & 0x0F
        if kind == NOTE_ON and data[2] > 0:
            key = (channel, data[1])
            if sounding.get(key):
                result.retriggers += 1
            note = HeardNote(channel, data[1], data[2], event.t)
            sounding.setdefault(key, []).append(note)
            result.notes.append(note)
        elif kind in (NOTE_OFF, NOTE_ON):
            stack = sounding.get((channel, data[1]))
            if stack:
                note = stack.pop(0)
                note.off, note.closed_by = event.t, "off"
            else:
                result.orphan_offs += 1
        elif kind == CONTROL_CHANGE and data[1] in (CC_ALL_NOTES_OFF, CC_ALL_SOUND_OFF):
            for (ch, _pitch), stack in sounding.items():
                if ch != channel:
                    continue
                for note in stack:
                    note.off, note.closed_by = event.t, "cc"
                stack.clear()
    return result


# --- statistics ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stats:
    """Percentiles of a set of values (None when there are none)."""

    n: int
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None

    @classmethod
    def of(cls, values: Sequence[float] | np.ndarray) -> Stats:
        array = np.asarray(values, dtype=np.float64)
        if array.size == 0:
            return cls(0)
        p50, p95, p99 = (float(v) for v in np.percentile(array, PERCENTILES))
        peak, mean, std = float(array.max()), float(array.mean()), float(array.std())
        return cls(int(array.size), p50, p95, p99, peak, mean, std)

    def figures(self, name: str) -> dict[str, float | None]:
        """``{name}_p50``, ``_p95``, ``_p99``, ``_max``."""
        return {
            f"{name}_p50": _r(self.p50),
            f"{name}_p95": _r(self.p95),
            f"{name}_p99": _r(self.p99),
            f"{name}_max": _r(self.max),
        }


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True, slots=True)
class Histogram:
    edges: tuple[float, ...]
    counts: tuple[int, ...]

    @classmethod
    def of(cls, values: Sequence[float], bins: int = 24) -> Histogram:
        array = np.asarray(values, dtype=np.float64)
        if array.size == 0:
            return cls((), ())
        lo, hi = float(array.min()), float(array.max())
        if hi - lo < 1e-6:
            lo, hi = lo - 0.05, hi + 0.05
        counts, edges = np.histogram(array, bins=bins, range=(lo, hi))
        return cls(tuple(round(float(e), 4) for e in edges), tuple(int(c) for c in counts))

    def as_dict(self) -> dict[str, list[float] | list[int]]:
        return {"edges": list(self.edges), "counts": list(self.counts)}


def circular_offset(times: Sequence[float], grid: Grid) -> float:
    """The shift (seconds, within half a step) that centres ``times`` on ``grid``'s steps:
    the circular mean of their phases, so onsets on either side of a step average out."""
    if not times:
        return 0.0
    step = grid.step_s
    phases = (np.asarray(times, dtype=np.float64) - grid.origin) / step * 2.0 * math.pi
    angle = math.atan2(float(np.sin(phases).mean()), float(np.cos(phases).mean()))
    return angle / (2.0 * math.pi) * step


def fit_grid(times: Sequence[float], grid: Grid) -> Grid:
    """``grid`` moved so that ``times`` sit centred on its steps (agents on a clock of
    their own: the harness knows the tempo, not the phase)."""
    return grid.shifted(circular_offset(times, grid))


def slope_per_minute(times: Sequence[float], values: Sequence[float]) -> float | None:
    """Least-squares slope of ``values`` over ``times`` (seconds), per minute."""
    if len(times) < 3:
        return None
    t = np.asarray(times, dtype=np.float64)
    if float(t.max() - t.min()) <= 0:
        return None
    slope = float(np.polyfit(t - t.mean(), np.asarray(values, dtype=np.float64), 1)[0])
    return slope * 60.0


# --- per turn -----------------------------------------------------------------------


@dataclass(slots=True)
class TurnResult:
    turn: Turn
    notes: list[HeardNote]
    errors_ms: list[float]  # signed onset error of each note, in order
    past_window: int = 0  # notes still sounding when the next call began
    call_end: float = 0.0  # the call's end on the agent's grid (a fitted grid moves it)

    @property
    def first(self) -> HeardNote | None:
        return self.notes[0] if self.notes else None

    @property
    def latency_ms(self) -> float | None:
        first = self.first
        return None if first is None else (first.on - self.call_end) * 1000.0

    @property
    def start_error_ms(self) -> float | None:
        return self.errors_ms[0] if self.errors_ms else None


def assign_turns(
    notes: Sequence[HeardNote], turns: Sequence[Turn]
) -> tuple[dict[int, list[HeardNote]], list[HeardNote]]:
    """Answer notes per turn index, and the notes that fall in no answer window."""
    ordered = sorted(turns, key=lambda t: t.call_end)
    starts = [t.call_end - t.early_s for t in ordered]
    per_turn: dict[int, list[HeardNote]] = {t.index: [] for t in ordered}
    stray: list[HeardNote] = []
    for note in sorted(notes, key=lambda n: n.on):
        i = bisect.bisect_right(starts, note.on) - 1
        if i >= 0 and note.on < ordered[i].window_end:
            per_turn[ordered[i].index].append(note)
        else:
            stray.append(note)
    return per_turn, stray


def _is_answer(note: HeardNote, channels: frozenset[int] | None) -> bool:
    if channels is None:
        return note.channel != CLICK_CHANNEL
    return note.channel in channels


@dataclass(slots=True)
class Analysis:
    """The figures of one configuration."""

    grid: Grid
    grid_mode: str  # "harness-clock" or "fitted"
    grid_offset_ms: float
    turns: list[TurnResult]
    pairing: Pairing
    heard_notes: int  # on the answer channels, in a window or not (vs ``notes_out``)
    stray_notes: int
    transport_offset_ms: float = 0.0  # subtracted for the *_net figures

    @property
    def measured(self) -> list[TurnResult]:
        return [r for r in self.turns if not r.turn.warmup]

    def onset_errors(self) -> list[float]:
        return [e for r in self.measured for e in r.errors_ms]

    def onset_times(self) -> list[float]:
        return [n.on for r in self.measured for n in r.notes]

    def start_errors(self) -> list[float]:
        return [r.start_error_ms for r in self.measured if r.start_error_ms is not None]

    def latencies(self) -> list[float]:
        return [r.latency_ms for r in self.measured if r.latency_ms is not None]

    @property
    def stuck_notes(self) -> int:
        return sum(1 for n in self.pairing.notes if n.stuck)

    def figures(self) -> dict[str, Any]:
        """Flat JSON figures (milliseconds); see the module docstring for definitions."""
        errors = self.onset_errors()
        starts = self.start_errors()
        offset = self.transport_offset_ms
        measured = self.measured
        out: dict[str, Any] = {
            "turns": len(self.turns),
            "turns_measured": len(measured),
            "turns_answered": sum(1 for r in measured if r.notes),
            "grid": self.grid_mode,
            "grid_offset_ms": _r(self.grid_offset_ms),
        }
        out |= Stats.of(self.latencies()).figures("answer_start_latency_ms")
        out |= Stats.of(np.abs(starts)).figures("answer_start_error_ms")
        out |= Stats.of(np.abs(np.asarray(starts) - offset)).figures("answer_start_error_net_ms")
        out |= Stats.of(np.abs(errors)).figures("onset_error_ms")
        out |= Stats.of(np.abs(np.asarray(errors) - offset)).figures("onset_error_net_ms")
        signed = Stats.of(errors)
        out["onset_error_ms_mean"] = _r(signed.mean)
        out["jitter_ms_std"] = _r(signed.std)
        spread = None if signed.p99 is None or signed.p50 is None else signed.p99 - signed.p50
        out["jitter_ms_p99_p50"] = _r(spread)
        out["transport_offset_ms"] = _r(offset)
        out["notes_received"] = len(self.pairing.notes)
        out["answer_notes"] = self.heard_notes - self.stray_notes
        out["stray_notes"] = self.stray_notes
        out["stuck_notes"] = self.stuck_notes
        out["notes_closed_by_cc"] = sum(1 for n in self.pairing.notes if n.closed_by == "cc")
        out["notes_past_window"] = sum(r.past_window for r in measured)
        out["orphan_note_offs"] = self.pairing.orphan_offs
        out["retriggered_notes"] = self.pairing.retriggers
        return out

    def histograms(self) -> dict[str, dict[str, list[float] | list[int]]]:
        return {
            "onset_error_ms": Histogram.of(self.onset_errors()).as_dict(),
            "answer_start_error_ms": Histogram.of(self.start_errors()).as_dict(),
            "answer_start_latency_ms": Histogram.of(self.latencies()).as_dict(),
        }


def analyse(
    received: Sequence[Event],
    turns: Sequence[Turn],
    grid: Grid,
    *,
    follows_clock: bool,
    channels: frozenset[int] | None = None,
    transport_offset_ms: float = 0.0,
) -> Analysis:
    """Pair, assign and measure what the agent played.

    ``grid`` is the harness's grid for this agent; unless the agent ``follows_clock``,
    its phase is fitted to the measured answers first. ``channels`` (0-based) are the
    agent's answer channels; None: every channel but 10 (clicks).
    """
    pairing = pair_notes(received)
    answers = [n for n in pairing.notes if _is_answer(n, channels)]
    per_turn, stray = assign_turns(answers, turns)
    if follows_clock:
        mode, offset = "harness-clock", 0.0
    else:
        warm = {t.index for t in turns if t.warmup}
        onsets = [n.on for i, notes in per_turn.items() if i not in warm for n in notes]
        if not onsets:  # only warm-up answers: better than nothing
            onsets = [n.on for notes in per_turn.values() for n in notes]
        offset = circular_offset(onsets, grid)
        mode = "fitted"
    fitted = grid.shifted(offset)
    results: list[TurnResult] = []
    ordered = sorted(turns, key=lambda t: t.call_end)
    for turn in ordered:
        notes = per_turn.get(turn.index, [])
        errors = [(n.on - fitted.nearest_step(n.on)) * 1000.0 for n in notes]
        past = sum(1 for n in notes if n.off is None or n.off > turn.window_end)
        call_end = turn.call_end + (offset if turn.slot is not None else 0.0)
        results.append(TurnResult(turn, notes, errors, past, call_end))
    return Analysis(
        grid=fitted,
        grid_mode=mode,
        grid_offset_ms=offset * 1000.0,
        turns=results,
        pairing=pairing,
        heard_notes=len(answers),
        stray_notes=len(stray),
        transport_offset_ms=transport_offset_ms,
    )


def lost_notes(notes_out: int | None, heard_notes: int) -> int | None:
    """Notes the agent reports having played that never arrived (None: not reported)."""
    if notes_out is None:
        return None
    return max(0, notes_out - heard_notes)


# --- transport, memory, drift, MQTT -------------------------------------------------


def transport_figures(pairs: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """Loopback latency (receive minus send) of ``(sent, received)`` pairs, in ms."""
    latencies = [(r - s) * 1000.0 for s, r in pairs]
    stats = Stats.of(latencies)
    return {
        "samples": stats.n,
        **stats.figures("latency_ms"),
        "latency_ms_mean": _r(stats.mean),
        "histogram": Histogram.of(latencies).as_dict(),
    }


def memory_figures(samples: Sequence[tuple[float, int]]) -> dict[str, float | None]:
    """RSS samples ``(time, bytes)`` -> start, end, max (MB) and slope (MB per minute)."""
    if not samples:
        return {}
    mb = [b / 2**20 for _, b in samples]
    slope = slope_per_minute([t for t, _ in samples], mb)
    return {
        "rss_mb_start": _r(mb[0], 2),
        "rss_mb_end": _r(mb[-1], 2),
        "rss_mb_max": _r(max(mb), 2),
        "rss_mb_per_min": _r(slope, 3),
    }


def drift_figures(analysis: Analysis) -> dict[str, Any]:
    """Does anything drift? First vs last quarter of the measured turns, and slopes.

    Each figure's p50 and p99 in the first and the last quarter are given; an error
    figure is flagged when its median grows by more than 0.5 ms and 50 % (a median,
    because a quarter's p99 is its one or two worst notes), once there are at least
    ``FLAG_TURNS`` answered turns. Latency is compared, not flagged: it holds where each
    answer chose to begin.
    """
    measured = [r for r in analysis.measured if r.notes]
    if len(measured) < 8:
        return {}
    quarter = len(measured) // 4
    first, last = measured[:quarter], measured[-quarter:]
    out: dict[str, Any] = {"turns_per_quarter": quarter}
    flagged: list[str] = []
    series = {
        "onset_error_ms": lambda rs: [abs(e) for r in rs for e in r.errors_ms],
        "answer_start_error_ms": lambda rs: [
            abs(r.start_error_ms) for r in rs if r.start_error_ms is not None
        ],
        "answer_start_latency_ms": lambda rs: [
            r.latency_ms for r in rs if r.latency_ms is not None
        ],
    }
    for name, values in series.items():
        a, b = Stats.of(values(first)), Stats.of(values(last))
        for label, stats in (("first", a), ("last", b)):
            out[f"{name}_p50_{label}_quarter"] = _r(stats.p50)
            out[f"{name}_p99_{label}_quarter"] = _r(stats.p99)
        growing = a.p50 is not None and b.p50 is not None and b.p50 - a.p50 > max(0.5, 0.5 * a.p50)
        if growing and len(measured) >= FLAG_TURNS and "error" in name:
            flagged.append(name)
    times = [n.on for r in measured for n in r.notes]
    errors = [abs(e) for r in measured for e in r.errors_ms]
    out["onset_error_ms_per_min"] = _r(slope_per_minute(times, errors))
    out["drifting"] = flagged
    return out


def mqtt_delays(
    received: Sequence[tuple[float, str, dict[str, Any]]],
    analysis: Analysis,
) -> dict[str, Any]:
    """Delay from the wire to the broker: ``(receipt time, topic, payload)`` messages.

    - ``mqtt_beat_delay_ms``: a ``beat`` message's receipt minus its beat on the grid
      (the harness's clock when the agent follows it, else the fitted grid). The beat
      is the grid beat nearest the payload's ``t`` (the agent's own monotonic time of
      the beat, valid on the same host), else the last grid beat before receipt.
    - ``mqtt_answer_delay_ms`` and ``mqtt_call_delay_ms``: a ``phrase/answer`` or
      ``phrase/call`` receipt minus the end of that phrase on the wire: in trade mode
      the bar line that closes its turn (when improv publishes it), in phrase mode the
      arrival of the answer's last note-off, or the call's last note-off.
    """
    grid = analysis.grid
    beat_delays: list[float] = []
    answer_delays: list[float] = []
    call_delays: list[float] = []
    answer_ends = sorted(_answer_end(r) for r in analysis.turns if r.notes)
    call_ends = sorted(r.turn.call_end for r in analysis.turns)
    first_call = min((r.turn.call_start for r in analysis.turns), default=math.inf)
    for t, topic, payload in received:
        if topic.endswith("/beat"):
            if t < first_call:
                continue  # before the first call the agent may not have locked yet
            stamp = payload.get("t")
            if isinstance(stamp, int | float) and abs(stamp - t) < 10.0:
                beat = round(grid.beat_at(float(stamp)))
            else:
                beat = math.floor(grid.beat_at(t) + 1e-9)
            beat_delays.append((t - grid.time_at(beat)) * 1000.0)
        elif topic.endswith("/phrase/answer"):
            i = bisect.bisect_right(answer_ends, t) - 1
            if i >= 0:
                answer_delays.append((t - answer_ends[i]) * 1000.0)
        elif topic.endswith("/phrase/call"):
            i = bisect.bisect_right(call_ends, t) - 1
            if i >= 0:
                call_delays.append((t - call_ends[i]) * 1000.0)
    out: dict[str, Any] = {"mqtt_messages": len(received)}
    series = {
        "mqtt_beat_delay_ms": beat_delays,
        "mqtt_answer_delay_ms": answer_delays,
        "mqtt_call_delay_ms": call_delays,
    }
    for name, values in series.items():
        out |= Stats.of(values).figures(name)
    out["histograms"] = {name: Histogram.of(values).as_dict() for name, values in series.items()}
    return out


def _answer_end(result: TurnResult) -> float:
    """Where an answer ends on the wire: its closing bar line (trade, on the agent's
    grid), else its last note-off."""
    if result.turn.slot is not None:
        return result.turn.window_end + (result.call_end - result.turn.call_end)
    return max((n.off if n.off is not None else n.on) for n in result.notes)
