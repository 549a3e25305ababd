"""compose: candidates drafted in batches until the budget ends, the critic's best kept,
seeds forced first, answers that fill their slot and end before the next call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from improv.craft.situation import Situation
from improv.model.build import build_model, stream_for
from improv.model.compose import (
    FREE,
    FREE_EVERY,
    Composition,
    Craft,
    Pace,
    Start,
    answer_constraints,
    batch_maker,
    compose,
    start_for,
)
from improv.model.sampling import SamplingOptions
from improv.music.forms import get_form
from improv.music.notes import Note
from improv.music.pitch import Key
from improv.tokens import VOCAB

F = Key(5)
FORM = get_form("blues", F)


@dataclass(frozen=True)
class Scores:  # the critic's Scores, as improv.craft.critic gives them
    total: float
    parts: dict[str, float]


@dataclass(frozen=True)
class Seed:  # improv.craft.motif's Seed
    transform: str
    notes: tuple[Note, ...]


def _setup(bars: int = 2, mode: str = "trade") -> tuple[Start, Situation]:
    torch.manual_seed(0)
    model = build_model(
        "lstm",
        "xs",
        VOCAB.size,
        key_ids=(VOCAB.key_ids.start, 12),
        pitch_ids=(VOCAB.pitch_ids.start, 128),
        chord_ids=(VOCAB.chord_ids.start, len(VOCAB.chord_ids)),
        pos_ids=(VOCAB.bar, 1 + len(VOCAB.pos_ids)),
    )
    lm = stream_for(model.eval(), "lstm")
    call = tuple(Note(60 + (i * 3) % 12, 90, 0.5 * i, 0.4) for i in range(12))
    start = start_for(lm, call, key=F.tonic, metre=FORM.metre, chords=FORM.changes(), start=8.0)
    situation = Situation(
        call, tuple(FORM.changes()), 8.0, 8.0 + 4 * bars, FORM.metre, F, (48, 84), mode
    )
    return start, situation


class Ticker:
    """A clock that moves 1 ms each time it is read: budgets in reads, not in load."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def test_the_anytime_loop_stops_at_its_budget_and_keeps_the_best() -> None:
    start, situation = _setup()
    totals: list[float] = []

    def score(notes: Sequence[Note], _: Situation) -> Scores:
        total = -abs(len(notes) - 9) + 0.001 * len(totals)  # unique totals
        totals.append(total)
        return Scores(total, {"notes": float(len(notes))})

    clock = Ticker()
    composition = compose(
        start,
        situation,
        batch_for=batch_maker(start.lm),
        craft=Craft(score=score),
        options=SamplingOptions(),
        rng=np.random.default_rng(0),
        until=0.3,  # about 300 clock reads
        max_candidates=10_000,
        clock=clock,
    )
    assert composition is not None
    assert clock.now < 0.3 + 0.01  # stopped at the budget, with a read to spare
    assert 2 <= composition.candidates == len(totals) < 10_000
    assert composition.scores.total == max(totals)
    assert composition.transform == FREE


def _compose_until(until: float) -> Composition | None:
    start, situation = _setup()
    return compose(
        start,
        situation,
        batch_for=batch_maker(start.lm),
        craft=Craft(score=lambda notes, s: Scores(0.0, {})),
        options=SamplingOptions(),
        rng=np.random.default_rng(0),
        until=until,
        max_candidates=1,
        clock=Ticker(),
    )


def test_without_time_for_one_note_there_is_no_composition() -> None:
    assert _compose_until(0.002) is None  # the fallback's turn


def test_a_candidate_cut_short_by_the_budget_ends_with_its_last_whole_note() -> None:
    whole = _compose_until(1e9)
    cut = _compose_until(0.01)  # about 10 tokens: the first note
    assert whole is not None and cut is not None and cut.candidates == 1
    assert 0 < len(cut.notes) < len(whole.notes)
    assert cut.notes == whole.notes[: len(cut.notes)]  # the same line, ended early


def test_the_pace_grows_batches_to_fill_the_room() -> None:
    pace = Pace()
    assert pace.predict(4, 8.0) is None
    pace.learn(1, steps=80, seconds=0.08, beats=8.0)  # 1 ms a step, 10 steps a beat
    assert pace.predict(1, 8.0) == pytest.approx(0.08)
    assert pace.predict(4, 8.0) == pytest.approx(0.32)  # linear: never optimistic


