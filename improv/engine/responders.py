"""The responders the generator drives: token models (neural or Markov) and the rules.

:class:`TokenResponder` keeps a model's stream in step with the music: every event the
context passes on is encoded (``improv.tokens.StreamEncoder``) and fed to the model at
once, on the responder's worker thread, so when an answer is due the model's state is
current. An answer is drafted from a snapshot with
:class:`~improv.model.sampling.ResponseSampler` (the form's chords forced, range and
time masked) and decoded note by note; :meth:`TokenResponder.rewind` returns to the
snapshot, so the stream then hears the answer as it was really played.

:class:`RulesResponder` wraps the rule-based blues generator
(:func:`improv.craft.rules.answer`): deterministic, tens of microseconds a note.
It is the last resort, cheap enough to run inline on the loop when all else is late.

:func:`build_responders` turns ``--model`` into a primary responder and its fallbacks.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from improv.engine.context import ANSWER, ChordTimeline, ContextEvent
from improv.engine.generator import AnswerRequest, Chosen, Item, Responder
from improv.errors import ImprovError, UsageError
from improv.music.notes import ChordChange, Note, Phrase
from improv.music.pitch import Key
from improv.music.time import Metre

log = logging.getLogger(__name__)


# --- rules ----------------------------------------------------------------------------


def rules_answer(request: AnswerRequest) -> list[Note]:
    """A rule-based answer filling the request's window (absolute jam beats).

    The rules think in bars from the answer's start: the call is handed over relative to
    its own bar line (its place in the bar is kept), the chords relative to the start.
    """
    from improv.craft.rules import answer

    origin = request.start
    call_bar = (
        math.floor(request.call[0].onset / request.metre.beats_per_bar + 1e-9)
        * request.metre.beats_per_bar
        if request.call
        else origin
    )
    call = Phrase.of([n.shifted(-call_bar) for n in request.call], (), request.metre)
    chords = [
        ChordChange(max(0.0, c.onset - origin), c.symbol, c.chord)
        for c in request.chords
        if c.onset + 1e-9 >= origin or c is _in_force(request.chords, origin)
    ]
    bars = max(1, math.ceil(request.length / request.metre.beats_per_bar - 1e-9))
    phrase = answer(call, chords, bars, key=request.key, seed=request.seed)
    return [n.shifted(origin) for n in phrase.notes if n.onset < request.length - 1e-9]


def _in_force(chords: Sequence[ChordChange], at: float) -> ChordChange | None:
    current = None
    for change in chords:
        if change.onset > at + 1e-9:
            break
        current = change
    return current


class RulesResponder:
    """The rule-based blues generator as a responder: no state to keep."""

    name = "rules"
    device = "cpu"

    def listen(self, events: Sequence[ContextEvent]) -> None:
        return None

    def rewind(self) -> None:
        return None

    def respond(
        self, request: AnswerRequest, played: Sequence[Note], position: float
    ) -> Iterator[Item]:
        for note in rules_answer(request):
            if note.onset >= position - 1e-9:
                yield note

    def learn(self, call: Sequence[Note], request: AnswerRequest) -> None:
        return None


# --- token models ---------------------------------------------------------------------

DRAFT_BUDGET_S = 1.0
"""Time a draft with no deadline of its own may take (a fallback's, made at planning)."""


def situation_of(request: AnswerRequest) -> Any:
    """The craft's view of an answer request."""
    from improv.craft.situation import Situation

    return Situation(
        call=tuple(sorted(request.call, key=lambda n: n.onset)),
        chords=request.chords,
        start=request.start,
        end=request.end,
        metre=request.metre,
        key=request.key,
        pitch_range=request.pitch_range,
        mode=request.mode,
    )


@dataclass(slots=True)
class _Saved:
    model: object
    encoder: Any
    grammar: Any


class TokenResponder:
    """A :class:`~improv.model.api.StreamingLM` kept in step with the jam.

    An answer is composed whole before its first note is due
    (:func:`improv.model.compose.compose`): up to ``candidates`` drafts, batched on
    ``device`` (None: numpy), chosen and shaped by ``craft``; ``harmony`` weights the
    pitches by the chord in force.
    """

    def __init__(
        self,
        model: Any,
        *,
        name: str,
        key: Key,
        metre: Metre,
        chords: ChordTimeline,
        device: str | None = None,
        candidates: int = 1,
        craft: Any = None,
        harmony: Any = None,
    ) -> None:
        from improv.model.compose import Craft, Pace, batch_maker
        from improv.tokens import GrammarState, StreamEncoder

        self.model = model
        self.name = name
        self.device = device or "cpu"
        self.candidates = candidates
        self.craft = craft if craft is not None else Craft()
        self.harmony = harmony
        self._batch_for = batch_maker(model, device)
        self._pace = Pace()
        self.tonic = key.tonic  # follows key changes (ContextEvent "key")
        self.metre = metre
        self._chords = chords
        self._encoder = StreamEncoder(key.tonic, metre, self._chord_in_force)
        self._grammar = GrammarState(metre, key.tonic)
        self._saved: _Saved | None = None
        model.reset()
        self._feed(self._encoder.header())

    @property
    def chords(self) -> ChordTimeline:
        """The chord timeline it reads: a jam around it must play these same changes."""
        return self._chords

    def _chord_in_force(self, beats: float) -> ChordChange | None:
        symbol = self._chords.symbol_at(beats)
        return ChordChange(beats, symbol, self._chords.chord_at(beats))

    def _feed(self, tokens: Sequence[int]) -> None:
        if tokens:
            self.model.advance(tokens)
            for token in tokens:
                self._grammar.feed(token)

    def listen(self, events: Sequence[ContextEvent]) -> None:
        from improv.tokens import Role

        encoder = self._encoder
        for event in events:
            role = Role.AGENT if event.role == ANSWER else Role.PERFORMER
            if event.kind == "on":
                if encoder.role is None:
                    self._feed(encoder.start_phrase(role, event.at))
                self._feed(encoder.note_on(event.pitch, event.velocity, event.at))
            elif event.kind == "off":
                self._feed(encoder.note_off(event.pitch, event.at))
            elif event.kind == "start":
                self._feed(encoder.start_phrase(role, event.at))
            elif event.kind == "end":
                self._feed(encoder.end_phrase(event.at))
            elif event.kind == "key":
                self.tonic = event.pitch
                self._feed(encoder.change_key(event.pitch))
            elif event.kind == "metre" and event.metre is not None:
                self.metre = event.metre
                self._feed(encoder.change_metre(event.metre, event.at, event.to))
                self._grammar.change_metre(event.metre, encoder.bar - encoder.start_bar)

    def rewind(self) -> None:
        saved, self._saved = self._saved, None
        if saved is not None:
            self.model.restore(saved.model)
            self._encoder = saved.encoder
            self._grammar = saved.grammar

    def respond(
        self, request: AnswerRequest, played: Sequence[Note], position: float
    ) -> Iterator[Item]:
        import numpy as np

        from improv.model.compose import Start, answer_constraints, compose
        from improv.model.sampling import SamplingOptions
        from improv.tokens import Role

        if self._saved is None:
            self._saved = _Saved(
                self.model.snapshot(), copy.deepcopy(self._encoder), self._grammar.copy()
            )
        self._feed(self._encoder.start_phrase(Role.AGENT, request.start))
        situation = situation_of(request)
        until = request.compose_until
        composition = compose(
            Start(self.model, self._grammar, self._encoder, self._chord_in_force),
            situation,
            batch_for=self._batch_for,
            craft=self.craft,
            options=SamplingOptions(request.temperature, request.top_p),
            rng=np.random.default_rng(request.seed),
            until=time.monotonic() + DRAFT_BUDGET_S if until is None else until,
            max_candidates=self.candidates,
            pace=self._pace,
            constraints=answer_constraints(situation, harmony=self.harmony),
        )
        if composition is None:
            yield Chosen(0)
            return
        scores = composition.scores
        yield Chosen(
            composition.candidates,
            float(scores.total) if scores is not None else None,
            {k: float(v) for k, v in scores.parts.items()} if scores is not None else None,
            composition.transform,
        )
        for note in composition.notes:
            if note.onset >= position - 1e-9:
                yield note

    def learn(self, call: Sequence[Note], request: AnswerRequest) -> None:
        from improv.model.api import OnlineLearner
        from improv.tokens import Role, encode_phrase

        if not call or not isinstance(self.model, OnlineLearner):
            return
        bar = math.floor(call[0].onset / self.metre.beats_per_bar + 1e-9)
        origin = self.metre.bar_start(bar)
        chords = self._chords.changes(origin, max(n.end for n in call))
        phrase = Phrase.of(
            [n.shifted(-origin) for n in call],
            [ChordChange(c.onset - origin, c.symbol, c.chord) for c in chords],
            self.metre,
        )
        self.model.learn(encode_phrase(phrase, self.tonic, Role.PERFORMER))


# --- choosing ---------------------------------------------------------------------------


@dataclass(slots=True)
class Responders:
    primary: Responder
    fallbacks: list[Responder]
    description: str


def _markov_from_rules(seed: int = 0, choruses: int = 48) -> Any:
    """A Markov model fitted on rule-generated blues, when no checkpoint holds one."""
    from improv.craft.rules import BluesGenerator, Voice
    from improv.model.markov import MarkovModel
    from improv.music.forms import get_form
    from improv.tokens import VOCAB, Role, encode_phrase

    sequences = []
    for index in range(choruses):
        key = Key(index * 5 % 12)
        form = get_form(("blues", "jazz-blues", "quick-change", "minor-blues")[index % 4], key)
        generator = BluesGenerator(seed + index, key)
        changes = form.changes()
        voice = Voice(density=0.3 + 0.5 * ((index * 7) % 10) / 10)
        notes = generator.chorus(
            changes, form.metre, start_bar=0, bars=form.n_bars, voice=voice, density=voice.density
        )
        phrase = Phrase.of(notes, changes, form.metre)
        sequences.append(encode_phrase(phrase, key.tonic, Role.PERFORMER))
    return MarkovModel.from_sequences(sequences, VOCAB.size, order=5)


DEFAULT_CANDIDATES = 32


def build_responders(
    spec: str | None,
    key: Key,
    metre: Metre,
    chords: ChordTimeline,
    *,
    device: str = "auto",
    candidates: int = DEFAULT_CANDIDATES,
) -> Responders:
    """``--model`` -> primary responder and fallbacks (Markov, then the rules).

    None: the shipped default model when present, else the Markov model, else the rules.
    The primary drafts up to ``candidates`` answers on ``device`` (``--device``) and the
    critic chooses; the Markov fallback drafts one, chord-weighted.
    """
    from improv.model.compose import MARKOV_HARMONY, MODEL_HARMONY, Craft, batch_device, load_craft
    from improv.model.sampling import ChordWeights

    try:
        batches_on = batch_device(device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    rules = RulesResponder()
    if spec == "rules":
        return Responders(rules, [], "rules (rule-based blues generator)")
    craft = load_craft()
    fallback_craft = Craft(dynamics=craft.dynamics)

    def token(model: Any, name: str, *, primary: bool) -> TokenResponder:
        weights = ChordWeights(*(MARKOV_HARMONY if name == "markov" else MODEL_HARMONY))
        return TokenResponder(
            model,
            name=name,
            key=key,
            metre=metre,
            chords=chords,
            device=batches_on if primary else None,
            candidates=candidates if primary else 1,
            craft=craft if primary else fallback_craft,
            harmony=weights,
        )

    if spec == "markov":
        markov = token(_load_markov(), "markov", primary=True)
        return Responders(markov, [rules], f"markov ({markov.model.name}), fallback rules")
    try:
        loaded = _load_checkpoint(spec)
    except ImprovError as exc:
        if spec is not None:
            raise
        log.warning("no default model (%s): using the Markov model", exc)
        markov = token(_load_markov(), "markov", primary=True)
        return Responders(markov, [rules], "markov (no shipped model), fallback rules")
    primary = token(loaded.stream(), loaded.name, primary=True)
    fallbacks: list[Responder] = [rules]
    try:
        fallbacks.insert(0, token(loaded.baseline(), "markov", primary=False))
    except ImprovError as exc:
        log.info("%s: %s; fallback is the rules alone", loaded.name, exc)
    names = ", ".join(f.name for f in fallbacks)
    return Responders(primary, fallbacks, f"{loaded.name} ({loaded.path.name}), fallback {names}")


def _load_checkpoint(spec: str | None) -> Any:
    try:
        from improv.model.checkpoint import load_model
    except ImportError as exc:  # torch missing: a broken install, said plainly
        raise ImprovError(f"cannot load neural models: {exc}") from exc
    return load_model(spec, device="cpu")


def _load_markov() -> Any:
    """The default checkpoint's Markov baseline, else one fitted on rule-made blues."""
    try:
        return _load_checkpoint(None).baseline()
    except ImprovError as exc:
        log.info("no shipped Markov baseline (%s): fitting one on generated blues", exc)
    return _markov_from_rules()


def responder_loader(
    key: Key,
    metre: Metre,
    chords: ChordTimeline,
    *,
    device: str = "auto",
    candidates: int = DEFAULT_CANDIDATES,
) -> Callable[[str], Responder]:
    """What the agent calls (off the loop) to switch models on a control request."""

    def load(spec: str) -> Responder:
        try:
            return build_responders(
                spec, key, metre, chords, device=device, candidates=candidates
            ).primary
        except UsageError as exc:
            raise ImprovError(str(exc)) from exc

    return load
