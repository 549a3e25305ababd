"""A folder of MIDI files -> solos, with every file that could not be read accounted for.

One bad file must not cost the other 439: it is skipped with a warning naming it, and
the caller gets the list of skipped files with reasons. A folder with no MIDI files at
all is a usage error (a wrong path, most likely), not an empty corpus.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from improv.corpus.index import SoloIndex
from improv.corpus.reader import MidiReadError, read_midi
from improv.errors import UsageError
from improv.music.forms import get_form
from improv.music.notes import Solo
from improv.music.pitch import Key

log = logging.getLogger(__name__)

MIDI_SUFFIXES = frozenset({".mid", ".midi"})
PROGRESS_MIN_FILES = 5
"""Reading more files than this shows a progress bar (on a terminal)."""


@dataclass(slots=True)
class CorpusReadResult:
    """What reading a folder gave: the solos, and the files skipped with their reasons."""

    folder: Path
    files: list[Path] = field(default_factory=list)
    solos: list[Solo] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def find_midi_files(folder: Path) -> list[Path]:
    """All ``*.mid``/``*.midi`` files below ``folder`` (any case), in a stable order."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())


def _check_options(key: Key | str | None, form: str | None) -> Key | None:
    """Bad ``--key``/``--form`` values are usage errors, found before any file is read."""
    try:
        parsed = Key.parse(key) if isinstance(key, str) else key
        if form is not None:
            get_form(form)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return parsed


def read_folder(
    path: Path | str,
    key: Key | str | None = None,
    form: str | None = None,
    *,
    progress: bool | None = None,
) -> CorpusReadResult:
    """Read every MIDI file below ``path`` (recursively) into solos.

    ``key`` overrides the files' keys; ``form`` is laid under files without chords
    (see :func:`~improv.corpus.reader.read_midi`).
    ``progress`` None shows a bar on a terminal when there are more than a few files.
    Raises :class:`UsageError` when the folder is missing or holds no MIDI files.
    """
    folder = Path(path)
    parsed_key = _check_options(key, form)
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such folder")
    files = find_midi_files(folder)
    if not files:
        raise UsageError(f"{folder}: no MIDI files (*.mid, *.midi) in this folder")
    result = CorpusReadResult(folder, files)
    index = SoloIndex()
    show = sys.stderr.isatty() and len(files) > PROGRESS_MIN_FILES if progress is None else progress
    columns = (
        TextColumn("reading {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True, disable=not show) as bar:
        task = bar.add_task(folder.name or str(folder), total=len(files))
        for file in files:
            try:
                solo = read_midi(file, key=parsed_key, form=form, info=index.lookup(file))
            except (MidiReadError, ValueError) as exc:
                result.skipped.append((file, _reason(exc, file)))
            else:
                if solo.notes:
                    result.solos.append(solo)
                else:
                    result.skipped.append((file, "no notes"))
            bar.advance(task)
    if not result.solos:  # one line that says why, not a warning per file and an error
        first, reason = result.skipped[0]
        more = f" and {len(files) - 1} more" if len(files) > 1 else ""
        raise UsageError(f"{folder}: no MIDI file could be read ({first.name}: {reason}{more})")
    for file, reason in result.skipped:
        log.warning("skipping %s: %s", file, reason)
    return result


def _reason(exc: Exception, file: Path) -> str:
    """The error message without the file name that the warning already gives."""
    text = str(exc)
    prefix = f"{file}: "
    return text[len(prefix) :] if text.startswith(prefix) else text
