"""A folder of MIDI solos -> token streams for training, split by tune.

Each solo is segmented into phrases and encoded as one stream whose phrases alternate
between the performer's and the agent's roles, so a model learns how a player answers
a phrase. Training solos are transposed into every key their instrument can play
(validation solos are not: they are judged as played), and blues solos get a larger
sampling weight: improv answers in blues, but learns jazz vocabulary from everything.

For fine-tuning on answering, each call/response pair of a solo is also encoded on its
own (:func:`encode_pair`), exactly as ``improv eval`` and the engine put a call before
the model: the key, up to a few earlier phrases, the call as the performer's, then the
answer as the agent's; only the answer's tokens are to carry loss.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from improv.corpus.augment import transpositions
from improv.corpus.phrases import call_response_pairs, chords_between, phrase_end, segment
from improv.corpus.split import VALIDATION_FRACTION, split_by_tune, tune_key
from improv.errors import UsageError
from improv.music.notes import Phrase, Solo
from improv.tokens import VOCAB, Role, StreamEncoder, encode_solo

log = logging.getLogger(__name__)

WJAZZD_ATTRIBUTION = "Weimar Jazz Database, Jazzomat Research Project, HfM Weimar (ODbL 1.0)"

SELECTION_SALT = "selection:"
"""Salt of the second split by tune that carves the selection set out of the training tunes."""


@dataclass
class PairData:
    """Call/response examples: token sequences whose loss falls on the answer only.

    ``seqs[i][answers[i]:]`` are the answer's tokens (after its agent ROLE token, up to
    and with its PHRASE_END); the tokens before them are context: what a model is given
    when it answers.
    """

    seqs: list[np.ndarray]
    answers: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.seqs)


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
    pairs: PairData | None = None  # call/response examples of the training solos, if asked
    val_pairs: PairData | None = None  # and of the validation solos (no earlier phrases)

    @property
    def train_tokens(self) -> int:
        return int(sum(len(s) for s in self.train))


def encode(solo: Solo) -> np.ndarray:
    """A solo as one token stream, phrases alternating performer and agent."""
    return np.asarray(encode_solo(solo, segment(solo)), dtype=np.int16)


def encode_pair(
    solo: Solo, phrases: Sequence[Phrase], call: int, context: int = 0
) -> tuple[np.ndarray, int]:
    """Phrase ``call + 1`` answering phrase ``call``, with up to ``context`` earlier phrases.

    As ``improv eval`` poses a pair (:func:`improv.model.evaluate.pair_task`): the
    timeline starts at the bar line of the first phrase given, the chords run to the end
    of the answer's bar, the call is the performer's and the answer the agent's (earlier
    phrases alternate back from the call). Returns the tokens and where the answer's
    tokens start (after its ROLE token).
    """
    metre = solo.metre
    first = max(0, call - context)
    origin = metre.bar_start(phrases[first].start_bar)
    end_bar = metre.bar_of(phrase_end(phrases[call + 1]) - 1e-9)
    encoder = StreamEncoder(
        solo.key, metre, chords_between(solo.chords, origin, metre.bar_start(end_bar + 1))
    )
    tokens = encoder.header()
    answer = 0
    for index in range(first, call + 2):
        phrase = phrases[index]
        role = Role.PERFORMER if (call - index) % 2 == 0 else Role.AGENT
        out = encoder.encode_notes(
            phrase.notes, role, offset_beats=metre.bar_start(phrase.start_bar) - origin
        )
        if index == call + 1:
            answer = len(tokens) + out.index(VOCAB.role(Role.AGENT)) + 1
        tokens += out
    return np.asarray(tokens, dtype=np.int16), answer


def solo_pairs(solo: Solo, context: int = 0) -> list[tuple[np.ndarray, int]]:
    """Every call/response pair of a solo (:func:`encode_pair`); the number of earlier
    phrases given cycles through 0..``context``, so a model learns to answer a bare call
    (as ``improv eval`` and a jam's first exchange pose it) and a call in its solo."""
    phrases = segment(solo)
    index = {id(p): i for i, p in enumerate(phrases)}
    return [
        encode_pair(solo, phrases, index[id(pair.call)], n % (context + 1))
        for n, pair in enumerate(call_response_pairs(phrases))
    ]


def _pair_data(examples: list[tuple[np.ndarray, int]], weights: list[float]) -> PairData:
    return PairData(
        [seq for seq, _ in examples],
        np.asarray([answer for _, answer in examples], dtype=np.int64),
        np.asarray(weights, dtype=np.float64),
    )


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
    pairs: bool = False,
    pair_context: int = 0,
    selection: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[TokenData, dict[str, list[Solo]]]:
    """Token streams of solos and the split by tune (``train``/``val`` solos).

    ``pairs`` adds the call/response examples of every stream (:func:`solo_pairs`;
    validation pairs with no earlier phrases, as ``improv eval`` poses them).
    ``selection`` holds out a share of the *training* tunes (a second split by tune) and
    validates on them instead of the validation tunes, so that options can be chosen
    without looking at the tunes a model is finally judged on.
    Raises :class:`UsageError` when the solos leave nothing to train on.
    """
    if blues_weight <= 0:
        raise UsageError(f"--blues-weight must be positive: {blues_weight}")
    if not solos:
        raise UsageError("no solos to train on")
    split = split_by_tune(solos, fraction=val_fraction)
    train_solos, val_solos = list(split.train), list(split.validation)
    if selection:
        carved = split_by_tune(train_solos, fraction=val_fraction, salt=SELECTION_SALT)
        train_solos, val_solos = list(carved.train), list(carved.validation)
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
    pair_examples: list[tuple[np.ndarray, int]] = []
    pair_weights: list[float] = []
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
                if pairs:
                    found = solo_pairs(version, pair_context)
                    pair_examples += found
                    pair_weights += [weights[-1]] * len(found)
        done += 1
        if progress is not None:
            progress(done, total)
    val: list[np.ndarray] = []
    kept_val: list[Solo] = []
    val_examples: list[tuple[np.ndarray, int]] = []
    for solo in val_solos:
        tokens = _encode_or_skip(solo)
        if tokens is not None and len(tokens):
            val.append(tokens)
            kept_val.append(solo)
            if pairs:
                val_examples += solo_pairs(solo)
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
        "validated_on": "selection tunes (held out of the training tunes)"
        if selection
        else "validation tunes",
        "augmentation": "transposition -5..+6 within instrument range" if augment else "none",
        "train_streams": len(train),
        "train_tokens": int(sum(len(t) for t in train)),
        "val_tokens": int(sum(originals)),
        "blues_weight": blues_weight,
        "tokens_per_beat": round(sum(originals) / beats, 3) if kept_val else None,
    }
    if pairs:
        description.update(
            train_pairs=len(pair_examples),
            val_pairs=len(val_examples),
            pair_context=pair_context,
            pair_tokens=int(sum(len(seq) for seq, _ in pair_examples)),
        )
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
        pairs=_pair_data(pair_examples, pair_weights) if pairs else None,
        val_pairs=_pair_data(val_examples, [1.0] * len(val_examples)) if pairs else None,
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
