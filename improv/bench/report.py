"""A run's figures: the ``--json`` object, the console table, CSV files and the HTML report.

:func:`summarise` is the one place figures are computed (from
:mod:`improv.bench.measure`); everything else formats its result, so the console, the
JSON and the HTML can never disagree.
"""

from __future__ import annotations

import base64
import bisect
import csv
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from improv.bench.latency import RunData, TargetData
from improv.bench.measure import (
    CLICK_CHANNEL,
    Analysis,
    Event,
    Grid,
    analyse,
    cpu_figures,
    drift_figures,
    memory_figures,
    mqtt_delays,
    reported_loss,
    transport_figures,
)
from improv.bench.rhythm import ANSWER_LIMIT, UNIFORM_LIMIT
from improv.files import atomic_output

SCHEMA_VERSION = 2
REFERENCES = {
    "intimate_latency_ms": 10.0,  # Wessel & Wright (2002)
    "intimate_jitter_ms": 1.0,
    "din_midi_ms_per_byte": 0.32,  # 31 250 baud, 10 bits a byte
    "din_midi_note_on_ms": 0.96,
}
AGENT_KEYS = {  # the agent's --json summary key -> ours
    "notes_out": "notes_out",
    "deadline_misses": "deadline_misses",
    "fallback_notes": "fallback_notes",
    "send_error_ms_p99": "agent_send_error_ms_p99",
}
RATIO_KEYS = (
    "answer_start_latency_ms_p50",
    "answer_start_error_ms_p99",
    "onset_error_ms_p50",
    "onset_error_ms_p99",
    "onset_error_ms_max",
    "jitter_ms_std",
)


@dataclass(slots=True)
class Measured:
    """One configuration: its raw data and, unless it never ran, its analysis."""

    data: TargetData
    analysis: Analysis | None
    figures: dict[str, Any]


def _analyse(run: RunData, target: TargetData, transport_p50: float | None) -> Analysis | None:
    if target.grid is None or not target.turns:
        return None
    # The agent's notes cross one port; following the harness's clock, its grid also
    # came in through one: both delays are in what we measure against our grid.
    offset = 2.0 * (transport_p50 or 0.0) if target.follows_clock else 0.0
    return analyse(
        target.received,
        target.turns,
        target.grid,
        follows_clock=target.follows_clock,
        channels=run.settings.channels,
        transport_offset_ms=offset,
        malformed=[e.t for e in target.malformed],
        xruns=run.xrun_times,
    )


def transport_loss_rate(run: RunData) -> float | None:
    """The share of the calibration's messages the transport itself lost."""
    if not run.transport_sent:
        return None
    return round(max(0, run.transport_sent - len(run.transport)) / run.transport_sent, 5)


def measure_run(run: RunData) -> list[Measured]:
    transport = transport_figures(run.transport)
    p50 = transport.get("latency_ms_p50")
    results = []
    for target in run.targets:
        analysis = _analyse(run, target, float(p50) if isinstance(p50, float) else None)
        figures = _figures(target, analysis, mqtt=run.settings.mqtt is not None)
        figures["transport_loss_rate"] = transport_loss_rate(run)
        results.append(Measured(target, analysis, figures))
    _add_ratios([m.figures for m in results])
    return results


def _figures(target: TargetData, analysis: Analysis | None, *, mqtt: bool) -> dict[str, Any]:
    config = target.config
    out: dict[str, Any] = {"name": config.name, "settings": config.settings()}
    if config.skipped or target.error:
        out["error"] = target.error
    out["aligned_by"] = target.aligned_by
    agent = target.agent_summary or {}
    if analysis is not None:
        out |= analysis.figures()
    else:
        for name in ("answer_start_error_ms_p99", "onset_error_ms_p99", "onset_error_ms_max"):
            out[name] = None
        out["stuck_notes"] = out["lost_notes"] = None
    notes_out = agent.get("notes_out")
    out["lost_notes_reported"] = (
        reported_loss(int(notes_out), analysis.heard_notes)
        if analysis is not None and isinstance(notes_out, int)
        else None
    )
    out["messages_lost_reported"] = _messages_lost(target, agent.get("messages_sent"))
    for theirs, ours in AGENT_KEYS.items():
        out[ours] = agent.get(theirs)
    out["harness_send_error_ms_p99"] = _round(target.send_error_ms_p99)
    out["clock_ticks_in"] = target.clock_ticks_in
    measured_from = min((t.call_start for t in target.turns if not t.warmup), default=0.0)
    out |= memory_figures([sample for sample in target.rss if sample[0] >= measured_from])
    out |= cpu_figures([sample for sample in target.cpu if sample[0] >= measured_from])
    if analysis is not None:
        out["drift"] = drift_figures(analysis)
        if mqtt:
            out["mqtt"] = mqtt_delays(target.mqtt, analysis)
        out["histograms"] = analysis.histograms()
    out["agent"] = target.agent_summary
    out["agent_command"] = target.agent_command
    out["agent_warnings"] = target.agent_warnings
    return out


