"""``improv bench latency`` end to end on a JACK dummy server: an echo agent, then improv."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from improv.bench.mosquitto import Mosquitto
from improv.cli import main
from tests.bench.echo_agent import EchoAgent

pytestmark = [pytest.mark.jack, pytest.mark.realtime]

KEYS = (
    "answer_start_error_ms_p99",
    "onset_error_ms_p99",
    "onset_error_ms_max",
    "stuck_notes",
    "lost_notes",
    "deadline_misses",
)


def bench(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code = main(["bench", "latency", "--midi-api", "jack", "--json", *args])
    out = capsys.readouterr().out
    assert code == 0, out
    summary: dict[str, Any] = json.loads(out)
    return summary


def test_echo_agent_through_jack(
    jack_server: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with EchoAgent("jack", bars=2, tempo=240.0) as echo:
        summary = bench(
            capsys,
            *("--in", echo.in_port, "--out", echo.out_port, "--send-clock"),
            *("--tempo", "240", "--bars", "2", "--turns", "2", "--warmup", "1"),
            *("--csv", str(tmp_path / "echo.csv")),
        )
    transport = summary["transport"]
    assert transport["samples"] > 150 and transport["period_ms"] == pytest.approx(4 / 3, abs=1e-3)
    (entry,) = summary["configurations"]
    for key in KEYS:
        assert key in entry
    assert entry["aligned_by"] == "clock" and entry["grid"] == "harness-clock"
    assert entry["turns_measured"] == 2 and entry["turns_answered"] == 2
    # The echo answers on the bar line after the call: only the two port crossings
    # and the schedulers stand between its notes and the grid (generous bounds).
    assert 0.0 <= entry["answer_start_latency_ms_p50"] < 25.0
    assert entry["onset_error_ms_p50"] < 25.0
    assert entry["lost_notes_reported"] is None and entry["deadline_misses"] is None  # not reported
    assert isinstance(entry["lost_notes"], int)  # counted from the wire
    assert entry["answer_notes"] >= echo.notes_out - 3  # a few may fall to JACK xruns
    if not transport["xruns"]:
        assert entry["stuck_notes"] == 0 and entry["stray_notes"] == 0
    rows = list(csv.DictReader((tmp_path / "echo.csv").open()))
    assert [r["warmup"] for r in rows] == ["1", "0", "0"]
    events = list(csv.DictReader((tmp_path / "echo.events.csv").open()))
    assert {"call", "answer"} <= {e["role"] for e in events}


def test_spawned_improv_with_rules(
    jack_server: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    try:  # the MQTT figures too, where mosquitto is installed
        broker: Mosquitto | None = request.getfixturevalue("mosquitto")
    except pytest.skip.Exception:
        broker = None
    mqtt = ("--mqtt", broker.url) if broker is not None else ()
    summary = bench(
        capsys,
        *("--spawn", "--tempo", "240", "--bars", "2", "--turns", "2", "--warmup", "1"),
        *mqtt,
        *("--", "--model", "rules"),
    )
    (entry,) = summary["configurations"]
    assert entry.get("error") is None, entry.get("error")
    for key in KEYS:
        assert key in entry
    assert entry["aligned_by"] == "count-in"  # improv's count-in clicks gave its bar lines
    assert entry["turns_answered"] >= 2
    assert isinstance(entry["deadline_misses"], int) and isinstance(entry["lost_notes"], int)
    assert entry["agent"]["notes_out"] > 0 and entry["agent"]["turns"] >= 3
    assert entry["agent_command"][:2] == ["improv", "jam"]
    assert entry["answer_start_error_ms_p99"] is not None  # the figure itself goes to docs
    assert entry["rss_mb_end"] > 10 and entry["cpu_percent"] > 0  # the jam and its sender
    if broker is not None:
        figures = entry["mqtt"]
        assert figures["mqtt_messages"] > 0 and figures["mqtt_beat_delay_ms_p50"] is not None
        assert figures["mqtt_answer_delay_ms_p50"] is not None


SLEEPY = Path(__file__).with_name("sleepy_agent.py")


def test_a_foreign_agent_without_a_clock(
    jack_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A process of its own, no grid, sleeps for timing, bad habits: what the harness
    says about it instead of grid figures."""
    agent = subprocess.Popen(
        [sys.executable, str(SLEEPY), "--timeout", "0.3", "--end-of-track", "--double"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert agent.stdout is not None and agent.stdout.readline().strip() == "ready"
        summary = bench(
            capsys,
            *("--in", "sleepy:in", "--out", "sleepy-out:out", "--pid", str(agent.pid)),
            *("--mode", "phrase", "--tempo", "300", "--bars", "2"),
            *("--turns", "3", "--warmup", "0", "--no-calibrate"),
        )
    finally:
        agent.terminate()
        agent.wait(10)
    (entry,) = summary["configurations"]
    assert entry["aligned_by"] == "none" and entry["turns_answered"] == 3
    assert entry["grid_meaningful"] is False and entry["onset_error_ms_p99"] is None
    assert entry["grid_figures_unreliable"]["onset_error_ms_p99"] > 0
    assert entry["rhythm_inferred"] is True and entry["ioi_error_ms_p50"] < 5.0
    assert entry["answer_drift_ms_max"] is not None
    assert 300.0 < entry["answer_start_latency_ms_p50"] < 600.0  # its silence timeout
    assert entry["system_resets"] >= 3 and entry["malformed_packets"] >= 3
    assert entry["repeated_note_ons"] >= entry["answer_notes"] - 3  # each sent twice
    assert isinstance(entry["lost_notes"], int) and entry["lost_notes_reported"] is None
    assert entry["cpu_percent"] is not None and entry["rss_mb_end"] > 5
