"""Several candidate answers drafted at once, one chosen by the critic: anytime.

The engine and ``improv eval`` both answer through :func:`compose`. From one point of a
model's stream (right after the agent's phrase token) it drafts candidates in batches
(:class:`~improv.model.inputs.BatchStream`: B rows advanced together; any other model
through :class:`RowsBatch`), some of them continuing a motif seed (a transformed cell
of the call, its notes forced into the stream as the agent's first notes), scores each
complete one with the critic and keeps the best. Batches grow while the time budget
allows (a :class:`Pace` predicts a batch's time from the ones before); a batch that
would overrun the deadline is abandoned, and when not one candidate completed the
caller's fallback takes over. The winner's velocities go through the dynamics once.

The critic, the seeds and the dynamics are the craft's (:mod:`improv.craft`); they
come in as callables (:class:`Craft`), so this module runs on numpy and torch alone.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from improv.model.api import StreamingLM
from improv.model.sampling import (
    ChordSource,
    ChordWeights,
    ResponseConstraints,
    ResponseSampler,
    SamplingOptions,
    prime,
)
from improv.music.notes import ChordChange, Note
from improv.music.time import Metre
from improv.tokens import VOCAB, GrammarState, NoteEnd, StreamDecoder, StreamEncoder

if TYPE_CHECKING:
    from improv.craft.situation import Situation

log = logging.getLogger(__name__)

FREE = "free"
"""The ``transform`` of a candidate that starts from no seed."""

FREE_EVERY = 4
"""One draft in this many starts free, the others continue a motif seed (when the call
gives any): chosen on the selection set (models/README.md), half and half left the
critic's choice free a third of the time and the answers hardly nearer their call
than to any other."""
BATCH_SIZES = (1, 2, 4, 8, 16, 32)
MAX_TOKENS = 2048  # bounds a misbehaving model's answer


class Batch(Protocol):
    """B streams advanced together (a :class:`~improv.model.inputs.BatchStream`)."""

    rows: int

    def fill(self, state: object) -> None: ...

    def advance(self, tokens: np.ndarray, active: np.ndarray) -> None: ...

    def next_log_probs(self) -> np.ndarray: ...


class RowsBatch:
    """Any :class:`StreamingLM` as a batch: each row a snapshot of the one stream,
    restored to advance it (the Markov model's snapshots cost microseconds)."""

    def __init__(self, lm: StreamingLM, rows: int) -> None:
        self.lm = lm
        self.rows = rows
        self._states: list[object] = []
        self._log_probs: np.ndarray | None = None

    def fill(self, state: object) -> None:
        self._states = [state] * self.rows
        self._log_probs = None

    def advance(self, tokens: np.ndarray, active: np.ndarray) -> None:
        for row in np.flatnonzero(active):
            self.lm.restore(self._states[row])
            self.lm.advance((int(tokens[row]),))
            self._states[row] = self.lm.snapshot()
        self._log_probs = None

    def next_log_probs(self) -> np.ndarray:
        if self._log_probs is None:
            out = np.empty((self.rows, self.lm.vocab_size), dtype=np.float32)
            for row, state in enumerate(self._states):
                self.lm.restore(state)
                out[row] = self.lm.next_log_probs()
            self._log_probs = out
        return self._log_probs


@dataclass(frozen=True)
class Craft:
    """What the critic, the motif work and the dynamics offer (:mod:`improv.craft`):
    ``score(notes, situation) -> Scores`` (``.total``, ``.parts``),
    ``seeds(situation, rng, count) -> [Seed(transform, notes)]``,
    ``dynamics(notes, situation) -> notes``. Any may be None."""

    score: Callable[[Sequence[Note], Situation], Any] | None = None
    seeds: Callable[[Situation, np.random.Generator, int], Sequence[Any]] | None = None
    dynamics: Callable[[Sequence[Note], Situation], Sequence[Note]] | None = None


MODEL_HARMONY = (0.0, 0.0)
"""Chord weights (bonus for chord tones on strong beats, penalty outside the chord and
blues scales) of a neural model: none, since its harmony bias already knows the chords
and the critic weighs chord fit; weighted as well, the chosen answers sat inside the
changes more than players do (models/README.md)."""
MARKOV_HARMONY = (1.0, 3.0)
"""The Markov model's: it hears the chord only through its last few tokens, so it needs
stronger weights to stay inside the changes."""


def load_craft() -> Craft:
    """The critic, the motif seeds and the dynamics (:mod:`improv.craft`), for drafting."""
    from improv.craft.critic import score
    from improv.craft.dynamics import shape_dynamics
    from improv.craft.motif import seeds

    return Craft(score=score, seeds=seeds, dynamics=shape_dynamics)


@dataclass(frozen=True)
class Start:
    """Where drafting starts: the stream right after the agent's phrase token.

    ``lm`` and ``grammar`` stand at that point; ``encoder`` (at the same point) encodes
    seeds; ``chords`` is the form's chord source. Ticks count from beat 0.
    """

    lm: StreamingLM
    grammar: GrammarState
    encoder: StreamEncoder
    chords: ChordSource


def start_for(
    lm: StreamingLM,
    call: Sequence[Note],
    *,
    key: int,
    metre: Metre,
    chords: Sequence[ChordChange],
    start: float,
    context: Sequence[Note] = (),
) -> Start:
    """A fresh stream that has heard (the context and) the call, at an agent phrase
    starting at ``start``: how ``improv eval`` answers a pair. Beats count from bar 0."""
    encoder, tokens = prime(
        lm, call, key=key, metre=metre, chords=chords, start=start, context=context
    )
    grammar = GrammarState(metre, key)
    for token in tokens:
        grammar.feed(token)
    return Start(lm, grammar, encoder, chords)


@dataclass(frozen=True)
class Composition:
    """The chosen answer and how it was chosen."""

    notes: tuple[Note, ...]
    candidates: int  # complete candidates drafted
    scores: Any | None  # the winner's Scores; None without a critic
    transform: str  # the winner's seed transform, or "free"
    elapsed_ms: float
    batches: int


@dataclass
class Pace:
    """What a batch step costs and how many steps an answer takes, learnt as drafting
    goes (exponential averages): the anytime loop's forecast of a batch's time."""

    step_s: dict[int, float] = field(default_factory=dict)  # by batch size
    steps_per_beat: float | None = None

    def predict(self, rows: int, beats: float) -> float | None:
        """Seconds a batch of ``rows`` would take for ``beats`` beats; None if unknown."""
        if self.steps_per_beat is None or not self.step_s:
            return None
        known = [b for b in self.step_s if b <= rows]
        if known:
            base = max(known)
            step = self.step_s[base] * (rows / base)  # linear: an overestimate on a CPU
        else:
            step = self.step_s[min(self.step_s)]
        return step * self.steps_per_beat * max(beats, 1.0)

    def learn(self, rows: int, steps: int, seconds: float, beats: float) -> None:
        if steps <= 0:
            return
        step = seconds / steps
        old = self.step_s.get(rows)
        self.step_s[rows] = step if old is None else 0.7 * old + 0.3 * step
        per_beat = steps / max(beats, 1.0)
        spb = self.steps_per_beat
        self.steps_per_beat = per_beat if spb is None else 0.7 * spb + 0.3 * per_beat


def answer_constraints(
    situation: Situation, *, harmony: ChordWeights | None = None
) -> ResponseConstraints:
    """Where an answer plays: trade mode fills most of its slot (its last note ending
    between 0.65 and 0.875 of it: a breath before the next call); phrase mode lasts
    about as long as the call."""
    length = situation.length
    breath = min(2.0, max(0.5, length / 8.0))  # a 2-bar answer ends by 0.875 of its slot
    if situation.mode == "phrase" and situation.call:
        span = max(n.end for n in situation.call) - situation.call[0].onset
        target = min(length, max(1.0, span))
        min_end = situation.start + 0.75 * target
        deadline = min(situation.end - breath, situation.start + 1.25 * target + 0.5)
    else:
        min_end = situation.start + 0.65 * length
        deadline = situation.end - breath
    deadline = max(deadline, situation.start + min(length, 0.25))
    return ResponseConstraints(
        start=situation.start,
        deadline=deadline,
        pitch_range=situation.pitch_range,
        min_notes=3,
        min_end=min(min_end, deadline),
        harmony=harmony,
    )


class _Row:
    """One candidate's view of the batch, as the sampler's model: what the sampler
    emits waits in ``pending`` until the batch has heard it."""

    vocab_size = VOCAB.size

    def __init__(self) -> None:
        self.pending: deque[int] = deque()
        self.log_probs: np.ndarray | None = None

    def advance(self, tokens: Sequence[int]) -> None:
        self.pending.extend(tokens)
        self.log_probs = None

    def next_log_probs(self) -> np.ndarray:
        assert self.log_probs is not None and not self.pending
        return self.log_probs


@dataclass(eq=False)
class _Candidate:
    transform: str
    seed_tokens: list[int]
    sampler: ResponseSampler
    row: _Row


def _seed_tokens(
    start: Start, notes: Sequence[Note], constraints: ResponseConstraints
) -> tuple[list[int], float]:
    """A seed's notes as the agent's first tokens, and where free drafting goes on.
    Notes outside the window or the range, or overlapping, are left out."""
    encoder = start.encoder.copy()
    lo, hi = constraints.pitch_range
    limit = constraints.deadline if constraints.deadline is not None else math.inf
    tokens: list[int] = []
    at = constraints.start
    for note in sorted(notes, key=lambda n: n.onset):
        if note.onset < at - 1e-9 or note.end > limit - 0.25 or not lo <= note.pitch <= hi:
            continue
        tokens += encoder.note_on(note.pitch, note.velocity, note.onset)
        tokens += encoder.note_off(note.pitch, note.end)
        at = note.end
    return tokens, at


def _decoder(grammar: GrammarState) -> StreamDecoder:
    decoder = StreamDecoder(grammar.key, grammar.metre)
    for slot in GrammarState.__slots__:
        setattr(decoder, slot, getattr(grammar, slot))
    return decoder


def _notes(
    start: Start, tokens: Sequence[int], window_start: float, *, flush: bool = True
) -> tuple[Note, ...]:
    decoder = _decoder(start.grammar)
    events = decoder.feed_all(tokens) + (decoder.flush() if flush else [])
    return tuple(
        e.note for e in events if isinstance(e, NoteEnd) and e.note.onset >= window_start - 1e-9
    )


def _draft_batch(
    start: Start,
    batch: Batch,
    plans: Sequence[tuple[str, Sequence[Note]]],
    constraints: ResponseConstraints,
    options: SamplingOptions,
    rng: np.random.Generator,
    until: float,
    clock: Callable[[], float],
) -> tuple[list[tuple[str, tuple[Note, ...]]], int, bool]:
    """One batch of candidates (a (transform, seed notes) plan each): the notes of those
    that finished, the batch steps taken, and whether all finished before ``until``.
    When none finished in time, the one that got furthest ends where it stands (a
    shorter answer of the model's own, rather than the fallback's)."""
    state = start.lm.snapshot()
    try:
        return _run_batch(start, batch, state, plans, constraints, options, rng, until, clock)
    finally:
        start.lm.restore(state)  # a batch over a single stream moved it


def _run_batch(
    start: Start,
    batch: Batch,
    state: object,
    plans: Sequence[tuple[str, Sequence[Note]]],
    constraints: ResponseConstraints,
    options: SamplingOptions,
    rng: np.random.Generator,
    until: float,
    clock: Callable[[], float],
) -> tuple[list[tuple[str, tuple[Note, ...]]], int, bool]:
    batch.fill(state)
    candidates: list[_Candidate] = []
    for transform, seed in plans:
        row = _Row()
        grammar = start.grammar.copy()
        tokens: list[int] = []
        where = constraints
        if seed:
            tokens, after = _seed_tokens(start, seed, constraints)
            for token in tokens:
                grammar.feed(token)
            where = replace(constraints, start=after)
            row.pending.extend(tokens)
        sampler = ResponseSampler(
            row,  # type: ignore[arg-type]  # a StreamingLM as far as the sampler looks
            grammar,
            where,
            start.chords,
            options=options,
            rng=np.random.default_rng(rng.integers(2**63)),
        )
        candidates.append(_Candidate(transform if tokens else FREE, tokens, sampler, row))
    steps = 0
    feed = np.zeros(batch.rows, dtype=np.int64)
    active = np.zeros(batch.rows, dtype=bool)
    while True:
        if clock() > until:  # out of time: the finished candidates, else the furthest cut
            done = [c for c in candidates if c.sampler.done and not c.row.pending]
            if done or not candidates:
                return [_result(start, c, constraints) for c in done], steps, False
            furthest = max(candidates, key=lambda c: len(c.sampler.tokens))
            cut = _result(start, furthest, constraints, complete_only=True)
            return ([cut] if cut[1] else []), steps, False
        waiting = [c for c in candidates if not c.row.pending and not c.sampler.done]
        if waiting:
            log_probs = batch.next_log_probs()
            for index, c in enumerate(candidates):
                if c in waiting:
                    c.row.log_probs = log_probs[index]
                    if len(c.sampler.tokens) >= MAX_TOKENS:
                        c.sampler.run(MAX_TOKENS)  # ends the phrase at once
                    else:
                        c.sampler.draw_once()
        active[:] = False
        for index, c in enumerate(candidates):
            if c.row.pending:
                feed[index] = c.row.pending.popleft()
                active[index] = True
        if not active.any():
            break
        batch.advance(feed, active)
        steps += 1
    return [_result(start, c, constraints) for c in candidates], steps, True


def _result(
    start: Start,
    candidate: _Candidate,
    constraints: ResponseConstraints,
    *,
    complete_only: bool = False,
) -> tuple[str, tuple[Note, ...]]:
    """A candidate's notes (``complete_only``: those whose duration is known; the
    answer of a candidate cut short ends with its last whole note)."""
    tokens = candidate.seed_tokens + candidate.sampler.tokens
    return candidate.transform, _notes(start, tokens, constraints.start, flush=not complete_only)


def compose(
    start: Start,
    situation: Situation,
    *,
    batch_for: Callable[[int], Batch],
    craft: Craft,
    options: SamplingOptions,
    rng: np.random.Generator,
    until: float,
    max_candidates: int = 32,
    pace: Pace | None = None,
    constraints: ResponseConstraints | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Composition | None:
    """The best of as many candidates as fit before ``until`` (``clock`` time), or None
    when not one completed. ``batch_for(rows)`` gives a batch of the model with at
    least ``rows`` rows; ``pace`` carries batch timings from answer to answer.
    """
    t0, cpu0 = clock(), time.thread_time()
    pace = pace if pace is not None else Pace()
    constraints = constraints or answer_constraints(situation)
    beats = situation.length
    seeds = list(craft.seeds(situation, rng, 4)) if craft.seeds is not None else []
    free = int(rng.integers(FREE_EVERY))  # which of every FREE_EVERY drafts starts free
    best: tuple[float, str, tuple[Note, ...], Any] | None = None
    drafted = batches = 0
    while drafted < max_candidates:
        room = until - clock()
        size = _batch_size(pace, room, beats, max_candidates - drafted, first=drafted == 0)
        if size == 0:
            break
        plans: list[tuple[str, Sequence[Note]]] = []
        for index in range(drafted, drafted + size):
            if seeds and index % FREE_EVERY != free:
                seed = seeds[index % len(seeds)]
                plans.append((str(seed.transform), tuple(seed.notes)))
            else:
                plans.append((FREE, ()))
        t = clock()
        rows = batch_for(size)
        drafted_notes, steps, complete = _draft_batch(
            start, rows, plans, constraints, options, rng, until, clock
        )
        if complete:
            pace.learn(size, steps, clock() - t, beats)
        batches += 1
        for transform, notes in drafted_notes:
            drafted += 1
            scores = craft.score(notes, situation) if craft.score is not None else None
            total = float(scores.total) if scores is not None else 0.0
            if best is None or total > best[0]:
                best = (total, transform, notes, scores)
        if craft.score is None or not complete:
            break  # nothing to choose with (one candidate is enough), or out of time
    log.debug(
        "compose: %d candidates in %d batches, %.1f of %.1f ms (%.1f ms on this thread)",
        drafted,
        batches,
        (clock() - t0) * 1000.0,
        (until - t0) * 1000.0,
        (time.thread_time() - cpu0) * 1000.0,
    )
    if best is None:
        return None
    _, transform, notes, scores = best
    if craft.dynamics is not None:
        notes = tuple(craft.dynamics(notes, situation))
    return Composition(notes, drafted, scores, transform, (clock() - t0) * 1000.0, batches)


def batch_device(spec: str) -> str | None:
    """``--device``: ``cpu`` drafts on numpy batches (the fastest on a CPU), ``cuda`` on
    torch batches on the GPU, ``auto`` the GPU when torch sees one. None means numpy."""
    import torch

    if spec not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda: {spec!r}")
    if spec == "cpu":
        return None
    if torch.cuda.is_available():
        return "cuda"
    if spec == "cuda":
        raise ValueError("device cuda: torch sees no CUDA device (torch.cuda.is_available())")
    return None


def batch_maker(lm: StreamingLM, device: str | None = None) -> Callable[[int], Batch]:
    """``rows -> batch`` for a model's stream, batches kept for reuse: the neural
    streams' own batched steps (numpy, or torch on ``device``), any other model (and
    a single row on the CPU) through :class:`RowsBatch`."""
    from improv.model.inputs import Backend
    from improv.model.lstm import LSTMBatch, LSTMStream
    from improv.model.transformer import TransformerBatch, TransformerStream

    made: dict[int, Batch] = {}

    def make(rows: int) -> Batch:
        batch = made.get(rows)
        if batch is None:
            if rows == 1 and device is None:  # the stream's own step is the quickest
                batch = RowsBatch(lm, 1)
            elif isinstance(lm, LSTMStream):
                batch = LSTMBatch(lm, rows, Backend(device))
            elif isinstance(lm, TransformerStream):
                batch = TransformerBatch(lm, rows, Backend(device))
            else:
                batch = RowsBatch(lm, rows)
            made[rows] = batch
        return batch

    return make


def _batch_size(pace: Pace, room: float, beats: float, left: int, *, first: bool) -> int:
    """1 for an answer's first batch (one candidate soon, whatever the load), then the
    largest batch predicted to finish in most of the ``room`` left (seconds)."""
    if first:
        return 1 if room > 0 else 0
    fitting = 0
    for size in BATCH_SIZES:
        if size > left:
            break
        predicted = pace.predict(size, beats)
        if predicted is None:
            break
        if predicted <= 0.8 * room:
            fitting = size
    return fitting
