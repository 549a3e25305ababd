"""Answers generated off the loop thread, ahead of playback, under a deadline.

A :class:`Responder` (neural model, Markov model or rules) turns an
:class:`AnswerRequest` into notes, one at a time, on its own worker thread. The loop
side, :class:`AnswerPlayer`, takes each note as it comes and hands it to the agent's
``play`` callback (the scheduler) well before it sounds, while a watchdog checks that
generation keeps ahead: the position up to which the answer is decided must be ready
``margin`` seconds before it is due. When it is not, the player does not wait: it
switches to the fallback drafted at planning time (Markov, then rules; drafted on a
worker of its own, so a stuck model cannot hold it up) and continues the phrase from
that position, octave-matched to where the melody is. So a note is never sent late; a
miss is counted, and so is every note the fallback plays.

Why drafts, not a fallback model started at the miss: at the miss there is no time left
to compute anything; a draft made at planning time costs a few milliseconds that are
idle anyway and is ready the moment it is needed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from improv.engine.context import ContextEvent
from improv.music.notes import ChordChange, Note
from improv.music.pitch import Key
from improv.music.time import Metre, to_beats

log = logging.getLogger(__name__)

TICK = to_beats(1)
"""The grid step: after a note at x, the next one may come as early as x + TICK."""


@dataclass(frozen=True, slots=True)
class Chosen:
    """How a responder chose its answer, yielded before its notes: the candidates it
    drafted and the winner's scores. ``candidates`` 0: none was ready in time, and the
    fallback plays the answer."""

    candidates: int
    critic_total: float | None = None
    critic_parts: dict[str, float] | None = None
    transform: str | None = None


Item = Note | float | Chosen
"""What a responder yields: how the answer was chosen, a note (absolute onset, beats), or
the position up to which the answer is decided without a note (a rest)."""

COMPOSE_SAFETY_S = 0.03
COMPOSE_SAFETY_SHARE = 0.2
"""Drafting stops this long (or this share of the time to the first deadline, if more)
before the watchdog's first deadline: the chosen notes still have to reach the loop
through a busy machine's scheduler."""


@dataclass(frozen=True, slots=True)
class AnswerRequest:
    """What an answer is for. All positions are jam beats (from bar 0, beat 0)."""

    start: float
    end: float
    call: tuple[Note, ...]
    chords: tuple[ChordChange, ...]  # in force over the call and the answer
    metre: Metre
    key: Key
    pitch_range: tuple[int, int]
    velocity: int = 80  # the call's typical velocity: the answer's dynamics follow it
    density: float = 2.0  # the call's notes per beat
    temperature: float = 1.0
    top_p: float = 0.95
    seed: int = 0
    turn: int = 0
    mode: str = "trade"
    compose_until: float | None = None  # monotonic time by which the answer is chosen

    @property
    def length(self) -> float:
        return self.end - self.start


@runtime_checkable
class Responder(Protocol):
    """Makes answers. Every method runs on the responder's own worker thread."""

    @property
    def name(self) -> str: ...

    def listen(self, events: Sequence[ContextEvent]) -> None:
        """Things that happened, in time order: advance the rolling state."""
        ...

    def rewind(self) -> None:
        """Undo what drafting the last answer added to the state (the answer as really
        played, and what the performer did meanwhile, follow through :meth:`listen`)."""
        ...

    def respond(
        self, request: AnswerRequest, played: Sequence[Note], position: float
    ) -> Iterator[Item]:
        """The answer's notes in onset order from ``position`` on, after ``played``."""
        ...

    def learn(self, call: Sequence[Note], request: AnswerRequest) -> None:
        """Learn from the performer's finished call (models that learn online)."""
        ...


