"""Judging a model: how well it predicts solos, and how its answers compare with people's.

Two parts, both on a set of solos:

- **Likelihood.** Each solo is encoded as in training (:func:`improv.model.dataset.encode`)
  and scored from a fresh stream. ``bits_per_note`` is the negative log-likelihood in
  bits summed over a note's tokens, averaged over notes. A note's tokens are its own
  (``VEL PITCH DUR+``) and every context token before it since the previous note
  (``BAR``, ``POS``, ``CHORD``, phrase and key tokens); tokens after the last note count
  toward the last note. Every token thus belongs to one note, and the figure is the
  solo's total bits over its number of notes (``PITCH`` tokens).
- **Responses.** For every call/response pair of the solos
  (:func:`improv.corpus.phrases.call_response_pairs`) the model answers the call, with
  the pair's chords, from where the human answer starts to where it ends, in the
  soloist's range (:func:`improv.model.sampling.generate_response`). The statistics of
  :mod:`improv.model.response_stats` compare the model's answers, the baseline's, the
  human ones, and the human ones paired with random other calls (``human_shuffled``:
  the floor for ``call_similarity``; its other statistics are the human ones).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from improv.corpus.augment import instrument_range
from improv.corpus.phrases import CallResponse, call_response_pairs, chords_between, segment
from improv.model.api import StreamingLM, sequence_log_likelihoods
from improv.model.dataset import encode
from improv.model.response_stats import (
    STAT_NAMES,
    ResponseStats,
    call_similarity,
    response_stats,
)
from improv.model.sampling import ResponseConstraints, SamplingOptions, generate_response
from improv.music.notes import ChordChange, Note, Phrase, Solo
from improv.music.time import Metre
from improv.tokens import VOCAB

log = logging.getLogger(__name__)

SOURCES = ("model", "baseline", "human", "human_shuffled")
"""The four sets of responses a report compares, in display order."""

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called as scoring and generation go."""


# --------------------------------------------------------------------------- likelihood


def count_notes(tokens: np.ndarray) -> int:
    """Notes of a token stream: its ``PITCH`` tokens."""
    pitch = VOCAB.pitch_ids
    return int(np.count_nonzero((tokens >= pitch.start) & (tokens < pitch.stop)))


def solo_bits(lm: StreamingLM, tokens: np.ndarray) -> float:
    """Negative log-likelihood (bits) of a whole stream, scored from a fresh stream."""
    ll = sequence_log_likelihoods(lm, [int(t) for t in tokens])
    return float(-ll.sum() / math.log(2))


# --------------------------------------------------------------------------- pairs


@dataclass(frozen=True, slots=True)
class PairTask:
    """A call/response pair on one timeline: beats from the bar line of the call's bar.

    ``response`` is the human answer; a generated one starts at ``start`` and ends by
    ``end`` (where the human one starts and ends).
    """

    key: int
    metre: Metre
    chords: tuple[ChordChange, ...]
    call: tuple[Note, ...]
    response: tuple[Note, ...]
    pitch_range: tuple[int, int]

    @property
    def start(self) -> float:
        return self.response[0].onset

    @property
    def end(self) -> float:
        return max(n.end for n in self.response)

    def phrase(self, notes: Sequence[Note]) -> Phrase:
        """Notes of this timeline as a phrase, with the pair's chords."""
        return Phrase.of(notes, self.chords, self.metre)


def pair_task(solo: Solo, pair: CallResponse) -> PairTask:
    """Put a pair of a solo on the call's timeline, with the solo's chords and range."""
    metre = solo.metre
    origin = metre.bar_start(pair.call.start_bar)
    shift = metre.bar_start(pair.response.start_bar) - origin
    response = tuple(n.shifted(shift) for n in pair.response.notes)
    end_bar = metre.bar_of(origin + max(n.end for n in response) - 1e-9)
    chords = chords_between(solo.chords, origin, metre.bar_start(end_bar + 1))
    return PairTask(
        solo.key,
        metre,
        chords,
        pair.call.notes,
        response,
        instrument_range(solo.instrument),
    )


def pair_tasks(solos: Sequence[Solo]) -> list[PairTask]:
    """Every call/response pair of the solos, in order."""
    return [pair_task(solo, pair) for solo in solos for pair in call_response_pairs(segment(solo))]


