"""The figures of a run, computed in one place: the ``--json`` object."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from improv.bench.latency import RunData, TargetData
from improv.bench.measure import (
    Analysis,
    analyse,
    cpu_figures,
    drift_figures,
    memory_figures,
    mqtt_delays,
    reported_loss,
    transport_figures,
)

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
