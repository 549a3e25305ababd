"""``improv jam --demo``: the embedded default runs, records the jam and reports figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from improv.cli import main
from improv.io.midi.files import read_take

KEYS = {
    "turns",
    "notes_in",
    "notes_out",
    "deadline_misses",
    "fallback_notes",
    "send_error_ms_p50",
    "send_error_ms_p99",
    "send_error_ms_max",
    "answer_start_error_ms_p99",
    "generation_headroom_ms_min",
    "candidates",
    "candidates_min",
    "candidates_p50",
    "critic_total",
    "transform",
}


def test_demo_plays_records_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = tmp_path / "jam.mid"
    code = main(
        [
            *("jam", "--demo", "--form", "8-bar", "--tempo", "300", "--bars", "2"),
            *("--choruses", "1", "--count-in", "0", "--model", "rules", "--seed", "1"),
            *("--record", str(record), "--json"),
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(summary) >= KEYS
    assert summary["turns"] == 2 and summary["notes_out"] > 0 and summary["notes_in"] > 0
    assert summary["deadline_misses"] == 0 and summary["stopped_by"] == "choruses"
    take = read_take(record)
    assert summary["band_notes"] > 0  # the demo plays with the band
    assert len(take.notes) == summary["notes_in"] + summary["notes_out"] + summary["band_notes"]
    assert take.markers and take.markers[0][1]  # the chords, as markers
    assert take.bpm == pytest.approx(300.0)
    assert (tmp_path / "jam.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # its piano roll


def test_needs_ports_or_a_performer() -> None:
    assert main(["jam", "--tempo", "120"]) == 2
    assert main(["jam", "--demo", "--bars", "2", "--tempo", "9999"]) == 2


def test_cuda_without_a_gpu_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert main(["jam", "--demo", "--device", "cuda", "--choruses", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: device cuda: torch sees no CUDA device (torch.cuda.is_available())"]
    assert main(["jam", "--demo", "--candidates", "0", "--choruses", "1"]) == 2
