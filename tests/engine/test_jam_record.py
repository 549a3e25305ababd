"""``improv jam --record``: written as the jam goes, so a kill keeps what was played."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

from improv.engine.recording import NoteJournal, journal_path, read_journal
from improv.io.midifile import read_take
from improv.music.notes import Note

ROOT = Path(__file__).resolve().parents[2]


def _wait_for_notes(proc: subprocess.Popen[bytes], record: Path, timeout_s: float) -> int:
    """Read the jam's stderr until its record holds notes; their number."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout_s
    log = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.5)
        if ready:
            chunk = os.read(proc.stderr.fileno(), 65536)
            assert chunk, log.decode()[-2000:]
            log += chunk
        if record.is_file() and (notes := len(read_take(record).notes)) > 0:
            return notes
    raise AssertionError(f"no notes recorded in {timeout_s} s: {log.decode()[-2000:]}")


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
        notes = _wait_for_notes(proc, record, timeout_s=90.0)
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
