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
- *lost notes*: notes whose note-on or note-off never arrived, counted from the wire
  (:func:`pair_notes`), for any agent; what an agent reports having sent is compared
  too where it reports it (improv's ``notes_out``).
- *grid-free timing* (:mod:`improv.bench.rhythm`): inter-onset error and drift within
  an answer, for agents that no grid explains (``grid_meaningful`` false).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from improv.bench.rhythm import (
    AnswerRhythm,
    answer_rhythm,
    answer_spread_ratio,
    explains,
    grid_explains,
    note_jitter_ms,
    spread_ratio,
)

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
    closed_by: str | None = None  # "off"; "retrigger" (its note-off never came before
    # the next note-on of its key); "cc" (all notes off); None: still sounding

    @property
    def stuck(self) -> bool:
        """Never released: no note-off, no later note of its key (CC 123 does not count)."""
        return self.closed_by in (None, "cc")

    @property
    def lost_off(self) -> bool:
        """Its note-off never came (stuck, or ended by the next note of its key)."""
        return self.closed_by != "off"


@dataclass(slots=True)
class Pairing:
    """Notes paired from the wire, and what did not pair, with times to place it in turns."""

    notes: list[HeardNote] = field(default_factory=list)
    orphan_offs: int = 0  # note-offs with no sounding note, whatever the reason
    retriggers: int = 0  # note-ons of a key already sounding (beyond REPEAT_S)
    overlaps: int = 0  # retriggers whose own note-off came later after all
    lost_note_ons: list[float] = field(default_factory=list)  # orphan note-offs, unexplained
    repeated_note_ons: list[float] = field(default_factory=list)  # within REPEAT_S
    repeated_note_offs: list[float] = field(default_factory=list)  # within REPEAT_S
    sweep_offs: list[float] = field(default_factory=list)  # orphans in a note-off sweep
    sweeps: list[float] = field(default_factory=list)  # each sweep's first note-off
    redundant_offs: int = 0  # orphans of a key that CC 123 already silenced
    system_resets: list[float] = field(default_factory=list)  # 0xFF: System Reset

    @property
    def lost_note_offs(self) -> int:
        return sum(1 for n in self.notes if n.lost_off)


REPEAT_S = 0.0015
"""A note-on (note-off) of a key within this of its last one is a repeated message."""
SWEEP_S, SWEEP_PITCHES = 0.010, 8
"""Note-offs of this many pitches within this of each other: a sweep (a panic, a barge-in)."""


def _is_off(data: bytes) -> bool:
    kind = data[0] & 0xF0
    return kind == NOTE_OFF or (kind == NOTE_ON and data[2] == 0)


def _in_sweeps(events: Sequence[Event]) -> set[int]:
    """Indices of the note-offs among ``events`` (sorted) that belong to a sweep."""
    offs = [(i, e.t, e.data[1]) for i, e in enumerate(events) if _is_off(e.data)]
    times = [t for _, t, _ in offs]
    found: set[int] = set()
    for i, t, _ in offs:
        lo, hi = bisect.bisect_left(times, t - SWEEP_S), bisect.bisect_right(times, t + SWEEP_S)
        if len({pitch for _, _, pitch in offs[lo:hi]}) >= SWEEP_PITCHES:
            found.add(i)
    return found


def pair_notes(events: Iterable[Event]) -> Pairing:
    """Match note-offs to note-ons, robust to a lost or repeated message.

    One note sounds per channel and key, as on a synth: a note-on of a sounding key ends
    the note before it (``retrigger``: its note-off never came, or comes later for an
    overlap), so one lost note-off costs one note, not every later note of that key.
    A note-off with nothing sounding is an orphan: the note-off of an overlapped note,
    a repeat, part of a sweep, after CC 123 or a sweep silenced its key, or else the
    trace of a lost note-on.
    CC 120/123 closes a channel's notes as ``cc``.
    """
    result = Pairing()
    ordered = sorted(
        (e for e in events if e.data and (e.data[0] == 0xFF or len(e.data) >= 3)),
        key=lambda e: e.t,
    )
    sweeping = _in_sweeps([e if e.data[0] < 0xF0 else Event(e.t, b"\xf0") for e in ordered])
    sounding: dict[tuple[int, int], HeardNote] = {}
    pending: dict[tuple[int, int], list[HeardNote | None]] = {}  # extra note-ons
    last_on: dict[tuple[int, int], float] = {}
    last_off: dict[tuple[int, int], float] = {}
    silenced: set[tuple[int, int]] = set()
    last_sweep = -math.inf
    for index, event in enumerate(ordered):
        t, data = event.t, event.data
        if data[0] == 0xFF:
            result.system_resets.append(t)
            continue
        if data[0] >= 0xF0:
            continue
        kind, channel = data[0] & 0xF0, data[0] & 0x0F
        key = (channel, data[1])
        if kind == NOTE_ON and data[2] > 0:
            silenced.discard(key)
            if t - last_on.get(key, -math.inf) <= REPEAT_S:
                result.repeated_note_ons.append(t)
                pending.setdefault(key, []).append(None)
                last_on[key] = t
                continue
            last_on[key] = t
            earlier = sounding.get(key)
            if earlier is not None:
                result.retriggers += 1
                earlier.off, earlier.closed_by = t, "retrigger"
                pending.setdefault(key, []).append(earlier)
            note = HeardNote(channel, data[1], data[2], t)
            sounding[key] = note
            result.notes.append(note)
        elif kind in (NOTE_OFF, NOTE_ON):
            repeated = t - last_off.get(key, -math.inf) <= REPEAT_S
            last_off[key] = t
            ended = sounding.pop(key) if key in sounding else None
            if ended is not None:
                ended.off, ended.closed_by = t, "off"
                if index in sweeping:  # its own note-off may still come: redundant then
                    silenced.add(key)
                continue
            result.orphan_offs += 1
            if index in sweeping:
                result.sweep_offs.append(t)
                if t - last_sweep > SWEEP_S:
                    result.sweeps.append(t)
                last_sweep = t
            elif pending.get(key):
                extra = pending[key].pop(0)
                if extra is not None:  # an overlap: its note-off came after all
                    extra.off, extra.closed_by = t, "off"
                    result.overlaps += 1
            elif repeated:
                result.repeated_note_offs.append(t)
            elif key in silenced:
                result.redundant_offs += 1
                silenced.discard(key)
            else:
                result.lost_note_ons.append(t)
        elif kind == CONTROL_CHANGE and data[1] in (CC_ALL_NOTES_OFF, CC_ALL_SOUND_OFF):
            for k in [k for k in sounding if k[0] == channel]:
                note = sounding.pop(k)
                note.off, note.closed_by = t, "cc"
                silenced.add(k)
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
    flags: tuple[str, ...] = ()  # anomalies in the answer window (see ``turn_flags``)
    xruns: int = 0  # JACK xruns in the answer window (the transport's trouble, not a flag)
    rhythm: AnswerRhythm = field(default_factory=lambda: AnswerRhythm((), None))

    @property
    def first(self) -> HeardNote | None:
        return self.notes[0] if self.notes else None

    @property
    def start_known(self) -> bool:
        """False when the answer's first note-on was lost: its start cannot be measured."""
        return "first_note_on_lost" not in self.flags

    @property
    def latency_ms(self) -> float | None:
        first = self.first
        if first is None or not self.start_known:
            return None
        return (first.on - self.call_end) * 1000.0

    @property
    def start_error_ms(self) -> float | None:
        return self.errors_ms[0] if self.errors_ms and self.start_known else None


FLAGS = (
    "lost_note_on",
    "first_note_on_lost",
    "lost_note_off",
    "stuck_note",
    "past_window",
    "repeated_message",
    "note_off_sweep",
    "malformed",
)
"""Every anomaly :func:`turn_flags` can raise, in its order."""


def turn_flags(
    turn: Turn,
    notes: Sequence[HeardNote],
    pairing: Pairing,
    *,
    past_window: int = 0,
    malformed: Sequence[float] = (),
) -> tuple[str, ...]:
    """What went wrong in a turn's answer window, so that no figure hides it.

    ``first_note_on_lost``: a lost note-on's note-off came before the first heard
    note ended (or with no note heard), so the answer began earlier than it seems;
    its latency and start error are left out of the figures.
    """
    lo, hi = turn.call_end - turn.early_s, turn.window_end

    def within(times: Iterable[float]) -> bool:
        return any(lo <= t < hi for t in times)

    flags: list[str] = []
    lost_ons = [t for t in pairing.lost_note_ons if lo <= t < hi]
    if lost_ons:
        flags.append("lost_note_on")
        first = notes[0] if notes else None
        first_end = hi if first is None or first.off is None else first.off
        if min(lost_ons) < first_end:
            flags.append("first_note_on_lost")
    if any(n.closed_by == "retrigger" for n in notes):
        flags.append("lost_note_off")
    if any(n.stuck for n in notes):
        flags.append("stuck_note")
    if past_window:
        flags.append("past_window")
    if within(pairing.repeated_note_ons) or within(pairing.repeated_note_offs):
        flags.append("repeated_message")
    if within(pairing.sweeps):
        flags.append("note_off_sweep")
    if within(pairing.system_resets) or within(malformed):
        flags.append("malformed")
    return tuple(flags)


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


GRID_FIGURES = (
    "answer_start_error_ms",
    "answer_start_error_net_ms",
    "onset_error_ms",
    "onset_error_net_ms",
    "jitter_ms",
)
"""Figures (key prefixes) that mean something only where the grid explains the onsets."""
RHYTHM_FIGURES = ("ioi_error_ms", "answer_drift_ms")


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
    malformed_packets: int = 0  # packets with bytes that are no MIDI (the listener's count)
    note_messages: int = 0  # note-ons and note-offs heard, every channel

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

    def ioi_errors(self) -> list[float]:
        return [e for r in self.measured for e in r.rhythm.ioi_errors_ms]

    def drifts(self) -> list[float]:
        return [r.rhythm.drift_ms for r in self.measured if r.rhythm.drift_ms is not None]

    @property
    def grid_spread_ratio(self) -> float | None:
        return spread_ratio(self.onset_errors(), self.grid.step_s * 1000.0)

    @property
    def grid_answer_spread_ratio(self) -> float | None:
        errors = [r.errors_ms for r in self.measured]
        jitter = note_jitter_ms(self.ioi_errors())
        return answer_spread_ratio(errors, jitter, self.grid.step_s * 1000.0)

    @property
    def grid_meaningful(self) -> bool | None:
        return grid_explains(self.grid_spread_ratio, self.grid_answer_spread_ratio)

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
            "turns_flagged": sum(1 for r in measured if r.flags),
            "anomalies": _count_flags(measured),
            "grid": self.grid_mode,
            "grid_offset_ms": _r(self.grid_offset_ms),
            "grid_spread_ratio": _r(self.grid_spread_ratio, 3),
            "grid_answer_spread_ratio": _r(self.grid_answer_spread_ratio, 3),
            "grid_meaningful": self.grid_meaningful,
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
        if not offset:  # nothing subtracted: the net figures would repeat the gross ones
            out |= {k: None for k in out if "_net_ms_" in k}
        ioi = self.ioi_errors()
        ioi_ratio = spread_ratio(ioi, self.grid.step_s * 1000.0)
        out |= Stats.of(np.abs(ioi)).figures("ioi_error_ms")
        out["ioi_spread_ratio"] = _r(ioi_ratio, 3)
        out["rhythm_inferred"] = explains(ioi_ratio)
        drifts = self.drifts()
        out |= Stats.of(np.abs(drifts)).figures("answer_drift_ms")
        out["answer_drift_ms_mean"] = _r(Stats.of(drifts).mean)
        if out["grid_meaningful"] is False:
            out["grid_figures_unreliable"] = _set_aside(out, GRID_FIGURES)
        if out["rhythm_inferred"] is False:
            out["rhythm_figures_unreliable"] = _set_aside(out, RHYTHM_FIGURES)
        out |= self.wire_figures()
        out["notes_past_window"] = sum(r.past_window for r in measured)
        return out

    def wire_figures(self) -> dict[str, Any]:
        """What arrived, what did not, and what should not have been sent."""
        p = self.pairing
        lost_ons, lost_offs = len(p.lost_note_ons), p.lost_note_offs
        lost = lost_ons + lost_offs
        heard = self.note_messages
        return {
            "notes_received": len(p.notes),
            "answer_notes": self.heard_notes - self.stray_notes,
            "stray_notes": self.stray_notes,
            "stuck_notes": self.stuck_notes,
            "notes_closed_by_cc": sum(1 for n in p.notes if n.closed_by == "cc"),
            "lost_note_ons": lost_ons,
            "lost_note_offs": lost_offs,
            "lost_notes": lost,
            "messages_lost": lost,
            "message_loss_rate": _r(lost / (heard + lost), 5) if heard + lost else None,
            "orphan_note_offs": p.orphan_offs,
            "retriggered_notes": sum(1 for n in p.notes if n.closed_by == "retrigger"),
            "overlapping_notes": p.overlaps,
            "repeated_note_ons": len(p.repeated_note_ons),
            "repeated_note_offs": len(p.repeated_note_offs),
            "note_off_sweeps": len(p.sweeps),
            "sweep_note_offs": len(p.sweep_offs),
            "redundant_note_offs": p.redundant_offs,
            "system_resets": len(p.system_resets),
            "malformed_packets": self.malformed_packets,
        }

    def histograms(self) -> dict[str, dict[str, list[float] | list[int]]]:
        return {
            "onset_error_ms": Histogram.of(self.onset_errors()).as_dict(),
            "answer_start_error_ms": Histogram.of(self.start_errors()).as_dict(),
            "answer_start_latency_ms": Histogram.of(self.latencies()).as_dict(),
            "ioi_error_ms": Histogram.of(self.ioi_errors()).as_dict(),
            "answer_drift_ms": Histogram.of(self.drifts()).as_dict(),
        }


def _count_flags(results: Sequence[TurnResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        for flag in result.flags:
            counts[flag] = counts.get(flag, 0) + 1
    return counts


def _set_aside(out: dict[str, Any], prefixes: Sequence[str]) -> dict[str, Any]:
    """Null the figures under ``prefixes`` in ``out``; their values, kept aside."""
    aside = {}
    for key in list(out):
        if any(key.startswith(prefix + "_") for prefix in prefixes) and out[key] is not None:
            aside[key], out[key] = out[key], None
    return aside


def analyse(
    received: Sequence[Event],
    turns: Sequence[Turn],
    grid: Grid,
    *,
    follows_clock: bool,
    channels: frozenset[int] | None = None,
    transport_offset_ms: float = 0.0,
    malformed: Sequence[float] = (),
    xruns: Sequence[float] = (),
) -> Analysis:
    """Pair, assign and measure what the agent played.

    ``grid`` is the harness's grid for this agent; unless the agent ``follows_clock``,
    its phase is fitted to the measured answers first. ``channels`` (0-based) are the
    agent's answer channels; None: every channel but 10 (clicks). ``malformed`` and
    ``xruns``: when the listener got packets that were no MIDI, and when JACK ran late.
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
        flags = turn_flags(turn, notes, pairing, past_window=past, malformed=malformed)
        rhythm = answer_rhythm([n.on for n in notes], grid.step_s)
        late = sum(1 for t in xruns if turn.call_end - turn.early_s <= t < turn.window_end)
        results.append(TurnResult(turn, notes, errors, past, call_end, flags, late, rhythm))
    note_messages = sum(
        1 for e in received if len(e.data) >= 3 and e.data[0] & 0xF0 in (NOTE_ON, NOTE_OFF)
    )
    return Analysis(
        grid=fitted,
        grid_mode=mode,
        grid_offset_ms=offset * 1000.0,
        turns=results,
        pairing=pairing,
        heard_notes=len(answers),
        stray_notes=len(stray),
        transport_offset_ms=transport_offset_ms,
        malformed_packets=len(malformed),
        note_messages=note_messages,
    )


def answer_state(
    events: Sequence[Event], channels: frozenset[int] | None = None
) -> tuple[bool, float | None]:
    """Whether an answer has begun in ``events`` (those since the call ended), and since
    when it is silent: the last note-on or note-off, None while a note sounds."""
    notes = [n for n in pair_notes(events).notes if _is_answer(n, channels)]
    if not notes:
        return False, None
    if any(n.off is None for n in notes):
        return True, None
    return True, max(max(n.on for n in notes), max(n.off or n.on for n in notes))


def reported_loss(sent: int | None, heard: int) -> int | None:
    """What the agent reports having sent that never arrived (None: not reported)."""
    if sent is None:
        return None
    return max(0, sent - heard)


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


def cpu_figures(samples: Sequence[tuple[float, float]]) -> dict[str, float | None]:
    """CPU samples ``(time, CPU seconds used so far)`` -> percent of one core: the mean
    over the samples and the busiest interval between two (like ``top``: over 100 on
    more than one core)."""
    if len(samples) < 2 or samples[-1][0] <= samples[0][0]:
        return {}
    (t0, c0), (t1, c1) = samples[0], samples[-1]
    steps = [(b - a) / (u - t) for (t, a), (u, b) in itertools.pairwise(samples) if u > t]
    return {
        "cpu_percent": _r(100.0 * (c1 - c0) / (t1 - t0), 2),
        "cpu_percent_max": _r(100.0 * max(steps), 2),
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
    grid_ok = analysis.grid_meaningful is not False
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
    if not grid_ok:  # errors against a grid that explains nothing: no trend to see
        series = {k: v for k, v in series.items() if "error" not in k}
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
    out["onset_error_ms_per_min"] = _r(slope_per_minute(times, errors)) if grid_ok else None
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