def respond(
    lm: StreamingLM,
    task: PairTask,
    options: SamplingOptions,
    rng: np.random.Generator,
) -> tuple[Note, ...]:
    """A model's answer to a pair's call (see the module docstring)."""
    constraints = ResponseConstraints(
        start=task.start,
        deadline=task.end,
        pitch_range=task.pitch_range,
        min_notes=2,
    )
    response = generate_response(
        lm,
        task.call,
        key=task.key,
        metre=task.metre,
        chords=task.chords,
        start=task.start,
        constraints=constraints,
        options=options,
        rng=rng,
    )
    return tuple(response.notes)


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of ``range(n)`` that moves every index (when ``n > 1``)."""
    if n < 2:
        return np.arange(n)
    perm = rng.permutation(n)
    for i in range(n):
        if perm[i] == i:  # swap with the next slot: still a permutation, no fixed point
            j = (i + 1) % n
            perm[i], perm[j] = perm[j], perm[i]
    return perm


# --------------------------------------------------------------------------- report


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


@dataclass
class EvalReport:
    """What ``improv eval`` reports: bits per note and response statistics per source."""

    model_name: str
    baseline_name: str
    bits_per_note: float
    baseline_bits_per_note: float
    notes: int
    solos: int
    responses: dict[str, list[ResponseStats]] = field(default_factory=dict)

    @property
    def pairs(self) -> int:
        return len(self.responses.get("human", []))

    def values(self, source: str, stat: str) -> list[float]:
        """One statistic of every response of a source (NaN where undefined)."""
        return [getattr(r, stat) for r in self.responses.get(source, [])]

    def summary(self) -> dict[str, dict[str, float]]:
        """Mean of each statistic per source (NaN skipped)."""
        return {
            source: {stat: _mean(self.values(source, stat)) for stat in STAT_NAMES}
            for source in SOURCES
        }

    def to_json(self) -> dict[str, Any]:
        """The JSON object of ``improv eval --json`` (NaN written as null)."""
        return {
            "bits_per_note": _json_number(self.bits_per_note),
            "baseline_bits_per_note": _json_number(self.baseline_bits_per_note),
            "notes": self.notes,
            "responses": {
                source: {stat: _json_number(v) for stat, v in stats.items()}
                for source, stats in self.summary().items()
            },
            "model": self.model_name,
            "baseline": self.baseline_name,
            "solos": self.solos,
            "pairs": self.pairs,
        }


def _encodable(solos: Sequence[Solo]) -> tuple[list[Solo], list[np.ndarray]]:
    """The solos the vocabulary can hold, and their streams; the others are skipped."""
    kept, streams = [], []
    for solo in solos:
        try:
            streams.append(encode(solo))
        except ValueError as exc:  # e.g. bars longer than the vocabulary's positions
            log.warning("skipping %s: %s", solo.source or solo.title, exc)
            continue
        kept.append(solo)
    return kept, streams


def evaluate(
    model: StreamingLM,
    baseline: StreamingLM,
    solos: Sequence[Solo],
    *,
    seed: int = 0,
    max_pairs: int | None = None,
    options: SamplingOptions | None = None,
    progress: Progress | None = None,
) -> EvalReport:
    """Score the solos with both models and answer their calls with both (module doc).

    ``max_pairs`` answers a random sample of that many pairs (drawn with ``seed``, which
    also seeds sampling), so a long corpus can be judged quickly.
    """
    options = options or SamplingOptions()
    rng = np.random.default_rng(seed)

    def tick(stage: str, done: int, total: int) -> None:
        if progress is not None:
            progress(stage, done, total)

    solos, streams = _encodable(solos)
    notes = sum(count_notes(s) for s in streams)
    totals = {"model": 0.0, "baseline": 0.0}
    for i, tokens in enumerate(streams):
        totals["model"] += solo_bits(model, tokens)
        totals["baseline"] += solo_bits(baseline, tokens)
        tick("scoring", i + 1, len(streams))

    tasks = pair_tasks(solos)
    if max_pairs is not None and len(tasks) > max_pairs:
        picked = np.sort(rng.choice(len(tasks), size=max(0, max_pairs), replace=False))
        tasks = [tasks[int(i)] for i in picked]
    responses: dict[str, list[ResponseStats]] = {source: [] for source in SOURCES}
    model_rng, baseline_rng = (np.random.default_rng(s) for s in rng.integers(2**63, size=2))
    for i, task in enumerate(tasks):
        call = task.phrase(task.call)
        for source, lm, draw in (
            ("model", model, model_rng),
            ("baseline", baseline, baseline_rng),
        ):
            answer = respond(lm, task, options, draw)
            responses[source].append(response_stats(call, task.phrase(answer)))
        responses["human"].append(response_stats(call, task.phrase(task.response)))
        tick("answering", i + 1, len(tasks))
    for task, j in zip(tasks, derangement(len(tasks), rng).tolist(), strict=True):
        other = tasks[j]
        similarity = call_similarity(task.phrase(task.call), other.phrase(other.response))
        responses["human_shuffled"].append(
            replace(responses["human"][j], call_similarity=similarity)
        )
    return EvalReport(
        model.name,
        baseline.name,
        totals["model"] / notes if notes else math.nan,
        totals["baseline"] / notes if notes else math.nan,
        notes,
        len(solos),
        responses,
    )