def shape(note: Note, request: AnswerRequest) -> Note | None:
    """Fit a generated note to the answer: inside its window and the instrument's range.
    Dynamics are the responder's (once, by the craft's dynamics). None when nothing of
    it is left."""
    if note.onset < request.start - 1e-9 or note.onset >= request.end - 1e-9:
        return None
    lo, hi = request.pitch_range
    pitch = note.pitch
    while pitch < lo:
        pitch += 12
    while pitch > hi:
        pitch -= 12
    if not lo <= pitch <= hi:
        return None
    velocity = max(1, min(127, note.velocity))
    duration = min(note.duration, request.end - note.onset)
    return Note(pitch, velocity, note.onset, duration)


def _one_thread() -> None:
    """Model threads do one thing at a time: no intra-op thread pools fighting for cores
    (torch's, and the BLAS under numpy: a batch of 8 steps 4x slower with its threads)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


class Worker:
    """One named thread that runs a responder's calls in order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name, initializer=_one_thread)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        return self._pool.submit(_logged, self.name, fn, *args)

    def close(self, wait: bool = False) -> None:
        """Stop; ``wait`` lets queued calls finish first, else they are dropped."""
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


def _logged(worker: str, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception:
        log.exception("%s: %s failed", worker, getattr(fn, "__qualname__", fn))
        raise


# --- figures -----------------------------------------------------------------------------


@dataclass(slots=True)
class AnswerFigures:
    """What one answer cost and how close it came to its deadlines."""

    turn: int
    source: str = ""
    notes: int = 0
    fallback_notes: int = 0
    deadline_misses: int = 0
    generation_ms: float = 0.0  # time the responder spent computing this answer
    first_note_ms: float | None = None  # from planning to the first note being ready
    headroom_ms_min: float | None = None  # least time between a note being ready and due
    first_onset: float | None = None  # position of the answer's first note (beats)
    first_time: float | None = None  # when the first note is scheduled (monotonic s)
    candidates: int = 0  # candidate answers drafted (0: the responder chose none)
    critic_total: float | None = None  # the winner's scores
    critic_parts: dict[str, float] | None = None
    transform: str | None = None  # the winner's motif transform, or "free"

    def headroom(self, ms: float) -> None:
        if self.headroom_ms_min is None or ms < self.headroom_ms_min:
            self.headroom_ms_min = ms


@dataclass(slots=True)
class GeneratorStats:
    answers: int = 0
    notes: int = 0
    fallback_notes: int = 0
    deadline_misses: int = 0
    headroom_ms_min: float | None = None
    generation_ms: list[float] = field(default_factory=list)
    candidates: list[int] = field(default_factory=list)  # per answer
    critic_totals: list[float] = field(default_factory=list)
    transforms: dict[str, int] = field(default_factory=dict)

    def add(self, figures: AnswerFigures) -> None:
        self.answers += 1
        self.candidates.append(figures.candidates)
        if figures.critic_total is not None:
            self.critic_totals.append(figures.critic_total)
        if figures.transform is not None:
            self.transforms[figures.transform] = self.transforms.get(figures.transform, 0) + 1
        self.notes += figures.notes
        self.fallback_notes += figures.fallback_notes
        self.deadline_misses += figures.deadline_misses
        self.generation_ms.append(figures.generation_ms)
        if figures.headroom_ms_min is not None and (
            self.headroom_ms_min is None or figures.headroom_ms_min < self.headroom_ms_min
        ):
            self.headroom_ms_min = figures.headroom_ms_min


# --- the worker side ---------------------------------------------------------------------


def frozen_pace(
    time_of: Callable[[float], float], start: float, end: float
) -> Callable[[float], float]:
    """The answer's beats -> seconds map, read once on the loop (which owns the clock)
    and handed to the worker as plain numbers: the worker only paces its drafting by
    it, so a tempo change during the answer costs a little lookahead, never a race."""
    span = max(end - start, 1.0)
    t0, t1 = time_of(start), time_of(start + span)
    if not (math.isfinite(t0) and math.isfinite(t1)):
        return lambda _beats: math.inf
    rate = (t1 - t0) / span
    return lambda beats: t0 + (beats - start) * rate


_DONE = object()


def _produce(
    responder: Responder,
    request: AnswerRequest,
    played: tuple[Note, ...],
    position: float,
    sink: Callable[[object, float], None],
    cancel: threading.Event,
    pace: Callable[[float], float],
    lookahead_s: float,
    chosen: threading.Event,
) -> None:
    """Run on a worker: pull notes from the responder, hand each to the loop at once,
    and rest while generation is more than ``lookahead_s`` ahead of playback. ``chosen``
    is set once the responder has chosen its answer (or given up)."""
    spent = 0.0
    try:
        items = responder.respond(request, played, position)
        while not cancel.is_set():
            t0 = time.perf_counter()
            item = next(items, _DONE)
            spent += time.perf_counter() - t0
            if item is _DONE:
                break
            assert isinstance(item, Note | float | Chosen)
            sink(item, spent)
            if isinstance(item, Chosen):
                chosen.set()
                continue
            at = item.onset if isinstance(item, Note) else item
            while (wait := pace(at) - lookahead_s - time.monotonic()) > 0:
                if cancel.wait(min(wait, 1.0)):  # a stopped clock paces at infinity
                    break
    finally:
        chosen.set()
        sink(_DONE, spent)


def draft(
    responder: Responder, request: AnswerRequest, chosen: threading.Event | None = None
) -> list[Note]:
    """A whole answer at once (a fallback draft), on the responder's worker. It waits
    until the primary has chosen its answer (at most until the primary's time is up):
    drafting alongside would take half the primary's time (one interpreter lock)."""
    if chosen is not None and request.compose_until is not None:
        chosen.wait(max(0.0, request.compose_until - time.monotonic()))
    notes: list[Note] = []
    request = replace(request, compose_until=None)  # a draft is not needed before a miss
    for item in responder.respond(request, (), request.start):
        if isinstance(item, Note):
            notes.append(item)
    return notes


# --- the loop side -----------------------------------------------------------------------

PlayFn = Callable[[Note, str], bool]
"""The agent's callback: schedule this (shaped) note; ``source`` names who made it.
Returns False when the note could not be scheduled in time."""


class AnswerPlayer:
    """One answer on the loop: takes notes from the primary responder, watches the
    deadline and switches to the fallback drafts when it is missed."""

    def __init__(
        self,
        request: AnswerRequest,
        *,
        loop: asyncio.AbstractEventLoop,
        time_of: Callable[[float], float],
        play: PlayFn,
        margin_s: float,
        drafts: Sequence[tuple[str, Future[list[Note]]]],
        inline_fallback: Callable[[], list[Note]] | None,
        on_done: Callable[[AnswerPlayer], None],
        chosen: threading.Event | None = None,
    ) -> None:
        self.request = request
        self.figures = AnswerFigures(turn=request.turn)
        self._loop = loop
        self._time_of = time_of
        self._play = play
        self._margin_s = margin_s
        self._drafts = list(drafts)
        self._inline_fallback = inline_fallback
        self._on_done = on_done
        self._cancel = threading.Event()
        self.chosen = chosen or threading.Event()  # the primary has chosen its answer
        self._decided = request.start  # the answer is known up to here (beats)
        self._last_pitch: int | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._planned_at = time.monotonic()
        self._source = ""
        self.finished = False
        self.played: list[Note] = []

    # called by the generator --------------------------------------------------------

    def start(self, worker: Worker, responder: Responder, lookahead_s: float) -> None:
        self._source = responder.name
        self.figures.source = responder.name
        worker.submit(
            _produce,
            responder,
            self.request,
            (),
            self.request.start,
            self._from_worker,
            self._cancel,
            frozen_pace(self._time_of, self.request.start, self.request.end),
            lookahead_s,
            self.chosen,
        )
        self._arm()

    def cancel(self, at: float) -> None:
        """Stop generating; nothing at or after ``at`` will be played from here on."""
        self._cancel.set()
        self.request = replace(self.request, end=min(self.request.end, max(at, self.request.start)))
        self._finish()

    # worker -> loop ---------------------------------------------------------------------

    def _from_worker(self, item: object, spent: float) -> None:
        """On the worker thread: hop to the loop (cheap; never blocks)."""
        try:
            self._loop.call_soon_threadsafe(self._on_item, item, spent)
        except RuntimeError:  # the loop is closed: the jam is over
            self._cancel.set()

    def _on_item(self, item: object, spent: float) -> None:
        self.figures.generation_ms = spent * 1000.0
        if self.finished or self._cancel.is_set():
            return
        if item is _DONE:
            self._decided = self.request.end
            self._finish()
            return
        if isinstance(item, float):
            self._advance(item)
            return
        if isinstance(item, Chosen):
            self._chosen(item)
            return
        assert isinstance(item, Note)
        if self.figures.first_note_ms is None:
            self.figures.first_note_ms = (time.monotonic() - self._planned_at) * 1000.0
        self._emit(item, self._source, primary=True)
        self._advance(item.onset + TICK)

    # playing ----------------------------------------------------------------------------

    def _emit(self, note: Note, source: str, *, primary: bool) -> None:
        shaped = shape(note, self.request)
        if shaped is None:
            return
        due = self._time_of(shaped.onset)
        headroom_ms = (due - time.monotonic()) * 1000.0
        if not self._play(shaped, source):
            self.figures.deadline_misses += 1  # too late to schedule: dropped, not late
            return
        self.figures.headroom(headroom_ms)
        self.figures.notes += 1
        if not primary:
            self.figures.fallback_notes += 1
        if self.figures.first_onset is None:
            self.figures.first_onset = shaped.onset
            self.figures.first_time = due
        self._last_pitch = shaped.pitch
        self.played.append(shaped)

    def _advance(self, position: float) -> None:
        if position > self._decided:
            self._decided = position
            if self._decided >= self.request.end - 1e-9:
                self._finish()
            else:
                self._arm()

    def _arm(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        due = self._time_of(self._decided) - self._margin_s
        self._watchdog = self._loop.call_at(due, self._on_deadline)

    def _chosen(self, chosen: Chosen) -> None:
        figures = self.figures
        figures.candidates = chosen.candidates
        figures.critic_total = chosen.critic_total
        figures.critic_parts = chosen.critic_parts
        figures.transform = chosen.transform
        if chosen.candidates == 0:
            log.info(
                "answer %d: %s drafted no answer in time: the fallback plays it",
                self.request.turn,
                self._source,
            )
            self._fall_back()  # a draft if one is ready, else the rules: never late

    def _on_deadline(self) -> None:
        self._watchdog = None
        if self.finished:
            return
        self.figures.deadline_misses += 1
        log.info(
            "answer %d: %s missed its deadline at beat %.2f: fallback continues",
            self.request.turn,
            self._source,
            self._decided,
        )
        self._fall_back()

    def _fall_back(self) -> None:
        """The fallback draft plays the answer from where it is decided on; should the
        last resort itself fail, the answer ends with what it played."""
        self._cancel.set()
        try:
            name, notes = self._fallback()
            shift = _octave_shift(notes, self._decided, self._last_pitch)
            for note in notes:
                if note.onset >= self._decided - 1e-9:
                    self._emit(_transpose(note, shift), name, primary=False)
        except Exception:
            log.exception("answer %d: the fallback failed; the answer ends here", self.request.turn)
        finally:
            self._decided = self.request.end
            self._finish()

    def _fallback(self) -> tuple[str, list[Note]]:
        """The best draft ready now; the rules inline only if no draft is."""
        for name, future in self._drafts:
            if future.done() and not future.cancelled() and future.exception() is None:
                return name, future.result()
        if self._inline_fallback is not None:
            return "rules", self._inline_fallback()
        return "none", []

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        self._cancel.set()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._on_done(self)


def _transpose(note: Note, semitones: int) -> Note:
    if semitones == 0:
        return note
    return Note(min(127, max(0, note.pitch + semitones)), note.velocity, note.onset, note.duration)


def _octave_shift(notes: Sequence[Note], position: float, last_pitch: int | None) -> int:
    """Octaves that bring the draft's continuation next to where the melody is."""
    if last_pitch is None:
        return 0
    following = [n.pitch for n in notes if n.onset >= position - 1e-9]
    if not following:
        return 0
    gap = last_pitch - following[0]
    return 12 * round(gap / 12)


# --- the whole -------------------------------------------------------------------------


class Generator:
    """The responders, their workers, and the answer being played.

    ``primary`` runs on the ``improv-model`` thread; the fallbacks (Markov, rules) share
    the ``improv-fallback`` thread and draft every answer when it is planned;
    ``inline`` is the last resort, cheap enough for the loop thread (see
    :func:`improv.engine.responders.echo_answer`).
    """

    def __init__(
        self,
        primary: Responder,
        fallbacks: Sequence[Responder],
        inline: Callable[[AnswerRequest], list[Note]],
        *,
        lookahead_s: float,
        margin_s: float,
    ) -> None:
        self.primary = primary
        self.fallbacks = list(fallbacks)
        self.inline = inline
        self.lookahead_s = lookahead_s
        self.margin_s = margin_s
        self.stats = GeneratorStats()
        self.current: AnswerPlayer | None = None
        self._model_worker = Worker("improv-model")
        self._fallback_worker = Worker("improv-fallback")

    def _each(self) -> list[tuple[Worker, Responder]]:
        pairs = [(self._model_worker, self.primary)]
        return pairs + [(self._fallback_worker, f) for f in self.fallbacks]

    def listen(self, events: Sequence[ContextEvent]) -> None:
        """Every responder advances its state (on its worker)."""
        for worker, responder in self._each():
            worker.submit(responder.listen, tuple(events))

    def rewind(self, events: Sequence[ContextEvent]) -> None:
        """After an answer: each responder undoes its draft and hears what happened."""
        for worker, responder in self._each():
            worker.submit(_rewind, responder, tuple(events))

    def learn(self, call: Sequence[Note], request: AnswerRequest) -> None:
        for worker, responder in self._each():
            worker.submit(responder.learn, tuple(call), request)

    def set_primary(self, responder: Responder) -> None:
        """Use another responder from the next answer on."""
        self.primary = responder

    @property
    def composing(self) -> bool:
        """Whether an answer is being drafted now (not yet chosen): while it is, other
        work of this process should leave the CPU (and the GIL) to the model thread."""
        current = self.current
        return current is not None and not current.finished and not current.chosen.is_set()

    def answer(
        self,
        request: AnswerRequest,
        *,
        loop: asyncio.AbstractEventLoop,
        time_of: Callable[[float], float],
        play: PlayFn,
        on_done: Callable[[AnswerPlayer], None],
    ) -> AnswerPlayer:
        """Start generating an answer; it plays through ``play`` as notes come."""
        if self.current is not None and not self.current.finished:
            self.current.cancel(request.start)
        due = time_of(request.start) - self.margin_s
        safety = max(COMPOSE_SAFETY_S, COMPOSE_SAFETY_SHARE * (due - time.monotonic()))
        request = replace(request, compose_until=due - safety)
        chosen = threading.Event()
        drafts = [
            (f.name, self._fallback_worker.submit(draft, f, request, chosen))
            for f in self.fallbacks
        ]

        def done(player: AnswerPlayer) -> None:
            self.stats.add(player.figures)
            on_done(player)

        player = AnswerPlayer(
            request,
            loop=loop,
            time_of=time_of,
            play=play,
            margin_s=self.margin_s,
            drafts=drafts,
            inline_fallback=lambda: self.inline(request),
            on_done=done,
            chosen=chosen,
        )
        self.current = player
        player.start(self._model_worker, self.primary, self.lookahead_s)
        return player

    def close(self, wait: bool = False) -> None:
        if self.current is not None and not self.current.finished:
            self.current.cancel(self.current.request.start)
        self._model_worker.close(wait)
        self._fallback_worker.close(wait)


def _rewind(responder: Responder, events: Sequence[ContextEvent]) -> None:
    responder.rewind()
    responder.listen(events)
