"""The run as CSV: one row per turn and one per event."""

from __future__ import annotations

import bisect
import csv
from collections.abc import Sequence
from pathlib import Path

from improv.bench.latency import RunData
from improv.bench.measure import (
    CLICK_CHANNEL,
)
from improv.bench.report.summary import Measured
from improv.files import atomic_output

TURN_COLUMNS = (
    "config",
    "config_index",
    "turn",
    "warmup",
    "call_start_s",
    "call_end_s",
    "slot_s",
    "window_end_s",
    "call_notes",
    "answer_notes",
    "first_onset_s",
    "answer_start_latency_ms",
    "answer_start_error_ms",
    "answer_offset_beats",
    "onset_error_ms_mean",
    "onset_error_ms_max_abs",
    "notes_past_window",
    "ioi_error_ms_max_abs",
    "drift_ms",
    "flags",
    "xruns",
)
EVENT_COLUMNS = (
    "config",
    "direction",
    "t_s",
    "turn",
    "role",
    "kind",
    "channel",
    "data1",
    "data2",
    "bytes",
    "onset_error_ms",
)


def _s(t: float | None, origin: float) -> str:
    return "" if t is None else f"{t - origin:.6f}"


def _f(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def turn_rows(run: RunData, measured: Sequence[Measured]) -> list[dict[str, str]]:
    rows = []
    origin = run.started
    for m in measured:
        if m.analysis is None:
            continue
        grid = m.analysis.grid
        for result in m.analysis.turns:
            turn, first = result.turn, result.first
            offset = None
            if first is not None:
                reference = turn.slot if turn.slot is not None else turn.call_end
                steps = round((first.on - reference) / grid.step_s)
                offset = steps / grid.steps_per_beat  # where the answer began, musically
            errors, ioi = result.errors_ms, result.rhythm.ioi_errors_ms
            rows.append(
                {
                    "config": m.data.config.name,
                    "config_index": str(m.data.config.index),
                    "turn": str(turn.index),
                    "warmup": str(int(turn.warmup)),
                    "call_start_s": _s(turn.call_start, origin),
                    "call_end_s": _s(turn.call_end, origin),
                    "slot_s": _s(turn.slot, origin),
                    "window_end_s": _s(turn.window_end, origin),
                    "call_notes": str(turn.call_notes),
                    "answer_notes": str(len(result.notes)),
                    "first_onset_s": _s(first.on if first else None, origin),
                    "answer_start_latency_ms": _f(result.latency_ms),
                    "answer_start_error_ms": _f(result.start_error_ms),
                    "answer_offset_beats": _f(offset),
                    "onset_error_ms_mean": _f(sum(errors) / len(errors) if errors else None),
                    "onset_error_ms_max_abs": _f(max(map(abs, errors)) if errors else None),
                    "notes_past_window": str(result.past_window),
                    "ioi_error_ms_max_abs": _f(max(map(abs, ioi)) if ioi else None),
                    "drift_ms": _f(result.rhythm.drift_ms),
                    "flags": " ".join(result.flags),
                    "xruns": str(result.xruns),
                }
            )
    return rows


def _kind(data: bytes) -> str:
    status = data[0]
    if status >= 0xF0:
        return {0xFA: "start", 0xFB: "continue", 0xFC: "stop", 0xF2: "song_position"}.get(
            status, f"system_{status:02x}"
        )
    kind = status & 0xF0
    if kind == 0x90 and len(data) > 2 and data[2] > 0:
        return "note_on"
    if kind in (0x80, 0x90):
        return "note_off"
    return {0xB0: "control_change", 0xC0: "program_change", 0xE0: "pitch_bend"}.get(
        kind, f"channel_{kind:02x}"
    )


def event_rows(run: RunData, measured: Sequence[Measured]) -> list[dict[str, str]]:
    """Every message either way, with its turn and role (call, clock, answer, click, stray)."""
    rows = [row for m in measured for row in _target_events(m, run.started)]
    rows.sort(key=lambda r: (r["config"], float(r["t_s"])))
    return rows


def _target_events(m: Measured, origin: float) -> list[dict[str, str]]:
    turns = sorted(m.data.turns, key=lambda t: t.call_start)
    starts = [t.call_start for t in turns]
    answers: dict[tuple[float, int, int], tuple[int, float]] = {}
    if m.analysis is not None:
        for result in m.analysis.turns:
            for note, error in zip(result.notes, result.errors_ms, strict=True):
                answers[(note.on, note.channel, note.pitch)] = (result.turn.index, error)
    rows = []
    got = m.data
    streams = (("sent", got.sent), ("received", got.received), ("malformed", got.malformed))
    for stream, events in streams:
        direction = "sent" if stream == "sent" else "received"
        for event in events:
            data = event.data
            bad = stream == "malformed"  # a whole packet that held bytes which are no MIDI
            kind = "malformed" if bad else _kind(data)
            channel = data[0] & 0x0F if 0x80 <= data[0] < 0xF0 and not bad else None
            i = bisect.bisect_right(starts, event.t) - 1
            turn, role, error_text = (str(turns[i].index) if i >= 0 else ""), "", ""
            if bad:
                role = "malformed"
            elif direction == "sent":
                role = "call" if channel is not None else "clock"
            elif channel == CLICK_CHANNEL:
                role = "click"
            elif kind == "note_on":
                found = answers.get((event.t, data[0] & 0x0F, data[1]))
                role = "answer" if found else "stray"
                if found:
                    turn, error_text = str(found[0]), _f(found[1])
            rows.append(
                {
                    "config": m.data.config.name,
                    "direction": direction,
                    "t_s": _s(event.t, origin),
                    "turn": turn,
                    "role": role,
                    "kind": kind,
                    "channel": "" if channel is None else str(channel + 1),
                    "data1": str(data[1]) if len(data) > 1 else "",
                    "data2": str(data[2]) if len(data) > 2 else "",
                    "bytes": data.hex(" "),
                    "onset_error_ms": error_text,
                }
            )
    return rows


def events_path(path: Path) -> Path:
    """Where the raw-events CSV goes next to the per-turn CSV."""
    return path.with_name(path.stem + ".events.csv")


def write_csv(path: Path, run: RunData, measured: Sequence[Measured]) -> tuple[Path, Path]:
    """Per-turn rows at ``path``, raw events next to it (:func:`events_path`)."""
    with atomic_output(path, "--csv") as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, TURN_COLUMNS)
        writer.writeheader()
        writer.writerows(turn_rows(run, measured))
    events = events_path(path)
    with atomic_output(events, "--csv") as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, EVENT_COLUMNS)
        writer.writeheader()
        writer.writerows(event_rows(run, measured))
    return path, events
