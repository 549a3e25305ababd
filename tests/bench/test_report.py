"""Reports from a synthetic run: the JSON keys, ratios, CSV files and the HTML."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from improv.bench import report
from improv.bench.latency import RunData, Settings, TargetData
from improv.bench.matrix import Base, expand, parse_matrix
from improv.bench.measure import Event, Grid, Turn

BEAT = 0.25  # 240 BPM
REQUIRED = (
    "answer_start_error_ms_p99",
    "onset_error_ms_p99",
    "onset_error_ms_max",
    "stuck_notes",
    "lost_notes",
    "deadline_misses",
)


def _target(config: object, error_ms: float, notes_out: int) -> TargetData:
    grid = Grid(10.0, BEAT)
    data = TargetData(config, grid=grid, follows_clock=True, aligned_by="clock")  # type: ignore[arg-type]
    for i in range(5):
        start = grid.time_at(i * 16)
        slot = start + 2 * grid.bar_s
        data.turns.append(Turn(i, start, slot, slot + 2 * grid.bar_s, slot, i == 0, 3))
        for k in range(3):
            t = grid.time_at(i * 16 + k)
            data.sent += [
                Event(t, bytes((0x90, 60 + k, 90))),
                Event(t + 0.1, bytes((0x80, 60 + k, 0))),
            ]
            a = slot + k * BEAT + error_ms / 1000.0 * (1 + k % 2)
            data.received += [
                Event(a, bytes((0x90, 60 + k, 90))),
                Event(a + 0.1, bytes((0x80, 60 + k, 0))),
            ]
    data.agent_summary = {
        "notes_out": notes_out,
        "messages_sent": 2 * notes_out,
        "deadline_misses": 0,
        "fallback_notes": 0,
    }
    data.rss = [(10.0 + i, (100 + i) * 2**20) for i in range(20)]
    return data


@pytest.fixture
def run() -> RunData:
    configs = expand(Base(240.0, "trade", 2), parse_matrix(["model=rules,markov"]), spawn=True)
    settings = Settings(api="jack", configs=configs, spawn=True, turns=4)
    data = RunData(settings, started=9.0, ended=40.0)
    data.transport = [(float(i), i + 0.0005) for i in range(50)]
    data.transport_sent = 50
    data.targets = [_target(configs[0], 1.0, 15), _target(configs[1], 2.0, 17)]
    return data


def test_json_holds_every_configuration_with_the_required_keys(run: RunData) -> None:
    summary = report.summarise(run)
    json.dumps(summary)  # serialisable
    assert summary["transport"]["samples"] == 50
    assert summary["transport"]["lost"] == 0
    first, second = summary["configurations"]
    for entry in (first, second):
        for key in REQUIRED:
            assert key in entry
        assert entry["turns_measured"] == 4
        assert entry["settings"]["mode"] == "trade"
    assert first["settings"]["model"] == "rules" and second["settings"]["model"] == "markov"
    assert first["onset_error_ms_max"] == pytest.approx(2.0, abs=1e-3)
    assert second["onset_error_ms_max"] == pytest.approx(4.0, abs=1e-3)
    assert second["ratios"]["onset_error_ms_max"] == pytest.approx(2.0, abs=1e-3)
    assert first["ratios"]["onset_error_ms_max"] == pytest.approx(1.0)
    assert first["lost_notes_reported"] == 0 and second["lost_notes_reported"] == 2
    assert first["messages_lost_reported"] == 0 and second["messages_lost_reported"] == 4
    assert first["lost_notes"] == 0 and first["message_loss_rate"] == 0.0
    assert first["transport_loss_rate"] == 0.0
    assert first["stuck_notes"] == 0 and first["deadline_misses"] == 0
    assert first["onset_error_net_ms_max"] == pytest.approx(2.0 - 1.0, abs=1e-3)  # 2 x 0.5 ms
    assert first["rss_mb_end"] == pytest.approx(119.0)


def test_console_table(run: RunData) -> None:
    buffer = io.StringIO()
    report.print_summary(report.summarise(run), Console(file=buffer, width=200))
    text = buffer.getvalue()
    assert "model=markov" in text and "onset error p99" in text and "(2.00x)" in text
    assert "latency p50 0.500 ms" in text


def test_csv_and_html(run: RunData, tmp_path: Path) -> None:
    measured = report.measure_run(run)
    turns_csv, events_csv = report.write_csv(tmp_path / "bench.csv", run, measured)
    rows = list(csv.DictReader(turns_csv.open()))
    assert len(rows) == 10
    assert rows[1]["config"] == "model=rules" and rows[1]["warmup"] == "0"
    assert float(rows[1]["answer_start_error_ms"]) == pytest.approx(1.0, abs=1e-3)
    assert float(rows[1]["answer_offset_beats"]) == 0.0
    events = list(csv.DictReader(events_csv.open()))
    assert len(events) == 2 * 5 * 3 * 2 * 2
    roles = {e["role"] for e in events}
    assert roles == {"call", "answer", ""}
    answers = [e for e in events if e["role"] == "answer"]
    assert all(e["onset_error_ms"] for e in answers)
    page = report.write_html(tmp_path / "bench.html", run, measured, report.summarise(run))
    text = page.read_text()
    assert text.count("data:image/png;base64,") >= 5
    assert "Wessel" in text and "model=markov" in text


DOCS = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"


def _keys(value: object, skip: frozenset[str]) -> set[str]:
    """Every key of a JSON object, nested, except under ``skip``."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            found.add(key)
            if key not in skip:
                found |= _keys(inner, skip)
    elif isinstance(value, list):
        for inner in value:
            found |= _keys(inner, skip)
    return found


def test_every_json_key_is_defined_in_the_docs(run: RunData) -> None:
    import re

    from improv.bench.measure import FLAGS

    run.targets[1].received = run.targets[1].received[1:]  # a lost note-on: anomalies
    summary = report.summarise(run)
    keys = _keys(summary, frozenset({"settings", "agent", "histograms", "ratios", "references"}))
    keys |= set(FLAGS)
    text = DOCS.read_text()
    defined = set(re.findall(r"`([a-z0-9_.*]+)`", text))
    patterns = [d[:-1] for d in defined if d.endswith("*")]
    missing = sorted(
        k for k in keys if k not in defined and not any(k.startswith(p) for p in patterns)
    )
    assert missing == [], f"not defined in docs/benchmarks.md: {missing}"


def test_the_summary_leaves_out_what_means_nothing(run: RunData) -> None:
    summary = report.summarise(run)
    entry = summary["configurations"][0]
    entry["grid_meaningful"], entry["grid_spread_ratio"] = False, 0.97
    entry["grid_answer_spread_ratio"] = 25.0
    for key in ("onset_error_ms_p99", "onset_error_net_ms_p99", "onset_error_ms_p50"):
        entry[key] = None
    second = summary["configurations"][1]
    second["onset_error_net_ms_p99"] = None  # nothing subtracted anywhere: no such row
    buffer = io.StringIO()
    report.print_summary(summary, Console(file=buffer, width=250))
    text = buffer.getvalue()
    assert "net of transport" not in text
    assert "turns measured" in text and "bar lines aligned by" in text and "clock" in text
    assert "the grid explains nothing" in text and "0.97 of uniform noise" in text
    assert "25.0 x its jitter" in text
