"""What was played, kept on disk as it is played: a long gig costs no memory per note,
and a crash or a kill keeps the jam.

The agent appends each finished note to a journal (one JSON line);
``improv jam --record`` turns the journal into a complete MIDI file every few seconds
and at exit (:func:`improv.io.midifile.write_jam`, atomically), so at most the last
few seconds are missing after a SIGKILL, and the journal beside the file holds even
those. Without ``--record`` the journal only counts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from improv.music.notes import Note

JOURNAL_SUFFIX = ".journal"


def journal_path(record: Path) -> Path:
    """Where the journal of ``record`` lives: beside it (``jam.mid.journal``)."""
    return record.with_name(record.name + JOURNAL_SUFFIX)


class NoteJournal:
    """Notes by role (``call``/``answer``), appended to a file; counted in memory."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.counts: dict[str, int] = {}
        self.end = 0.0  # the latest note end, in beats
        self._file: IO[str] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("w", encoding="utf-8")

    def add(self, role: str, notes: Sequence[Note]) -> None:
        """Append ``notes`` (buffered: :meth:`flush` makes them survive a kill)."""
        if not notes:
            return
        self.counts[role] = self.counts.get(role, 0) + len(notes)
        self.end = max(self.end, max(n.end for n in notes))
        if self._file is None:
            return
        self._file.write(
            "".join(
                json.dumps([role, n.pitch, n.velocity, n.onset, n.duration]) + "\n" for n in notes
            )
        )

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def count(self, role: str) -> int:
        return self.counts.get(role, 0)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_journal(path: Path) -> Iterator[tuple[str, Note]]:
    """The (role, note) pairs of a journal; a line cut short by a kill is left out."""
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                return  # being written (or cut by a kill)
            try:
                role, pitch, velocity, onset, duration = json.loads(line)
                yield str(role), Note(int(pitch), int(velocity), float(onset), float(duration))
            except (ValueError, TypeError):
                continue
