"""The run as one HTML page: histograms, timelines, figures over time."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from improv.bench.latency import RunData
from improv.bench.measure import (
    Event,
    Grid,
)
from improv.bench.report.console import _rows, _text, notes_for, transport_line
from improv.bench.report.summary import Measured
from improv.files import atomic_output


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