def test_a_seeded_candidate_starts_with_the_seed_notes() -> None:
    start, situation = _setup()
    seed = Seed(
        "sequence", (Note(65, 90, 8.0, 0.5), Note(69, 80, 8.5, 0.5), Note(72, 90, 9.0, 1.0))
    )

    def score(notes: Sequence[Note], _: Situation) -> Scores:
        hit = [(n.pitch, n.onset) for n in notes[:3]] == [(n.pitch, n.onset) for n in seed.notes]
        return Scores(float(hit), {})

    composition = compose(
        start,
        situation,
        batch_for=batch_maker(start.lm),
        craft=Craft(score=score, seeds=lambda s, rng, count: [seed]),
        options=SamplingOptions(),
        rng=np.random.default_rng(1),
        until=1e9,
        max_candidates=4,
    )
    assert composition is not None and composition.transform == "sequence"
    assert composition.scores.total == 1.0
    first = composition.notes[:3]
    assert [(n.pitch, n.onset, n.duration) for n in first] == [
        (n.pitch, n.onset, n.duration) for n in seed.notes
    ]
    assert len(composition.notes) > 3  # the model went on


@pytest.mark.parametrize("bars", [2, 4])
def test_trade_answers_fill_most_of_the_slot_and_end_before_it(bars: int) -> None:
    start, situation = _setup(bars)
    constraints = answer_constraints(situation)
    assert constraints.deadline is not None and constraints.min_end is not None
    drafted: list[tuple[Note, ...]] = []

    def score(notes: Sequence[Note], _: Situation) -> Scores:
        drafted.append(tuple(notes))
        return Scores(0.0, {})

    compose(
        start,
        situation,
        batch_for=batch_maker(start.lm),
        craft=Craft(score=score),
        options=SamplingOptions(),
        rng=np.random.default_rng(2),
        until=1e9,
        max_candidates=8,
    )
    assert len(drafted) == 8
    for notes in drafted:
        last = max(n.end for n in notes)
        fill = (last - situation.start) / situation.length
        assert last >= constraints.min_end - 1e-9  # most of the slot ...
        assert 0.65 - 1e-9 <= fill <= 0.875 + 1e-9  # ... and a breath before the next call
        assert all(n.onset >= situation.start for n in notes)


def test_phrase_mode_answers_last_about_the_call() -> None:
    _, situation = _setup(4, "phrase")
    constraints = answer_constraints(situation)
    span = 5.9  # the call: 12 eighths, the last one 0.4 long
    assert constraints.min_end == pytest.approx(situation.start + 0.75 * span)
    assert constraints.deadline == pytest.approx(situation.start + 1.25 * span + 0.5)


def test_the_dynamics_shape_the_winner_once() -> None:
    start, situation = _setup()
    calls: list[int] = []

    def dynamics(notes: Sequence[Note], s: Situation) -> list[Note]:
        calls.append(len(notes))
        return [Note(n.pitch, 60, n.onset, n.duration) for n in notes]

    composition = compose(
        start,
        situation,
        batch_for=batch_maker(start.lm),
        craft=Craft(score=lambda n, s: Scores(0.0, {}), dynamics=dynamics),
        options=SamplingOptions(),
        rng=np.random.default_rng(0),
        until=1e9,
        max_candidates=4,
    )
    assert composition is not None and len(calls) == 1
    assert {n.velocity for n in composition.notes} == {60}


def test_one_draft_in_four_starts_free_the_others_from_a_seed() -> None:
    start, situation = _setup()
    seed = Seed(
        "sequence", (Note(65, 90, 8.0, 0.5), Note(69, 80, 8.5, 0.5), Note(72, 90, 9.0, 1.0))
    )
    seeded: list[bool] = []

    def score(notes: Sequence[Note], _: Situation) -> Scores:
        first = [(n.pitch, n.onset) for n in notes[:3]]
        seeded.append(first == [(n.pitch, n.onset) for n in seed.notes])
        return Scores(0.0, {})

    composition = compose(
        start,
        situation,
        batch_for=batch_maker(start.lm),
        craft=Craft(score=score, seeds=lambda s, rng, count: [seed]),
        options=SamplingOptions(),
        rng=np.random.default_rng(3),
        until=1e9,
        max_candidates=2 * FREE_EVERY,
    )
    assert composition is not None and composition.candidates == len(seeded) == 2 * FREE_EVERY
    assert seeded.count(False) == 2
