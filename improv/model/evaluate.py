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
  (:func:`improv.corpus.phrases.call_response_pairs`) the model answers the call
  (:func:`respond`) in the pair's turn: from where the human answer starts to the bar
  line at or after its end, with the pair's chords, in the soloist's range. The
  statistics of :mod:`improv.model.response_stats` compare the model's answers, the
  baseline's, the human ones, and the human ones paired with random other calls
  (``human_shuffled``: the floor for ``call_similarity``, ``motif_reuse`` and
  ``copy_share``; its other statistics are the human ones).
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
from improv.craft.measures import is_transposed_copy
from improv.craft.situation import Situation
from improv.model.api import StreamingLM, sequence_log_likelihoods
from improv.model.compose import (
    MARKOV_HARMONY,
    MODEL_HARMONY,
    Craft,
    answer_constraints,
    batch_maker,
    compose,
    load_craft,
    start_for,
)
from improv.model.dataset import encode
from improv.model.response_stats import (
    STAT_NAMES,
    ResponseStats,
    call_similarity,
    pooled_stats,
    response_stats,
)
from improv.model.sampling import ChordWeights, SamplingOptions
from improv.music.notes import ChordChange, Note, Solo
from improv.music.pitch import Key
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

    ``response`` is the human answer; a generated one plays in the same turn, from
    ``start`` (where the human one starts) to ``end`` (the bar line at or after the
    human one's end: a turn ends at a bar line).
    """

    key: Key
    metre: Metre
    chords: tuple[ChordChange, ...]
    call: tuple[Note, ...]
    response: tuple[Note, ...]
    pitch_range: tuple[int, int]
    tempo_bpm: float = 120.0

    @property
    def start(self) -> float:
        return self.response[0].onset

    @property
    def end(self) -> float:
        last = max(n.end for n in self.response)
        return self.metre.bar_start(self.metre.bar_of(last - 1e-9) + 1)

    def situation(self) -> Situation:
        """What an answer to this pair answers."""
        return Situation(
            call=self.call,
            chords=self.chords,
            start=self.start,
            end=self.end,
            metre=self.metre,
            key=self.key,
            pitch_range=self.pitch_range,
        )


def pair_task(solo: Solo, pair: CallResponse) -> PairTask:
    """Put a pair of a solo on the call's timeline, with the solo's chords and range."""
    metre = solo.metre
    origin = metre.bar_start(pair.call.start_bar)
    shift = metre.bar_start(pair.response.start_bar) - origin
    response = tuple(n.shifted(shift) for n in pair.response.notes)
    end_bar = metre.bar_of(origin + max(n.end for n in response) - 1e-9)
    chords = chords_between(solo.chords, origin, metre.bar_start(end_bar + 1))
    return PairTask(
        Key(solo.key, solo.mode),
        metre,
        chords,
        pair.call.notes,
        response,
        instrument_range(solo.instrument),
        solo.tempo_bpm,
    )


def pair_tasks(solos: Sequence[Solo]) -> list[PairTask]:
    """Every call/response pair of the solos, in order."""
    return [pair_task(solo, pair) for solo in solos for pair in call_response_pairs(segment(solo))]


def respond(
    lm: StreamingLM,
    situation: Situation,
    options: SamplingOptions,
    rng: np.random.Generator,
    candidates: int = 1,
    *,
    fallback: bool = False,
) -> tuple[Note, ...]:
    """A model's answer to a situation's call, made as the jam makes it: the one place
    ``improv eval`` makes an answer.

    :func:`improv.model.compose.compose` drafts ``candidates`` answers (free ones and
    ones continuing a motif seed of the call), the critic keeps the best and the
    dynamics shape it, under the jam's constraints and chord weights. ``fallback``
    answers as the jam's Markov fallback does: one draft, its chord weights, dynamics.
    """
    start = start_for(
        lm,
        situation.call,
        key=situation.key.tonic,
        metre=situation.metre,
        chords=situation.chords,
        start=situation.start,
    )
    craft = load_craft()
    if fallback:
        craft = Craft(dynamics=craft.dynamics)
    harmony = ChordWeights(*(MARKOV_HARMONY if fallback else MODEL_HARMONY))
    composition = compose(
        start,
        situation,
        batch_for=batch_maker(lm),
        craft=craft,
        options=options,
        rng=rng,
        until=math.inf,
        max_candidates=1 if fallback else candidates,
        constraints=answer_constraints(situation, harmony=harmony),
    )
    return composition.notes if composition is not None else ()


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
    """What ``improv eval`` reports: bits per note and response statistics per source.

    ``played`` holds every note each source answered with (for the pooled statistics);
    ``examples`` the first pairs with the model's answers, to look at and listen to.
    """

    model_name: str
    baseline_name: str
    bits_per_note: float
    baseline_bits_per_note: float
    notes: int
    solos: int
    responses: dict[str, list[ResponseStats]] = field(default_factory=dict)
    played: dict[str, list[Note]] = field(default_factory=dict)
    examples: list[tuple[PairTask, tuple[Note, ...]]] = field(default_factory=list)

    @property
    def pairs(self) -> int:
        return len(self.responses.get("human", []))

    def values(self, source: str, stat: str) -> list[float]:
        """One statistic of every response of a source (NaN where undefined)."""
        return [getattr(r, stat) for r in self.responses.get(source, [])]

    def summary(self) -> dict[str, dict[str, float]]:
        """Mean of each statistic per source (NaN skipped), and the pooled ones."""
        return {
            source: {stat: _mean(self.values(source, stat)) for stat in STAT_NAMES}
            | pooled_stats(self.played.get(source, []))
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
    examples_kept: int = 0,
    candidates: int = 1,
) -> EvalReport:
    """Score the solos with both models and answer their calls with both (module doc).

    ``max_pairs`` answers a random sample of that many pairs (drawn with ``seed``, which
    also seeds sampling), so a long corpus can be judged quickly. The report keeps the
    first ``examples_kept`` pairs with the model's answers. ``candidates`` goes to
    :func:`respond` for both models.
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
    played: dict[str, list[Note]] = {source: [] for source in SOURCES}
    examples: list[tuple[PairTask, tuple[Note, ...]]] = []
    model_rng, baseline_rng = (np.random.default_rng(s) for s in rng.integers(2**63, size=2))
    others = derangement(len(tasks), rng).tolist()
    for i, (task, j) in enumerate(zip(tasks, others, strict=True)):
        situation, other = task.situation(), tasks[j]
        for source, lm, draw in (
            ("model", model, model_rng),
            ("baseline", baseline, baseline_rng),
        ):
            answer = respond(lm, situation, options, draw, candidates, fallback=lm is baseline)
            responses[source].append(response_stats(situation, answer, other.call))
            played[source].extend(answer)
            if source == "model" and i < examples_kept:
                examples.append((task, answer))
        human = response_stats(situation, task.response, other.call)
        responses["human"].append(human)
        played["human"].extend(task.response)
        # the human answer after another pair's call: what chance alone shares
        responses["human_shuffled"].append(
            replace(
                human,
                call_similarity=call_similarity(other.call, task.response),
                motif_reuse=human.motif_reuse_shuffled,
                copy_share=float(is_transposed_copy(other.call, task.response)),
            )
        )
        tick("answering", i + 1, len(tasks))
    played["human_shuffled"] = played["human"]
    return EvalReport(
        model.name,
        baseline.name,
        totals["model"] / notes if notes else math.nan,
        totals["baseline"] / notes if notes else math.nan,
        notes,
        len(solos),
        responses,
        played,
        examples,
    )
