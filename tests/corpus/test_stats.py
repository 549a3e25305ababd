"""``improv corpus stats`` and ``improv corpus generate`` at the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from improv.cli import main
from improv.corpus.folder import read_folder
from improv.corpus.stats import corpus_stats
from tests.fixtures.data import GENERATED_SOLOS, midi_file, save

KEYS = {"files", "skipped", "solos", "notes", "phrases", "pairs", "chord_symbols", "tokens"}


def test_stats_json_has_the_promised_keys(
    generated_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["corpus", "stats", "--data", str(generated_corpus), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= KEYS
    assert report["files"] == report["solos"] == GENERATED_SOLOS
    assert report["skipped"] == []
    solos = read_folder(generated_corpus).solos
    assert report["notes"] == sum(len(s.notes) for s in solos)
    assert 0 < report["pairs"] < report["phrases"] < report["notes"] < report["tokens"]
    assert report["chord_symbols"] == len({c.symbol for s in solos for c in s.chords})
    assert 0.0 < report["blues_note_share"] < 1.0
    assert [f["solos"] for f in report["folders"]] == [GENERATED_SOLOS]


def test_stats_reports_skipped_files_per_folder(
    generated_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save(midi_file([(0.0, 1.0, 60, 90)], [(0.0, "C7")]), tmp_path / "ok.mid")
    (tmp_path / "bad.mid").write_bytes(b"\x00" * 30)
    argv = ["corpus", "stats", "--data", str(generated_corpus), "--data", str(tmp_path)]
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["solos"] == GENERATED_SOLOS + 1
    assert report["files"] == GENERATED_SOLOS + 2
    assert [Path(s["file"]).name for s in report["skipped"]] == ["bad.mid"]
    assert [len(f["skipped"]) for f in report["folders"]] == [0, 1]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "call/response pairs" in table and "bad.mid" in table


def test_plain_midi_with_key_and_form(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notes = [(float(beat), 0.5, 65 + beat % 5, 90) for beat in range(48)]
    save(midi_file(notes, metre=None), tmp_path / "plain.mid")
    argv = ["corpus", "stats", "--data", str(tmp_path), "--key", "F", "--form", "jazz-blues"]
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["blues_note_share"] == 1.0
    assert report["chord_symbols"] > 3
    assert main(["corpus", "stats", "--data", str(tmp_path), "--form", "polka"]) == 2


def test_generate_writes_a_readable_corpus(tmp_path: Path) -> None:
    assert main(["corpus", "generate", "--out", str(tmp_path), "--solos", "3", "--seed", "2"]) == 0
    assert (tmp_path / "solos.csv").is_file()
    stats = corpus_stats(read_folder(tmp_path))
    assert (stats.solos, stats.skipped) == (3, [])
    assert main(["corpus", "generate", "--out", str(tmp_path), "--solos", "0"]) == 2
