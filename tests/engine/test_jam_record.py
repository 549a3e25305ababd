"""``improv jam --record``: written as the jam goes, so a kill keeps what was played."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from improv.engine import recording
from improv.engine.recording import NoteJournal, RecordKeeper, journal_path, read_journal
from improv.io.midi.files import read_take
from improv.music.notes import Note
from tests.watching import watch_until

ROOT = Path(__file__).resolve().parents[2]


def _recorded(record: Path) -> int | None:
    notes = len(read_take(record).notes) if record.is_file() else 0
    return notes or None


def test_a_killed_jam_keeps_its_record(tmp_path: Path) -> None:
    record = tmp_path / "jam.mid"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "improv.cli", "jam", "--demo", "--json", "--model", "rules"),
            *("--tempo", "300", "--bars", "2", "--choruses", "50", "--record", str(record)),
        ],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        notes = watch_until(proc, lambda: _recorded(record), 90.0, "notes recorded")
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    take = read_take(record)  # a complete, readable file
    assert len(take.notes) >= notes > 0
    assert take.bpm == 300.0
    journal = list(read_journal(journal_path(record)))  # and the journal beside it
    assert len(journal) >= len(take.notes)


def test_journal_keeps_notes_on_disk_and_skips_a_cut_line(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    journal = NoteJournal(path)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(50_000):
        journal.add("call", [Note(60 + i % 12, 90, i * 0.5, 0.25)])
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 100_000  # bytes: on disk, not in memory (a list of them: about 8 MB)
    journal.flush()
    with path.open("a") as handle:
        handle.write('["answer", 60, 9')  # what a kill mid-write leaves
    assert journal.count("call") == 50_000 and journal.end == 49_999 * 0.5 + 0.25
    notes = list(read_journal(path))
    assert len(notes) == 50_000 and notes[-1] == ("call", Note(67, 90, 24_999.5, 0.25))
    journal.close()


class Drafting:
    """A generator whose answer is being drafted until :meth:`choose`; it tells each
    time it is asked."""

    def __init__(self) -> None:
        self.drafting = True
        self.asked = 0
        self.asked_thrice = threading.Event()

    @property
    def composing(self) -> bool:
        self.asked += 1
        if self.asked >= 3:
            self.asked_thrice.set()
        return self.drafting


async def test_a_rewrite_waits_while_an_answer_is_drafted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rewrite (a thread that holds the GIL in bursts) starts only once the answer
    being drafted is chosen: the model thread keeps the CPU to meet its deadline."""
    monkeypatch.setattr(recording, "RECORD_PERIOD_S", 0.0)
    generator = Drafting()
    agent: Any = type("Agent", (), {"generator": generator, "metre": None})()
    agent.journal = NoteJournal()
    keeper = RecordKeeper(tmp_path / "jam.mid", agent, 120.0, 2)
    written = threading.Event()
    drafting_when_written: list[bool] = []

    def write(*_: object) -> None:
        drafting_when_written.append(generator.drafting)
        written.set()

    monkeypatch.setattr(keeper, "_snapshot", lambda: ((), None, [], {}))
    monkeypatch.setattr(keeper, "_write", write)
    task = asyncio.create_task(keeper.keep())
    try:
        assert await asyncio.to_thread(generator.asked_thrice.wait, 5.0)
        assert not written.is_set()  # asked three times while drafting: no write yet
        generator.drafting = False
        assert await asyncio.to_thread(written.wait, 5.0)
    finally:
        task.cancel()
    assert drafting_when_written[0] is False