def _messages_lost(target: TargetData, sent: Any) -> int | None:
    """Messages the agent says its scheduler sent (improv's ``messages_sent``: notes,
    clicks, clock) that never arrived; controllers, sent outside it, are left out."""
    if not isinstance(sent, int) or not target.turns:
        return None
    received = sum(1 for e in target.received if not 0xB0 <= e.data[0] <= 0xBF)
    return reported_loss(sent, received + target.clock_ticks_in)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _add_ratios(entries: list[dict[str, Any]]) -> None:
    """Each configuration's figures as a ratio of the first measured configuration's."""
    base = next((e for e in entries if e.get("turns_measured")), None)
    for entry in entries:
        ratios: dict[str, float | None] = {}
        for key in RATIO_KEYS:
            a, b = entry.get(key), base.get(key) if base else None
            if isinstance(a, int | float) and isinstance(b, int | float) and b > 0:
                ratios[key] = round(a / b, 3)
            else:
                ratios[key] = None
        entry["ratios"] = ratios


def summarise(run: RunData, measured: Sequence[Measured] | None = None) -> dict[str, Any]:
    """The ``--json`` object."""
    s = run.settings
    measured = list(measured) if measured is not None else measure_run(run)
    transport: dict[str, Any] = {"method": "loopback", **transport_figures(run.transport)}
    transport["lost"] = max(0, run.transport_sent - len(run.transport))
    transport["loss_rate"] = transport_loss_rate(run)
    transport["xruns"] = run.xruns
    if run.jack_period is not None:
        transport |= {
            "period_frames": run.jack_period.frames,
            "sample_rate": run.jack_period.rate,
            "period_ms": round(run.jack_period.ms, 4),
        }
    return {
        "version": SCHEMA_VERSION,
        "midi_api": s.api,
        "target": "spawn" if s.spawn else "external",
        "turns": s.turns,
        "warmup_turns": s.warmup,
        "minutes": s.minutes,
        "block": s.block,
        "count_in_wait_s": s.count_in_wait_s,
        "pid": s.pid,
        "calls": s.plan.as_dict() if s.plan is not None else None,
        "seconds": round(run.ended - run.started, 2),
        "transport": transport,
        "mqtt_error": run.mqtt_error,
        "references": REFERENCES,
        "configurations": [m.figures for m in measured],
    }


# --- console ------------------------------------------------------------------------

