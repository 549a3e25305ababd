"""The real WJazzD folder, when it is here: every file read, every note counted."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from improv.cli import main
from improv.corpus.folder import read_folder

pytestmark = pytest.mark.wjazzd


def test_wjazzd_reads_440_solos_and_195363_notes(wjazzd: Path) -> None:
    start = time.perf_counter()
    result = read_folder(wjazzd)
    elapsed = time.perf_counter() - start
    assert result.skipped == []
    assert len(result.solos) == 440
    assert sum(len(s.notes) for s in result.solos) == 195_363
    assert sum(s.blues for s in result.solos) == 81
    assert len({c.symbol for s in result.solos for c in s.chords}) == 416
    assert all(s.title and s.performer and s.first_bar == 1 for s in result.solos)
    assert elapsed < 60  # seconds, not minutes (about 2 s on one core)


def test_wjazzd_stats_command(wjazzd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["corpus", "stats", "--data", str(wjazzd), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["solos"], report["notes"], report["skipped"]) == (440, 195_363, [])
