"""``solos.csv``: what the MIDI files themselves do not say (title, soloist, form, blues).

The WJazzD folder has one row per file (columns ``file``, ``performer``, ``title``,
``instrument``, ``key``, ``form``, ``harmony_template``, ``signature``, ``avgtempo``,
``blues`` ...); the generated corpus writes the same columns. Missing columns and odd
cells are tolerated: the index only adds information, it never makes a file unreadable.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from improv.music.pitch import Key

log = logging.getLogger(__name__)

INDEX_NAME = "solos.csv"

_SECTION = re.compile(r"\(\s*([A-Za-z]+\d*)\s*,\s*(\d+)\s*\)")
_COMPACT_SECTION = re.compile(r"([A-Za-z])(\d+)")
_MAX_SECTION_BARS = 64  # longer "sections" are typos in the source (e.g. "(A1,1612)")

# WJazzD tonalities beyond major/minor, mapped as its README says the key signatures are.
_MODE_ALIASES = {"chrom": "maj", "blues": "maj", "mix": "maj", "lyd": "maj", "dor": "min"}


@dataclass(frozen=True, slots=True)
class SoloInfo:
    """One row of ``solos.csv``."""

    file: str
    performer: str = ""
    title: str = ""
    instrument: str = ""
    key: Key | None = None
    form: tuple[tuple[str, int], ...] = ()
    blues: bool = False
    tempo_bpm: float | None = None


def parse_key_text(text: str) -> Key | None:
    """A WJazzD key cell (``Bb-maj``, ``C-min``, ``D-chrom``, ``Ab``) or None when blank/odd."""
    text = text.strip()
    if not text:
        return None
    tonic, _, mode = text.partition("-")
    mode = _MODE_ALIASES.get(mode.lower(), mode)
    try:
        return Key.parse(f"{tonic}-{mode}" if mode else tonic)
    except ValueError:
        log.debug("ignoring unreadable key %r in %s", text, INDEX_NAME)
        return None


def parse_form_text(text: str) -> tuple[tuple[str, int], ...]:
    """Sections of one chorus, ``"(A1,8), (A2,8), (B1,8), (A3,8)"`` -> ((A1, 8), ...).

    ``"B8A8"`` is read too; ``"open"`` (no fixed form) and implausible lengths give ().
    """
    sections = [(label, int(bars)) for label, bars in _SECTION.findall(text)]
    if not sections and re.fullmatch(r"(?:[A-Za-z]\d+)+", text.strip()):
        sections = [(label, int(bars)) for label, bars in _COMPACT_SECTION.findall(text)]
    if any(not 0 < bars <= _MAX_SECTION_BARS for _, bars in sections):
        log.debug("ignoring implausible form %r in %s", text, INDEX_NAME)
        return ()
    return tuple(sections)


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 20.0 <= value <= 400.0 else None


def load_index(folder: Path) -> dict[Path, SoloInfo]:
    """Rows of ``folder/solos.csv`` keyed by the resolved path of their file ({} if none)."""
    path = folder / INDEX_NAME
    if not path.is_file():
        return {}
    rows: dict[Path, SoloInfo] = {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                name = (row.get("file") or "").strip()
                if not name:
                    continue
                rows[(folder / name).resolve()] = SoloInfo(
                    file=name,
                    performer=(row.get("performer") or "").strip(),
                    title=(row.get("title") or "").strip(),
                    instrument=(row.get("instrument") or "").strip(),
                    key=parse_key_text(row.get("key") or ""),
                    form=parse_form_text(row.get("form") or ""),
                    blues=(row.get("blues") or "").strip().lower() in ("true", "1", "yes"),
                    tempo_bpm=_float(row.get("avgtempo") or ""),
                )
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        log.warning("cannot read %s: %s; titles come from the MIDI files", path, exc)
        return {}
    return rows


class SoloIndex:
    """Finds the ``solos.csv`` row of a MIDI file: the file's folder, or its parent, has it."""

    def __init__(self) -> None:
        self._folders: dict[Path, dict[Path, SoloInfo]] = {}

    def lookup(self, midi_path: Path) -> SoloInfo | None:
        resolved = midi_path.resolve()
        for folder in (resolved.parent, resolved.parent.parent):
            if folder not in self._folders:
                self._folders[folder] = load_index(folder)
            rows = self._folders[folder]
            if resolved in rows:
                return rows[resolved]
            by_name = [info for p, info in rows.items() if p.name == resolved.name]
            if len(by_name) == 1:
                return by_name[0]
        return None