ROWS: tuple[tuple[str, str], ...] = (
    ("turns measured", "turns_measured"),
    ("turns answered", "turns_answered"),
    ("turns flagged (anomalies)", "turns_flagged"),
    ("bar lines aligned by", "aligned_by"),
    ("grid", "grid"),
    ("grid meaningful", "grid_meaningful"),
    ("grid spread (1 = uniform noise)", "grid_spread_ratio"),
    ("answer phase spread (1 = jitter)", "grid_answer_spread_ratio"),
    ("answer start latency p50", "answer_start_latency_ms_p50"),
    ("answer start latency p99", "answer_start_latency_ms_p99"),
    ("answer start error p50", "answer_start_error_ms_p50"),
    ("answer start error p99", "answer_start_error_ms_p99"),
    ("answer start error max", "answer_start_error_ms_max"),
    ("onset error p50", "onset_error_ms_p50"),
    ("onset error p95", "onset_error_ms_p95"),
    ("onset error p99", "onset_error_ms_p99"),
    ("onset error max", "onset_error_ms_max"),
    ("onset error p99, net of transport", "onset_error_net_ms_p99"),
    ("jitter (std)", "jitter_ms_std"),
    ("jitter (p99 - p50)", "jitter_ms_p99_p50"),
    ("inter-onset error p50", "ioi_error_ms_p50"),
    ("inter-onset error p99", "ioi_error_ms_p99"),
    ("drift within an answer p50", "answer_drift_ms_p50"),
    ("drift within an answer max", "answer_drift_ms_max"),
    ("drift within an answer mean (signed)", "answer_drift_ms_mean"),
    ("notes heard", "answer_notes"),
    ("stuck notes", "stuck_notes"),
    ("lost notes (wire)", "lost_notes"),
    ("lost note-ons / note-offs", "lost_note_ons"),
    ("message loss rate, agent", "message_loss_rate"),
    ("message loss rate, transport", "transport_loss_rate"),
    ("lost notes, vs the agent's count", "lost_notes_reported"),
    ("messages lost, vs the agent's count", "messages_lost_reported"),
    ("repeated note-ons", "repeated_note_ons"),
    ("note-off sweeps", "note_off_sweeps"),
    ("system resets (0xFF)", "system_resets"),
    ("malformed packets", "malformed_packets"),
    ("deadline misses", "deadline_misses"),
    ("fallback notes", "fallback_notes"),
    ("agent send error p99", "agent_send_error_ms_p99"),
    ("harness send error p99", "harness_send_error_ms_p99"),
    ("agent CPU % (mean / max)", "cpu_percent"),
    ("agent RSS end (MB)", "rss_mb_end"),
    ("agent RSS max (MB)", "rss_mb_max"),
    ("agent RSS slope (MB/min)", "rss_mb_per_min"),
)
PAIRED = {"lost_note_ons": "lost_note_offs", "cpu_percent": "cpu_percent_max"}
"""Rows that show two figures: ``first / second``."""
MQTT_ROWS = (
    ("MQTT beat delay p50", "mqtt_beat_delay_ms_p50"),
    ("MQTT beat delay p99", "mqtt_beat_delay_ms_p99"),
    ("MQTT answer delay p50", "mqtt_answer_delay_ms_p50"),
    ("MQTT answer delay p99", "mqtt_answer_delay_ms_p99"),
    ("MQTT call delay p99", "mqtt_call_delay_ms_p99"),
)
BLOCKS = " ▁▂▃▄▅▆▇█"


def sparkline(counts: Sequence[int]) -> str:
    top = max(counts, default=0)
    if top <= 0:
        return ""
    return "".join(BLOCKS[math.ceil(c / top * (len(BLOCKS) - 1))] for c in counts)


def _cell(value: Any, unit: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}{unit}" if abs(value) < 100 else f"{value:.1f}{unit}"
    return str(value)


def _value(entry: dict[str, Any], key: str) -> Any:
    if key.startswith("mqtt_"):
        return (entry.get("mqtt") or {}).get(key)
    return entry.get(key)


def _text(entry: dict[str, Any], key: str) -> str:
    text = _cell(_value(entry, key), "")
    if key in PAIRED:
        text += " / " + _cell(entry.get(PAIRED[key]), "")
    return text


