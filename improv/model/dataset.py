"""A folder of MIDI solos -> token streams for training, split by tune.

Each solo is segmented into phrases and encoded as one stream whose phrases alternate
between the performer's and the agent's roles, so a model learns how a player answers
a phrase. Training solos are transposed into every key their instrument can play
(validation solos are not: they are judged as played), and blues solos get a larger
sampling weight: improv answers in blues, but learns jazz vocabulary from everything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from improv.corpus.augment import transpositions
from improv.corpus.phrases import segment
from improv.corpus.split import VALIDATION_FRACTION, split_by_tune, tune_key
from improv.errors import UsageError
from improv.music.notes import Solo
from improv.tokens import VOCAB, encode_solo

log = logging.getLogger(__name__)

WJAZZD_ATTRIBUTION = "Weimar Jazz Database, Jazzomat Research Project, HfM Weimar (ODbL 1.0)"


@dataclass
class TokenData:
    """Training and validation token streams (int arrays), with sampling weights."""

    train: list[np.ndarray]
    train_weights: np.ndarray
    val: list[np.ndarray]
    vocab_size: int
    description: dict[str, Any] = field(default_factory=dict)
    key_ids: tuple[int, int] | None = None  # (first KEY id, number of keys), if any
    pitch_ids: tuple[int, int] | None = None  # (first PITCH id, number of pitches), if any
    chord_ids: tuple[int, int] | None = None  # (first CHORD id, number of chords), if any
    pos_ids: tuple[int, int] | None = None  # (BAR id, 1 + number of POS ids) if contiguous

    @property
    def train_tokens(self) -> int:
        return int(sum(len(s) for s in self.train))


def encode(solo: Solo) -> np.ndarray:
    """A solo as one token stream, phrases alternating performer and agent."""
    return np.asarray(encode_solo(solo, segment(solo)), dtype=np.int16)


def solo_beats(solo: Solo) -> float:
    if not solo.notes:
        return 0.0
    return max(n.end for n in solo.notes) - min(n.onset for n in solo.notes)


def attribution_of(folder: Path) -> str:
    """The data's attribution: WJazzD's when the folder is (a copy of) it."""
    readme = folder / "README.md"
    text = readme.read_text(errors="replace") if readme.is_file() else ""
    if "wjazzd" in folder.name.lower() or "Weimar Jazz Database" in text:
        return WJAZZD_ATTRIBUTION
    return f"MIDI files from {folder.name} (see their own licence)"


def build_token_data(
    solos: Sequence[Solo],
    *,
    augment: bool = True,
    blues_weight: float = 1.0,
    val_fraction: float = VALIDATION_FRACTION,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[TokenData, dict[str, list[Solo]]]:
    """Token streams of solos and the split by tune (``train``/``val`` solos).

    Raises :class:`UsageError` when the solos leave nothing to train on.
    """
    if blues_weight <= 0:
        raise UsageError(f"--blues-weight must be positive: {blues_weight}")
    if not solos:
        raise UsageError("no solos to train on")
    split = split_by_tune(solos, fraction=val_fraction)
    train_solos, val_solos = list(split.train), list(split.validation)
    tunes = sorted({tune_key(s) for s in solos})
    if len(tunes) > 1 and (not train_solos or not val_solos):
        # a tiny corpus: the hash gave one side nothing; validate on one tune anyway
        held = tunes[-1] if not val_solos else tunes[0]
        every = [*train_solos, *val_solos]
        moved = [s for s in every if tune_key(s) == held]
        kept = [s for s in every if tune_key(s) != held]
        train_solos, val_solos = (kept, moved) if not val_solos else (moved, kept)
    train: list[np.ndarray] = []
    weights: list[float] = []
    total, done = len(train_solos) + len(val_solos), 0
    shifts_used = 0
    for solo in train_solos:
        versions = transpositions(solo) if augment else [(0, solo)]
        shifts_used += len(versions)
        for _, version in versions:
            tokens = _encode_or_skip(version)
            if tokens is not None and len(tokens):
                train.append(tokens)
                weights.append(blues_weight if solo.blues else 1.0)
        done += 1
        if progress is not None:
            progress(done, total)
    val: list[np.ndarray] = []
    kept_val: list[Solo] = []
    for solo in val_solos:
        tokens = _encode_or_skip(solo)
        if tokens is not None and len(tokens):
            val.append(tokens)
            kept_val.append(solo)
        done += 1
        if progress is not None:
            progress(done, total)
    if not train:
        raise UsageError("no solo could be encoded for training")
    originals = [len(t) for t in val]
    beats = sum(solo_beats(s) for s in kept_val) or 1.0
    description: dict[str, Any] = {
        "solos": len(solos),
        "train_solos": len(train_solos),
        "train_blues_solos": sum(s.blues for s in train_solos),
        "val_solos": len(kept_val),
        "val_blues_solos": sum(s.blues for s in kept_val),
        "val_tunes": sorted({tune_key(s) for s in kept_val}),
        "val_fraction": val_fraction,
        "augmentation": "transposition -5..+6 within instrument range" if augment else "none",
        "train_streams": len(train),
        "train_tokens": int(sum(len(t) for t in train)),
        "val_tokens": int(sum(originals)),
        "blues_weight": blues_weight,
        "tokens_per_beat": round(sum(originals) / beats, 3) if kept_val else None,
    }
    if not kept_val:
        description["tokens_per_beat"] = round(
            float(np.mean([len(t) for t in train]))
            / max(1e-9, float(np.mean([solo_beats(s) for s in train_solos]))),
            3,
        )
    data = TokenData(
        train=train,
        train_weights=np.asarray(weights, dtype=np.float64),
        val=val,
        vocab_size=VOCAB.size,
        description=description,
        key_ids=(VOCAB.key_ids.start, len(VOCAB.key_ids)),
        pitch_ids=(VOCAB.pitch_ids.start, len(VOCAB.pitch_ids)),
        chord_ids=(VOCAB.chord_ids.start, len(VOCAB.chord_ids)),
        pos_ids=_pos_ids(),
    )
    return data, {"train": train_solos, "val": kept_val}


def _pos_ids() -> tuple[int, int] | None:
    """BAR and the POS tokens as one range (BAR, POS_0, POS_1 ...), when they are one."""
    if VOCAB.pos_ids.start != VOCAB.bar + 1:
        return None
    return VOCAB.bar, 1 + len(VOCAB.pos_ids)


def _encode_or_skip(solo: Solo) -> np.ndarray | None:
    try:
        return encode(solo)
    except ValueError as exc:  # e.g. a metre whose bars the vocabulary cannot hold
        log.warning("skipping %s: %s", solo.source or solo.title, exc)
        return None
