"""What was played, kept on disk as it is played: a long gig costs no memory per note,
and a crash or a kill keeps the jam.

The agent appends each finished note to a journal (one JSON line);
``improv jam --record`` turns the journal into a complete MIDI file every few seconds
and at exit (:func:`improv.io.midi.files.write_jam`, atomically), so at most the last
few seconds are missing after a SIGKILL, and the journal beside the file holds even
those. Without ``--record`` the journal only counts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from improv.errors import ImprovError
from improv.music.notes import Note

log = logging.getLogger(__name__)

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


RECORD_PERIOD_S = 4.0
"""The record is rewritten this often at least: a kill loses at most this much of the
jam (the journal beside it keeps even that)."""

RECORD_WORK_SHARE = 0.1
"""A rewrite costs time in proportion to the jam so far (a long gig's file takes
seconds); the period grows so that rewriting takes at most this share of the time."""

QUIET_WAIT_S = 4.0
"""A rewrite waits this long at most for the answer being drafted to be chosen."""
QUIET_POLL_S = 0.02


def sounded(beats: float, jumps: Sequence[tuple[float, float, Any]]) -> float:
    """A jam position as beats that sounded: the metre changes' jumps taken out."""
    shift = 0.0
    for at, to, _ in jumps:
        if beats >= to:
            shift += to - at
        elif beats > at:
            return at - shift
    return beats - shift


class RecordKeeper:
    """``--record``: the agent's journal rewritten as a complete MIDI file every
    :data:`RECORD_PERIOD_S` or longer (:data:`RECORD_WORK_SHARE`; in a thread, the loop
    only flushes) and once at the end.

    One writer at a time: a periodic write still running in its thread when the jam
    ends reads the journal and writes under the lock, so the last write holds everything.
    """

    def __init__(self, path: Path, agent: Any, tempo: float, channel_out: int) -> None:
        self.path = path
        self.agent = agent
        self.tempo = tempo
        self.channel = max(1, channel_out - 1)  # 0-based, never the performer's channel
        self.metre = agent.metre  # the first; later ones from the agent's metre changes
        self._lock = threading.Lock()

    async def keep(self) -> None:
        """Rewrite the record periodically until cancelled; a full disk is said once."""
        failing = False
        period = RECORD_PERIOD_S
        while True:
            await asyncio.sleep(period)
            await self._until_quiet()
            try:
                self.agent.journal.flush()
                started = time.perf_counter()
                await asyncio.to_thread(self._write, *self._snapshot())
                took = time.perf_counter() - started
                period = max(RECORD_PERIOD_S, took / RECORD_WORK_SHARE)
            except (OSError, ImprovError) as exc:
                if not failing:
                    log.error("--record %s: cannot write (%s); trying again", self.path, exc)
                failing = True
            else:
                failing = False

    async def _until_quiet(self) -> None:
        """Wait (at most :data:`QUIET_WAIT_S`) while an answer is being drafted: the
        rewrite's thread holds the GIL in bursts, and a draft that loses a tenth of a
        second to it at 240 BPM misses its deadline (the fallback then plays)."""
        generator = getattr(self.agent, "generator", None)
        waited = 0.0
        while generator is not None and generator.composing and waited < QUIET_WAIT_S:
            await asyncio.sleep(QUIET_POLL_S)  # polling a state that has no event
            waited += QUIET_POLL_S

    def finish(self) -> bool:
        """The final write (the journal is removed once it is in the file); whether it
        worked. A failure is logged: the summary still comes, and the journal stays."""
        self.agent.journal.close()
        try:
            self._write(*self._snapshot())
        except (OSError, ImprovError) as exc:
            log.error("--record %s: %s; the jam is in %s", self.path, exc, journal_path(self.path))
            return False
        with self._lock:
            journal_path(self.path).unlink(missing_ok=True)
        log.info("jam written to %s", self.path)
        return True

    def _snapshot(self) -> tuple[Any, Any, Any, dict[str, tuple[int, int | None]]]:
        """(chord markers so far, swing, metre changes, the band's (channel, program) by
        part), read on the loop, which owns them."""
        agent = self.agent
        chords = agent.timeline.changes(0.0, max(agent.journal.end, agent.form.beats))
        band = getattr(agent, "band", None)
        tracks = band.tracks() if band is not None else {}
        return chords, agent.swing, list(agent.metre_changes), tracks

    def _write(
        self, chords: Any, swing: Any, jumps: Any, band: dict[str, tuple[int, int | None]]
    ) -> None:
        """The journal as a complete MIDI file (the agent's notes as they sounded, swung;
        the band's, already at their swung positions, a track per part). A metre change's
        jump in the jam positions is taken out: the file's beats are the beats that
        sounded, with a time signature where the metre changed."""
        from improv.io.midi.files import Track, write_jam
        from improv.io.synth import IMPROV, PERFORMER
        from improv.smf import NoteColumns

        performer = NoteColumns()
        played = NoteColumns()
        parts: dict[str, NoteColumns] = {part: NoteColumns() for part in band}
        with self._lock:
            journal = journal_path(self.path)
            if not journal.is_file():
                return  # the final record is written and its journal removed
            for role, n in read_journal(journal):
                if role == "call" or role in band:  # the band's: already swung
                    start, end = n.onset, n.end
                else:
                    start = swing.render(n.onset)
                    end = swing.render(n.end)
                start, end = sounded(start, jumps), sounded(end, jumps)
                end = max(end, start + 1e-3)
                if role == "call":
                    performer.append(n.pitch, n.velocity, start, end)
                elif role in band:
                    parts[role].append(n.pitch, n.velocity, start, end)
                else:
                    played.append(n.pitch, n.velocity, start, end)
            chords = [
                replace(c, onset=sounded(c.onset, jumps))
                for c in chords
                if not any(at <= c.onset < to for at, to, _ in jumps)
            ]
            write_jam(
                self.path,
                [
                    Track("performer", performer, channel=0, program=PERFORMER.program),
                    Track("improv", played, channel=self.channel, program=IMPROV.program),
                    *(
                        Track(part, parts[part], channel=channel, program=program)
                        for part, (channel, program) in band.items()
                    ),
                ],
                bpm=self.tempo,
                metre=self.metre,
                chords=chords,
                metres=[(sounded(at, jumps), metre) for at, _, metre in jumps],
            )