def _rows(entries: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """The rows to show: a row that no configuration has a figure for is left out."""
    rows = list(ROWS)
    if any(e.get("mqtt") for e in entries):
        rows += MQTT_ROWS
    return [(label, key) for label, key in rows if any(_value(e, key) is not None for e in entries)]


def notes_for(entry: dict[str, Any]) -> list[str]:
    """What a reader of the table must know about a configuration's figures."""
    notes = []
    if entry.get("error"):
        notes.append(str(entry["error"]))
    if entry.get("grid_meaningful") is False:
        notes_ratio, answers_ratio = entry["grid_spread_ratio"], entry["grid_answer_spread_ratio"]
        why = []
        if notes_ratio > UNIFORM_LIMIT:
            why.append(f"onsets spread {notes_ratio:.2f} of uniform noise")
        if answers_ratio > ANSWER_LIMIT:
            why.append(f"each answer at a phase of its own ({answers_ratio:.1f} x its jitter)")
        notes.append(
            f"the grid explains nothing ({'; '.join(why)}): grid figures left out (JSON: "
            "grid_figures_unreliable); see the inter-onset error and drift instead"
        )
    if entry.get("rhythm_inferred") is False:
        notes.append(
            f"no rhythm on the tempo's steps could be inferred (inter-onset spread "
            f"{entry['ioi_spread_ratio']:.2f} of uniform); inter-onset and drift figures left out"
        )
    anomalies = entry.get("anomalies") or {}
    if anomalies:
        listed = ", ".join(f"{flag} {count}" for flag, count in sorted(anomalies.items()))
        notes.append(f"{entry.get('turns_flagged')} turns flagged: {listed}")
    drifting = (entry.get("drift") or {}).get("drifting")
    if drifting:
        notes.append(f"drifting: {', '.join(drifting)}")
    return notes


def transport_line(summary: dict[str, Any]) -> str:
    t = summary["transport"]
    if not t.get("samples"):
        return "transport: not calibrated"
    period = (
        f", period {t['period_frames']} frames at {t['sample_rate']} Hz = {t['period_ms']:.3f} ms"
        if "period_ms" in t
        else ""
    )
    xruns = f"; {t['xruns']} JACK xruns during the run" if t.get("xruns") is not None else ""
    return (
        f"transport ({summary['midi_api']} loopback{period}): latency p50 "
        f"{t['latency_ms_p50']:.3f} ms, p99 {t['latency_ms_p99']:.3f} ms, "
        f"max {t['latency_ms_max']:.3f} ms ({t['samples']} messages, {t['lost']} lost){xruns}"
    )


def print_summary(summary: dict[str, Any], console: Any) -> None:
    """The figures side by side (ratios to the first configuration in brackets)."""
    from rich.table import Table

    entries = summary["configurations"]
    console.print(transport_line(summary))
    table = Table(title="improv bench latency (ms unless stated)", title_justify="left")
    table.add_column("figure")
    for entry in entries:
        table.add_column(entry["name"], justify="right")
    for label, key in _rows(entries):
        cells = []
        for i, entry in enumerate(entries):
            text = _text(entry, key)
            ratio = entry.get("ratios", {}).get(key)
            if i > 0 and ratio is not None:
                text += f" ({ratio:.2f}x)"
            cells.append(text)
        table.add_row(label, *cells)
    histogram_cells = [
        sparkline((e.get("histograms") or {}).get("onset_error_ms", {}).get("counts", []))
        for e in entries
    ]
    table.add_row("onset error histogram", *histogram_cells)
    console.print(table)
    for entry in entries:
        for note in notes_for(entry):
            console.print(f"[yellow]{entry['name']}[/]: {note}", highlight=False)
    console.print(
        "onset error: |note-on arrival - nearest 1/12-beat grid step|; grid = harness clock "
        "when the agent follows it, else fitted. Net figures subtract 2 x transport p50 "
        "(clock in, notes out) for clock followers. Inter-onset error: each interval "
        "between an answer's onsets less the nearest whole number of steps; drift: how far "
        "an answer slides against that rhythm from its first note. Lost notes: a note-on "
        "or note-off that never came (docs/benchmarks.md).",
        style="dim",
    )


# --- CSV ----------------------------------------------------------------------------

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


# --- HTML ---------------------------------------------------------------------------


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _histograms(measured: Sequence[Measured], name: str, values_of: Any) -> str | None:
    import matplotlib.pyplot as plt

    series = [(m.data.config.name, values_of(m.analysis)) for m in measured if m.analysis]
    series = [(label, v) for label, v in series if v]
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for label, values in series:
        ax.hist(values, bins=30, histtype="step", linewidth=1.5, label=label)
    ax.set_xlabel(f"{name} (ms)")
    ax.set_ylabel("count")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _png(fig)


def _timeline(m: Measured, turns: int = 3) -> str | None:
    """Calls and answers of the first measured turns on the agent's grid: the project's
    one piano roll (:func:`improv.pianoroll.piano_roll`), velocity as shade."""
    from improv.music.notes import Note
    from improv.music.time import Metre
    from improv.pianoroll import piano_roll

    analysis = m.analysis
    if analysis is None:
        return None
    chosen = [r for r in analysis.turns if not r.turn.warmup][:turns] or analysis.turns[:turns]
    if not chosen:
        return None
    grid: Grid = analysis.grid
    per_bar = grid.beats_per_bar
    first_bar = math.floor(grid.beat_at(chosen[0].turn.call_start) / per_bar + 1e-6)

    def note(pitch: int, velocity: int, on: float, off: float) -> Note:
        onset = grid.beat_at(on) - first_bar * per_bar
        return Note(pitch, max(1, min(127, velocity)), onset, max(1e-3, (off - on) / grid.beat_s))

    calls: list[Note] = []
    answers: list[Note] = []
    for result in chosen:
        turn = result.turn
        sent = _sent_notes(m.data.sent, turn.call_start, turn.window_end)
        calls += [note(*played) for played in sent]
        answers += [
            note(n.pitch, n.velocity, n.on, n.off if n.off is not None else turn.window_end)
            for n in result.notes
        ]
    buffer = io.BytesIO()
    piano_roll(
        buffer,
        {"calls (harness)": [n for n in calls if n.onset >= 0], "answers (agent)": answers},
        metre=Metre(round(per_bar), 4),
        title=f"{m.data.config.name}: the first {len(chosen)} turns",
        first_bar=first_bar + 1,
        bars_per_row=8,
    )
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _sent_notes(sent: Sequence[Event], t0: float, t1: float) -> list[tuple[int, int, float, float]]:
    """(pitch, velocity, on, off) of the call notes the harness sent between ``t0`` and
    ``t1``."""
    notes = []
    sounding: dict[tuple[int, int], tuple[float, int]] = {}
    for event in sent:
        data = event.data
        if data[0] >= 0xF0 or not t0 <= event.t <= t1:
            continue
        key = (data[0] & 0x0F, data[1])
        if data[0] & 0xF0 == 0x90 and data[2] > 0:
            sounding[key] = (event.t, data[2])
        elif key in sounding:
            on, velocity = sounding.pop(key)
            notes.append((data[1], velocity, on, event.t))
    return notes


def _over_time(measured: Sequence[Measured], origin: float) -> str | None:
    import matplotlib.pyplot as plt

    usable = [m for m in measured if m.analysis is not None and m.analysis.onset_errors()]
    if not usable:
        return None
    with_rss = any(m.data.rss for m in usable)
    fig, axes = plt.subplots(2 if with_rss else 1, 1, figsize=(9, 5 if with_rss else 3))
    axes = list(axes) if with_rss else [axes]
    for m in usable:
        assert m.analysis is not None
        times = [(t - origin) / 60.0 for t in m.analysis.onset_times()]
        axes[0].plot(times, m.analysis.onset_errors(), ".", ms=3, label=m.data.config.name)
        if with_rss and m.data.rss:
            axes[1].plot(
                [(t - origin) / 60.0 for t, _ in m.data.rss],
                [b / 2**20 for _, b in m.data.rss],
                label=m.data.config.name,
            )
    axes[0].set_ylabel("onset error (ms)")
    axes[0].legend(fontsize=7)
    axes[0].grid(alpha=0.3)
    if with_rss:
        axes[1].set_ylabel("agent RSS (MB)")
        axes[1].grid(alpha=0.3)
    axes[-1].set_xlabel("minutes into the run")
    return _png(fig)


def write_html(
    path: Path, run: RunData, measured: Sequence[Measured], summary: dict[str, Any]
) -> Path:
    """A self-contained report: the table, histograms, timelines, drift."""
    import matplotlib

    matplotlib.use("Agg")
    entries = summary["configurations"]
    head = "".join(f"<th>{html.escape(e['name'])}</th>" for e in entries)
    body = "".join(
        f"<tr><td>{html.escape(label)}</td>"
        + "".join(f"<td>{html.escape(_text(e, key))}</td>" for e in entries)
        + "</tr>"
        for label, key in _rows(entries)
    )
    images: list[tuple[str, str | None]] = [
        ("Onset error", _histograms(measured, "onset error", lambda a: a.onset_errors())),
        (
            "Answer start error",
            _histograms(measured, "answer start error", lambda a: a.start_errors()),
        ),
        (
            "Answer start latency",
            _histograms(measured, "answer start latency", lambda a: a.latencies()),
        ),
        (
            "Inter-onset error (grid-free)",
            _histograms(measured, "inter-onset error", lambda a: a.ioi_errors()),
        ),
        ("Drift within an answer", _histograms(measured, "drift", lambda a: a.drifts())),
    ]
    images += [(f"Timeline: {m.data.config.name}", _timeline(m)) for m in measured]
    images.append(("Onset error and memory over time", _over_time(measured, run.started)))
    figures = "".join(
        f"<h2>{html.escape(title)}</h2><img src='data:image/png;base64,{png}'/>"
        for title, png in images
        if png
    )
    notes = "".join(
        f"<p><b>{html.escape(e['name'])}</b>: {html.escape(note)}</p>"
        for e in entries
        for note in notes_for(e)
    )
    text = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>improv bench latency</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
td:first-child{{text-align:left}}img{{max-width:100%}}</style></head><body>
<h1>improv bench latency</h1>
<p>{html.escape(transport_line(summary))}</p>
<p>MIDI API {html.escape(summary["midi_api"])}, target {html.escape(summary["target"])},
{summary["seconds"]} s. References: 10 ms latency and 1 ms jitter for intimate musical
control (Wessel &amp; Wright, 2002); 0.32 ms per byte on a DIN MIDI wire (0.96 ms for a
note-on). Onset error is a note-on's distance from the nearest 1/12-beat step of the
agent's grid (the harness's clock when the agent follows it, else fitted); net figures
subtract the transport's median latency once per port crossing.</p>
<table><tr><th>figure (ms)</th>{head}</tr>{body}</table>{notes}
{figures}
</body></html>
"""
    with atomic_output(path, "--html") as tmp:
        tmp.write_text(text)
    return path
