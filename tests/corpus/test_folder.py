"""Reading folders: skipped files are named, an empty folder is a usage error (exit 2)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from improv.cli import main
from improv.corpus.folder import read_folder
from improv.errors import UsageError
from tests.fixtures.data import GENERATED_SOLOS, midi_file, save


def test_generated_corpus_reads_completely(generated_corpus: Path) -> None:
    result = read_folder(generated_corpus)
    assert len(result.files) == GENERATED_SOLOS
    assert result.skipped == []
    assert len(result.solos) == GENERATED_SOLOS
    assert all(s.title and s.performer and s.chords and s.notes for s in result.solos)
    assert {s.blues for s in result.solos} == {True, False}


def test_corrupt_file_is_skipped_with_a_warning_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    save(midi_file([(0.0, 1.0, 60, 90)], [(0.0, "C7")]), tmp_path / "good.mid")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "garbage.midi").write_bytes(b"MThd\x00\x00\x00\x06\x00")
    (tmp_path / "notes.txt").write_text("not MIDI, not looked at")
    with caplog.at_level(logging.WARNING):
        result = read_folder(tmp_path)
    assert len(result.solos) == 1
    assert [path.name for path, _ in result.skipped] == ["garbage.midi"]
    assert "garbage.midi" in caplog.text


def test_file_without_notes_is_skipped(tmp_path: Path) -> None:
    save(midi_file([], [(0.0, "C7")]), tmp_path / "empty.mid")
    save(midi_file([(0.0, 1.0, 60, 90)]), tmp_path / "one.mid")
    result = read_folder(tmp_path)
    assert [(p.name, reason) for p, reason in result.skipped] == [("empty.mid", "no notes")]


def test_folder_without_midi_files_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(UsageError, match="no MIDI files"):
        read_folder(tmp_path)
    with pytest.raises(UsageError, match="no such folder"):
        read_folder(tmp_path / "missing")


def test_bad_key_or_form_is_a_usage_error(generated_corpus: Path) -> None:
    with pytest.raises(UsageError, match="key"):
        read_folder(generated_corpus, key="H#")
    with pytest.raises(UsageError, match="form"):
        read_folder(generated_corpus, form="polka")


def test_command_line_exits_2_on_an_empty_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["corpus", "stats", "--data", str(tmp_path)]) == 2
    assert "no MIDI files" in " ".join(capsys.readouterr().err.split())
    assert main(["corpus", "stats", "--data", str(tmp_path / "nope")]) == 2
