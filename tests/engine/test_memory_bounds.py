"""A long gig costs no memory per note: what keeps notes keeps a bounded number."""

from __future__ import annotations

import random

from improv.engine.context import CALL, MAX_NOTES, ChordTimeline, Context
from improv.model.markov import SESSION_CONTEXTS, SESSION_TOKENS, MarkovModel
from improv.music.forms import get_form
from improv.music.time import Metre

NOTES = 50_000


def test_the_context_keeps_a_bounded_history_even_of_a_flood() -> None:
    metre = Metre()
    context = Context(ChordTimeline(get_form("blues")), metre)
    for i in range(NOTES):  # forty notes a beat: a flood, or a stuck clock
        at = i / 40
        context.note_on(CALL, 40 + i % 48, 90, at)
        context.note_off(CALL, 40 + i % 48, at + 0.01)
    assert len(context.notes) <= MAX_NOTES
    assert context.notes[-1][1].onset >= (NOTES - 1) / 40 - 0.05  # the newest are kept


def test_the_markov_session_model_stays_bounded() -> None:
    rng = random.Random(0)
    model = MarkovModel.from_sequences([[1, 2, 3, 4] * 20], 64, order=3)  # session order 3 too
    for call in [50] * 4000 + [20_000] * 3:  # 200k tokens of calls, then floods
        model.learn([rng.randrange(64) for _ in range(call)])
        contexts = model.describe()["session_contexts"]
        assert contexts <= SESSION_CONTEXTS + SESSION_TOKENS * (model.order + 1)
