"""The run's figures as a console table, with notes on what is left out and why."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from improv.bench.rhythm import ANSWER_LIMIT, UNIFORM_LIMIT

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
