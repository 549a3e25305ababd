"""Corpus statistics: what a folder of MIDI files amounts to as training data.

Counts what the models will see (solos, notes, phrases, call/response pairs, tokens,
chord vocabulary, how much of it is blues) and which files could not be used and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from improv.corpus.folder import CorpusReadResult
from improv.corpus.phrases import call_response_pairs, segment
from improv.tokens import encode_solo


@dataclass(slots=True)
class CorpusStats:
    """Counts for one folder (or, merged, for several)."""

    folder: str
    files: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    solos: int = 0
    blues_solos: int = 0
    notes: int = 0
    blues_notes: int = 0
    phrases: int = 0
    pairs: int = 0
    tokens: int = 0
    symbols: set[str] = field(default_factory=set)

    @property
    def blues_note_share(self) -> float:
        """Share of all notes that are played over a blues form (0 when there are none)."""
        return self.blues_notes / self.notes if self.notes else 0.0

    def add(self, other: CorpusStats) -> None:
        """Fold another folder's counts into these."""
        self.files += other.files
        self.skipped += other.skipped
        self.solos += other.solos
        self.blues_solos += other.blues_solos
        self.notes += other.notes
        self.blues_notes += other.blues_notes
        self.phrases += other.phrases
        self.pairs += other.pairs
        self.tokens += other.tokens
        self.symbols |= other.symbols

    def to_json(self) -> dict[str, Any]:
        """The JSON form: the keys ``improv corpus stats --json`` promises, and a few more."""
        return {
            "folder": self.folder,
            "files": self.files,
            "skipped": [{"file": file, "reason": reason} for file, reason in self.skipped],
            "solos": self.solos,
            "blues_solos": self.blues_solos,
            "notes": self.notes,
            "blues_notes": self.blues_notes,
            "blues_note_share": round(self.blues_note_share, 4),
            "phrases": self.phrases,
            "pairs": self.pairs,
            "chord_symbols": len(self.symbols),
            "tokens": self.tokens,
        }


def corpus_stats(result: CorpusReadResult) -> CorpusStats:
    """Segment, pair and tokenise every solo of a read folder, and count."""
    stats = CorpusStats(
        str(result.folder),
        files=len(result.files),
        skipped=[(str(path), reason) for path, reason in result.skipped],
    )
    for solo in result.solos:
        phrases = segment(solo)
        stats.solos += 1
        stats.notes += len(solo.notes)
        if solo.blues:
            stats.blues_solos += 1
            stats.blues_notes += len(solo.notes)
        stats.phrases += len(phrases)
        stats.pairs += len(call_response_pairs(phrases))
        stats.tokens += len(encode_solo(solo, phrases))
        stats.symbols.update(change.symbol for change in solo.chords)
    return stats


def total(per_folder: list[CorpusStats]) -> CorpusStats:
    """All folders' counts together (distinct chord symbols over the union)."""
    merged = CorpusStats(", ".join(s.folder for s in per_folder))
    for stats in per_folder:
        merged.add(stats)
    return merged
