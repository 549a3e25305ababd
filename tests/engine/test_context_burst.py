"""A dense burst of input must not silence the models: the rolling context passes at
most one note per grid tick to them (the rest are coalesced and counted), so the
models' stream never runs ahead of the jam and the next call is answered."""

from __future__ import annotations

import itertools
import random

from improv.engine.context import CALL, ChordTimeline, Context, ContextEvent
from improv.engine.generator import AnswerRequest
from improv.engine.responders import TokenResponder, _markov_from_rules
from improv.music.forms import get_form
from improv.music.notes import Note
from improv.music.pitch import Key
from improv.music.time import Metre, to_beats

KEY, METRE = Key(0), Metre()


def burst(context: Context, notes: int, start: float, beats: float) -> None:
    """``notes`` note pairs crammed into ``beats`` beats from ``start``."""
    rng = random.Random(1)
    for i in range(notes):
        at = start + beats * i / notes
        pitch = rng.randint(30, 100)
        context.note_on(CALL, pitch, 90, at)
        context.note_off(CALL, pitch, at + 0.01)


def test_a_burst_reaches_the_models_at_most_one_note_per_tick() -> None:
    heard: list[ContextEvent] = []
    context = Context(ChordTimeline(get_form("blues", KEY, METRE)), METRE, sink=heard.extend)
    burst(context, 3000, 0.0, 2.0)
    onsets = [e.at for e in heard if e.kind == "on"]
    assert len(onsets) <= 2 * 12 + 1
    assert all(b - a >= to_beats(1) - 1e-9 for a, b in itertools.pairwise(onsets))
    assert context.coalesced == 3000 - len(onsets)
    assert len(context.played(CALL, 0.0, 4.0)) == len(onsets)  # the call as the models hear it


def test_after_a_burst_the_model_answers_the_next_call() -> None:
    timeline = ChordTimeline(get_form("blues", KEY, METRE))
    model = TokenResponder(
        _markov_from_rules(choruses=8), name="markov", key=KEY, metre=METRE, chords=timeline
    )
    context = Context(timeline, METRE, sink=model.listen)
    context.phrase("start", CALL, 0.0)
    burst(context, 3000, 0.0, 2.0)
    context.phrase("end", CALL, 2.5)
    call = [Note(60 + i % 5, 90, 8.0 + 0.5 * i, 0.4) for i in range(8)]  # bar 2
    context.phrase("start", CALL, 8.0)
    for note in call:
        context.note_on(CALL, note.pitch, note.velocity, note.onset)
        context.note_off(CALL, note.pitch, note.end)
    context.phrase("end", CALL, 12.0)
    request = AnswerRequest(
        start=16.0,
        end=24.0,
        call=tuple(call),
        chords=timeline.changes(8.0, 24.0),
        metre=METRE,
        key=KEY,
        pitch_range=(48, 84),
        seed=2,
    )
    notes = [n for n in model.respond(request, (), request.start) if isinstance(n, Note)]
    assert notes and all(16.0 <= n.onset < 24.0 for n in notes)
