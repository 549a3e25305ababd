"""Chord symbols (WJazzD and lead-sheet spellings): root, quality, tones, tensions, scale."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class QualityClass(StrEnum):
    """The coarse chord families the token language carries."""

    MAJOR = "maj"
    DOMINANT = "dom"
    MINOR = "min"
    HALF_DIMINISHED = "hdim"
    DIMINISHED = "dim"
    AUGMENTED = "aug"
    SUSPENDED = "sus"


@dataclass(frozen=True, slots=True)
class Chord:
    """A parsed chord symbol. Pitch classes are absolute (0 = C)."""

    symbol: str
    root: int
    quality: str
    quality_class: QualityClass
    tones: tuple[int, ...]
    tensions: tuple[int, ...]
    bass: int | None = None
