"""The responders: the token responder keeps a model's input in step with the jam, key
changes included; the rules answer starts where the turn says."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from improv.engine.context import ChordTimeline, ContextEvent
from improv.engine.generator import AnswerRequest
from improv.engine.responders import TokenResponder, rules_answer
from improv.music.forms import get_form
from improv.music.notes import ChordChange, Note
from improv.music.pitch import Key
from improv.music.time import Metre
from improv.tokens import VOCAB, Kind, StreamDecoder


class Recorder:
    """A streaming model that only records what it was fed."""

    name = "recorder"
    vocab_size = VOCAB.size

    def __init__(self) -> None:
        self.fed: list[int] = []

    def reset(self) -> None:
        self.fed.clear()

    def advance(self, tokens: Sequence[int]) -> None:
        self.fed.extend(tokens)

    def next_log_probs(self) -> np.ndarray:
        return np.full(VOCAB.size, -np.log(VOCAB.size))

    def snapshot(self) -> object:
        return len(self.fed)

    def restore(self, state: Any) -> None:
        del self.fed[state:]

    def describe(self) -> dict[str, Any]:
        return {}


def test_a_key_change_reaches_the_model_and_rekeys_the_chords() -> None:
    metre = Metre()
    timeline = ChordTimeline(get_form("blues", Key(5), metre))  # F blues
    model = Recorder()
    responder = TokenResponder(model, name="recorder", key=Key(5), metre=metre, chords=timeline)
    assert model.fed == [VOCAB.key(5)]
    responder.listen(
        [
            ContextEvent("start", 0.0),
            ContextEvent("on", 0.0, pitch=65, velocity=90),
            ContextEvent("off", 1.0, pitch=65),
        ]
    )
    timeline.set_form(get_form("blues", Key(10), metre), 4.0, keep_origin=True)  # to Bb
    responder.listen(
        [
            ContextEvent("key", 2.0, pitch=10),
            ContextEvent("on", 4.0, pitch=70, velocity=90),
            ContextEvent("off", 5.0, pitch=70),
            ContextEvent("end", 5.0),
        ]
    )
    assert responder.tonic == 10
    keys = [t for t in model.fed if VOCAB.kinds[t] is Kind.KEY]
    assert keys == [VOCAB.key(5), VOCAB.key(10)]
    decoder = StreamDecoder(0, metre)
    chords = [e for e in decoder.feed_all(model.fed) if isinstance(e, ChordChange)]
    # F7 in force (restated in the new key), then Bb7 at bar 1: absolute roots are right
    assert [c.chord.root for c in chords if c.chord] == [5, 5, 10]
    assert chords[-1].onset == 4.0


def test_a_rules_answer_to_a_call_on_an_early_downbeat_starts_on_its_bar_line() -> None:
    """A trade call in bars 1-2 whose first note came 0.1 beat early (the performer's lean,
    or clock jitter when following MIDI clock) is answered from bar 3's line, not 3.9
    beats into it (a CI run of the MIDI clock test saw exactly that)."""
    call = tuple(Note(65 + i % 3, 90, 3.9 + 0.5 * i, 0.4) for i in range(12))
    request = AnswerRequest(
        start=12.0,
        end=20.0,
        call=call,
        chords=tuple(get_form("blues", "F").changes(1)),
        metre=Metre(),
        key=Key(5),
        pitch_range=(48, 84),
    )
    firsts = {rules_answer(replace(request, seed=seed))[0].onset for seed in range(20)}
    assert firsts == {12.0}


def _follow_call(notes: Sequence[Note], situation: Any) -> list[Note]:
    """A stand-in for the craft's dynamics: the answer's median at the call's median."""
    target = float(np.median([n.velocity for n in situation.call]))
    middle = float(np.median([n.velocity for n in notes])) if notes else target
    return [replace(n, velocity=round(target + 0.5 * (n.velocity - middle))) for n in notes]


def test_a_soft_call_gets_a_soft_answer_dynamics_applied_once() -> None:
    """The model's velocities (the data's median is 108) go through the dynamics once,
    and nothing scales them again: a call at 60 is answered near 60, not at 100+."""
    from improv.engine.generator import Chosen, shape
    from improv.model.compose import Craft

    metre = Metre()
    timeline = ChordTimeline(get_form("blues", Key(5), metre))
    calls: list[int] = []

    def dynamics(notes: Sequence[Note], situation: Any) -> list[Note]:
        calls.append(len(notes))
        return _follow_call(notes, situation)

    responder = TokenResponder(
        Recorder(),
        name="recorder",
        key=Key(5),
        metre=metre,
        chords=timeline,
        candidates=4,
        craft=Craft(score=lambda notes, s: Scores(float(len(notes)), {}), dynamics=dynamics),
    )
    call = tuple(Note(65 + i % 5, 60, 0.5 * i, 0.4) for i in range(14))
    request = AnswerRequest(
        start=8.0,
        end=16.0,
        call=call,
        chords=timeline.changes(0.0, 16.0),
        metre=metre,
        key=Key(5),
        pitch_range=(53, 84),
        velocity=60,
        seed=3,
    )
    items = list(responder.respond(request, (), request.start))
    assert isinstance(items[0], Chosen) and items[0].candidates == 4
    played = [shape(n, request) for n in items[1:] if isinstance(n, Note)]
    velocities = [n.velocity for n in played if n is not None]
    assert len(velocities) >= 3 and calls == [len(items) - 1]
    assert abs(float(np.median(velocities)) - 60) <= 3


class Scores:
    def __init__(self, total: float, parts: dict[str, float]) -> None:
        self.total, self.parts = total, parts
