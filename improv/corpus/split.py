"""Train/validation split by tune, so that no tune is learnt and then "validated" on.

Several WJazzD solos share a tune (two takes, two soloists). Splitting solo by solo
would put one take in training and the other in validation and flatter the model, so
the split is decided by a stable hash of the normalised tune title: deterministic
across runs, machines and Python versions (``hash()`` is salted; sha256 is not).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from improv.music.notes import Solo

VALIDATION_FRACTION = 0.1

_TAKE = re.compile(r"\s*[\(\[][^\)\]]*\b(take|alt|alternate|version)\b[^\)\]]*[\)\]]?\s*$")
_NON_WORD = re.compile(r"[^a-z0-9]+")


def normalise_title(title: str) -> str:
    """Fold case, accents, punctuation, take numbers and a leading article.

    ``"The Girl from Ipanema (take 2)"``, ``"girl from ipanema"`` and
    ``"Girl From Ipanema-2"`` all normalise to ``"girl from ipanema"``.
    """
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    text = _TAKE.sub("", text)
    text = re.sub(r"[-_ ]\d+\s*$", "", text.strip())  # "-1", " 2": take numbers
    words = _NON_WORD.sub(" ", text).split()
    if len(words) > 1 and words[0] in ("the", "a", "an"):
        words = words[1:]
    return " ".join(words)


def tune_key(solo: Solo) -> str:
    """What identifies a solo's tune: its normalised title, else its source file's stem."""
    title = normalise_title(solo.title)
    if title:
        return title
    stem = solo.source.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return normalise_title(stem) or stem


def in_validation(tune: str, fraction: float = VALIDATION_FRACTION, salt: str = "") -> bool:
    """Whether a (normalised) tune belongs to validation: a fixed function of its name."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"validation fraction must lie in [0, 1]: {fraction}")
    digest = hashlib.sha256(f"{salt}{tune}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


@dataclass(frozen=True, slots=True)
class Split:
    """Solos for training and for validation; blues solos can be picked out of each."""

    train: tuple[Solo, ...]
    validation: tuple[Solo, ...]

    @property
    def train_blues(self) -> tuple[Solo, ...]:
        return tuple(s for s in self.train if s.blues)

    @property
    def validation_blues(self) -> tuple[Solo, ...]:
        return tuple(s for s in self.validation if s.blues)


def split_by_tune(
    solos: Iterable[Solo], fraction: float = VALIDATION_FRACTION, salt: str = ""
) -> Split:
    """Split solos so that all solos over one tune land on the same side.

    ``salt`` gives a different (still deterministic) split, e.g. for cross-validation.
    """
    train: list[Solo] = []
    validation: list[Solo] = []
    for solo in solos:
        (validation if in_validation(tune_key(solo), fraction, salt) else train).append(solo)
    return Split(tuple(train), tuple(validation))
