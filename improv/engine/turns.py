"""Turn-taking: who plays now, as a pure state machine.

``step(state, event, now) -> (state, actions)``: ``now`` is the jam position in beats
(quarter notes from bar 0), passed in by the agent and never read here, so every rule
can be tested exhaustively without a clock. The agent carries the actions out and asks
:func:`next_wakeup` when to send the next :class:`Tick`.

Two modes:

- ``trade`` with form-locked slots (``slots=form``, the default): the form is cut into
  slots of ``bars`` bars from bar 0, the performer's and improv's in turn (the
  performer's first unless ``first=improv``), as a band trades fours. What the
  performer plays in their slot (a note in the last ``pickup_beats`` before it counts
  for it) is the call; improv answers in the next slot, whatever bar the call began in.
  With ``slots=follow`` the call is ``bars`` bars from the bar line of its first note.
- ``phrase``: the call ends after a silence gap (held keys and the sustain pedal count
  as sounding). The gap grows with the phrase's length, is shorter at a bar's end or
  after a cadence (a held or strong-beat last note) than mid-bar, so a breath is not a
  phrase end (:meth:`TurnState.gap`); the answer starts on the next beat or half bar
  and lasts about as long as the call, within bounds. The performer coming back in
  always ends an answer at once (with ``barge_in=yield``), never a note later.

The answer is planned ``lead_beats`` before it starts (:class:`AnswerPlanned`), so the
generator can draft it while the performer finishes. Barge-in (the performer plays over
an answer) either yields at once or keeps going, by :attr:`TurnParams.barge_in`.
:class:`Relocate` (the transport started, stopped, continued or jumped) ends whatever
was planned or playing and forgets the call: positions before it mean nothing after.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import StrEnum
from statistics import median

EPS = 1e-9


class Mode(StrEnum):
    TRADE = "trade"
    PHRASE = "phrase"


class BargeIn(StrEnum):
    YIELD = "yield"
    KEEP = "keep"


class Align(StrEnum):
    """Where a phrase-mode answer may start."""

    BEAT = "beat"
    HALF_BAR = "half-bar"


class Slots(StrEnum):
    """How trade mode finds the turns: fixed slots of the form, or the call's first note."""

    FORM = "form"
    FOLLOW = "follow"


class First(StrEnum):
    """Whose slot comes first in form-locked trades."""

    PERFORMER = "performer"
    IMPROV = "improv"


class Phase(StrEnum):
    WAITING = "waiting"  # no call yet: the performer may start whenever
    CALLING = "calling"  # the performer's call is in progress
    PENDING = "pending"  # the call is (about to be) over; the answer is planned
    ANSWERING = "answering"  # the agent's answer is playing
    IDLE = "idle"  # paused: nothing is answered


@dataclass(frozen=True, slots=True)
class TurnParams:
    """The rules of the game. ``lead_beats`` is the generator's preparation time."""

    mode: Mode = Mode.TRADE
    bars: int = 4
    beats_per_bar: float = 4.0
    barge_in: BargeIn = BargeIn.YIELD
    gap_beats: float = 1.0
    adaptive_gap: bool = True
    align: Align = Align.BEAT
    min_answer_beats: float = 2.0
    max_answer_beats: float = 16.0
    pickup_beats: float = 0.5
    grace_beats: float = 0.5
    stuck_beats: float = 8.0
    lead_beats: float = 0.25
    slots: Slots = Slots.FORM
    first: First = First.PERFORMER
    shaped_gap: bool = True  # the gap follows phrase length, bar position and cadence
    long_phrase_gap: float = 0.25  # extra gap per bar of phrase (up to 4 bars)

    def __post_init__(self) -> None:
        if self.bars < 1:
            raise ValueError(f"bars per turn must be at least 1: {self.bars}")
        if self.beats_per_bar <= 0:
            raise ValueError(f"beats per bar must be positive: {self.beats_per_bar}")
        if self.gap_beats <= 0:
            raise ValueError(f"silence gap must be positive: {self.gap_beats}")
        if not 0 < self.min_answer_beats <= self.max_answer_beats:
            raise ValueError("answer bounds must satisfy 0 < min <= max")
        if self.lead_beats < 0 or self.pickup_beats < 0 or self.grace_beats < 0:
            raise ValueError("lead, pickup and grace must not be negative")

    @property
    def turn_beats(self) -> float:
        return self.bars * self.beats_per_bar


# --- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoteOn:
    pitch: int
    velocity: int = 100


@dataclass(frozen=True, slots=True)
class NoteOff:
    pitch: int


@dataclass(frozen=True, slots=True)
class Pedal:
    down: bool


@dataclass(frozen=True, slots=True)
class Tick:
    """Time has passed: deadlines due at ``now`` are acted on."""


@dataclass(frozen=True, slots=True)
class AnswerDone:
    """The agent has played the whole answer (phrase mode ends the turn early)."""


@dataclass(frozen=True, slots=True)
class Pause:
    """Stop answering (``on``) or start listening again."""

    on: bool


@dataclass(frozen=True, slots=True)
class Relocate:
    """The transport started, stopped, continued or jumped: ``now`` is the new position.
    What was planned or playing ends; the call is forgotten."""


Event = NoteOn | NoteOff | Pedal | Tick | AnswerDone | Pause | Relocate


# --- actions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallStarted:
    start: float


@dataclass(frozen=True, slots=True)
class AnswerPlanned:
    """Start generating now: the answer to the call ``[call_start, call_end)`` fills
    ``[start, end)``. Call notes may still arrive until ``start``."""

    call_start: float
    call_end: float
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class CallEnded:
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class CancelAnswer:
    """Stop the planned or playing answer at ``at``: release sounding notes, drop the rest."""

    at: float
    reason: str


@dataclass(frozen=True, slots=True)
class AnswerEnded:
    start: float
    end: float


Action = CallStarted | AnswerPlanned | CallEnded | CancelAnswer | AnswerEnded


# --- state ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TurnState:
    params: TurnParams = field(default_factory=TurnParams)
    phase: Phase = Phase.WAITING
    call_start: float = 0.0
    call_end: float = 0.0
    answer_start: float = 0.0
    answer_end: float = 0.0
    sounding: frozenset[int] = frozenset()
    pedal: bool = False
    last_onset: float = -math.inf
    last_release: float = -math.inf
    onsets: tuple[float, ...] = ()  # the current call's recent onsets (adaptive gap)
    next_call: float | None = None  # a call already begun during the answer
    lead_slot: float | None = None  # improv's slot to lead in (form slots, first=improv)

    @property
    def turn(self) -> str:
        """The coarse turn others see: ``listening``, ``answering`` or ``idle``."""
        if self.phase is Phase.IDLE:
            return "idle"
        return "answering" if self.phase is Phase.ANSWERING else "listening"

    @property
    def silence_since(self) -> float:
        """When the performer fell silent; a held key or pedal counts as sounding, until
        nothing else has happened for ``stuck_beats`` (a note-off that never came)."""
        if self.sounding or self.pedal:
            return max(self.last_onset, self.last_release) + self.params.stuck_beats
        return max(self.last_release, self.last_onset)

    def gap(self) -> float:
        """The silence that ends a phrase-mode call.

        The base is about twice the call's typical inter-onset interval (within half and
        twice the configured gap; the configured gap when not adaptive). It grows by
        ``long_phrase_gap`` per bar of phrase (up to four bars): a long phrase earns a
        longer breath. Where the silence begins matters: in the bar's last beat or on
        the bar line it is 0.75 times that, mid-bar the whole of it; after a cadence (the
        last note held a beat or more, or struck on beat 1 or 3) 0.75 times again; never
        more than twice the configured gap (``shaped_gap=False``: the base alone).
        """
        p = self.params
        base = p.gap_beats
        if p.adaptive_gap and len(self.onsets) >= 4:
            iois = [
                b - a for a, b in zip(self.onsets, self.onsets[1:], strict=False) if b - a > EPS
            ]
            if len(iois) >= 3:
                base = min(2.0 * base, max(0.5 * base, 2.0 * median(iois)))
        if not p.shaped_gap or p.mode is not Mode.PHRASE or not math.isfinite(self.last_release):
            return base
        end = self.last_release
        bars = max(0.0, end - self.call_start) / p.beats_per_bar
        need = base + p.long_phrase_gap * min(bars, 4.0)
        in_bar = end - math.floor(end / p.beats_per_bar + EPS) * p.beats_per_bar
        at_bar_end = in_bar >= p.beats_per_bar - 1.0 - EPS or in_bar < 0.25
        need *= 0.75 if at_bar_end else 1.0
        last = self.last_onset
        struck = last - math.floor(last / p.beats_per_bar + EPS) * p.beats_per_bar
        strong = min(abs(struck - b) for b in (0.0, p.beats_per_bar / 2, p.beats_per_bar))
        if end - last >= 1.0 - EPS or strong <= 0.125:
            need *= 0.75
        return min(need, 2.0 * p.gap_beats)  # recognised at most two gaps after the end


def initial_state(params: TurnParams, now: float = 0.0) -> TurnState:
    """A fresh game from position ``now`` (improv leads in its first slot from there
    when the slots are the form's and ``first`` is improv)."""
    lead = None
    if params.mode is Mode.TRADE and params.slots is Slots.FORM and params.first is First.IMPROV:
        lead = _next_own_slot(now, params)
    return TurnState(params=params, lead_slot=lead)


def slot_at(state: TurnState, now: float) -> tuple[str, int | None]:
    """Whose turn it is at ``now`` (``"performer"`` or ``"improv"``) and how many bars
    of it remain, counting the current one (None where no slot is fixed in advance)."""
    p = state.params
    per_bar = p.beats_per_bar
    if p.mode is Mode.TRADE and p.slots is Slots.FORM:
        index = math.floor(now / p.turn_beats + EPS)
        owner = "improv" if _is_own(index, p) else "performer"
        left = (index + 1) * p.turn_beats - now
        return owner, max(1, math.ceil(left / per_bar - EPS))
    if state.phase is Phase.ANSWERING:
        left = state.answer_end - now
        return "improv", max(1, math.ceil(left / per_bar - EPS)) if p.mode is Mode.TRADE else None
    if state.phase in (Phase.CALLING, Phase.PENDING) and p.mode is Mode.TRADE:
        return "performer", max(1, math.ceil((state.call_end - now) / per_bar - EPS))
    return "performer", None


def with_params(state: TurnState, params: TurnParams) -> TurnState:
    """New rules from the next decision on (the agent applies them at a bar line)."""
    return replace(state, params=params)


# --- the machine ----------------------------------------------------------------------


def step(state: TurnState, event: Event, now: float) -> tuple[TurnState, list[Action]]:
    """Apply one event at jam position ``now`` (beats)."""
    actions: list[Action] = []
    if isinstance(event, Relocate):
        return _relocate(state, now, actions), actions
    state = _advance(state, now, actions)  # deadlines that fell due before the event
    if isinstance(event, Pause):
        return _pause(state, event.on, now, actions), actions
    if isinstance(event, NoteOn):
        state = replace(state, sounding=state.sounding | {event.pitch}, last_onset=now)
        state = _on_note(state, now, actions)
    elif isinstance(event, NoteOff):
        if event.pitch in state.sounding:
            state = replace(state, sounding=state.sounding - {event.pitch})
            if not state.sounding and not state.pedal:
                state = replace(state, last_release=now)
    elif isinstance(event, Pedal):
        if state.pedal and not event.down and not state.sounding:
            state = replace(state, pedal=False, last_release=now)
        else:
            state = replace(state, pedal=event.down)
    elif (
        isinstance(event, AnswerDone)
        and state.phase is Phase.ANSWERING
        and state.params.mode is Mode.PHRASE
    ):
        state = _end_answer(state, now, actions)
    return _advance(state, now, actions), actions


def next_wakeup(state: TurnState) -> float | None:
    """The next position (beats) at which a :class:`Tick` changes something, or None."""
    p = state.params
    if state.phase is Phase.WAITING and state.lead_slot is not None:
        return state.lead_slot - p.lead_beats
    if state.phase is Phase.CALLING:
        if p.mode is Mode.TRADE:
            return state.call_end - p.lead_beats
        return state.silence_since + state.gap()
    if state.phase is Phase.PENDING:
        return state.answer_start
    if state.phase is Phase.ANSWERING:
        return state.answer_end
    return None


def _advance(state: TurnState, now: float, actions: list[Action]) -> TurnState:
    """Act on every deadline that is due (several may be, after a long gap)."""
    for _ in range(4):
        due = next_wakeup(state)
        if due is None or now + EPS < due:
            break
        state = _on_deadline(state, now, actions)
    return state


def _on_deadline(state: TurnState, now: float, actions: list[Action]) -> TurnState:
    p = state.params
    if state.phase is Phase.WAITING and state.lead_slot is not None:
        start = state.lead_slot  # improv leads: an answer to no call
        while start < now:
            start += 2 * p.turn_beats
        actions.append(AnswerPlanned(start, start, start, start + p.turn_beats))
        return replace(
            state,
            phase=Phase.PENDING,
            call_start=start,
            call_end=start,
            answer_start=start,
            answer_end=start + p.turn_beats,
            lead_slot=None,
        )
    if state.phase is Phase.CALLING:
        if p.mode is Mode.TRADE:
            start, end = state.call_end, state.call_end + p.turn_beats
            call_end = state.call_end
        else:
            call_end = min(state.silence_since, now)
            start = _next_slot(now + p.lead_beats, p)
            length = max(1.0, round(call_end - state.call_start))
            end = start + min(p.max_answer_beats, max(p.min_answer_beats, length))
        actions.append(AnswerPlanned(state.call_start, call_end, start, end))
        return replace(
            state, phase=Phase.PENDING, call_end=call_end, answer_start=start, answer_end=end
        )
    if state.phase is Phase.PENDING:
        actions.append(CallEnded(state.call_start, state.call_end))
        return replace(state, phase=Phase.ANSWERING, next_call=None, onsets=())
    if state.phase is Phase.ANSWERING:
        return _end_answer(state, state.answer_end, actions)
    return state


def _end_answer(state: TurnState, at: float, actions: list[Action]) -> TurnState:
    actions.append(AnswerEnded(state.answer_start, at))
    if state.next_call is not None:
        return _start_call(replace(state, next_call=None), state.next_call, actions)
    return replace(state, phase=Phase.WAITING, onsets=())


def _on_note(state: TurnState, now: float, actions: list[Action]) -> TurnState:
    p = state.params
    phase = state.phase
    if phase is Phase.WAITING:
        if _form_slots(p):
            index = max(0, math.floor((now + p.pickup_beats) / p.turn_beats + EPS))
            if _is_own(index, p):  # (a note in the count-in is early for the first slot)
                return state  # improv's slot, which it does not play: not a call
            return _start_call(state, index * p.turn_beats, actions, onset=now)
        start = _bar_of(now, p) if p.mode is Mode.TRADE else now
        return _start_call(state, start, actions, onset=now)
    if phase is Phase.CALLING:
        return replace(state, onsets=(*state.onsets[-15:], now))
    if phase is Phase.PENDING:
        if p.mode is Mode.PHRASE:  # the performer was not done: the call goes on
            actions.append(CancelAnswer(now, "call resumed"))
            return replace(state, phase=Phase.CALLING, onsets=(*state.onsets[-15:], now))
        return state  # trade: the call's last notes, up to the bar line
    if phase is Phase.ANSWERING:
        return _on_barge_in(state, now, actions)
    return state  # idle


def _on_barge_in(state: TurnState, now: float, actions: list[Action]) -> TurnState:
    p = state.params
    phrase_yield = p.mode is Mode.PHRASE and p.barge_in is BargeIn.YIELD
    if p.mode is Mode.TRADE and now < state.answer_start + p.grace_beats:
        return state  # a late note of the call, not a barge-in
    if not phrase_yield and now >= state.answer_end - p.pickup_beats:
        # A pickup into the next turn: the next call starts as the answer ends.
        nxt = state.answer_end if p.mode is Mode.TRADE else now
        return replace(state, next_call=state.next_call if state.next_call is not None else nxt)
    if p.barge_in is BargeIn.YIELD:
        actions.append(CancelAnswer(now, "barge-in"))
        actions.append(AnswerEnded(state.answer_start, now))
        if _form_slots(p):  # the slot stays improv's: the next call starts in the next one
            return replace(state, phase=Phase.WAITING, next_call=None, onsets=())
        start = _bar_of(now, p) if p.mode is Mode.TRADE else now
        return _start_call(replace(state, next_call=None), start, actions, onset=now)
    if state.next_call is None:  # keep: the performer's playing becomes the next call
        nxt = state.answer_end if p.mode is Mode.TRADE else now
        return replace(state, next_call=nxt)
    return state


def _start_call(
    state: TurnState, start: float, actions: list[Action], onset: float | None = None
) -> TurnState:
    actions.append(CallStarted(start))
    onsets = (onset,) if onset is not None else ()
    end = start + state.params.turn_beats if state.params.mode is Mode.TRADE else start
    return replace(state, phase=Phase.CALLING, call_start=start, call_end=end, onsets=onsets)


def _pause(state: TurnState, on: bool, now: float, actions: list[Action]) -> TurnState:
    if not on:
        if state.phase is not Phase.IDLE:
            return state
        return replace(state, phase=Phase.WAITING, next_call=None, onsets=())
    if state.phase in (Phase.PENDING, Phase.ANSWERING):
        actions.append(CancelAnswer(now, "paused"))
        if state.phase is Phase.ANSWERING:
            actions.append(AnswerEnded(state.answer_start, now))
    return replace(state, phase=Phase.IDLE, next_call=None, onsets=())


def _relocate(state: TurnState, now: float, actions: list[Action]) -> TurnState:
    if state.phase in (Phase.PENDING, Phase.ANSWERING):
        actions.append(CancelAnswer(now, "transport"))
        if state.phase is Phase.ANSWERING:
            actions.append(AnswerEnded(state.answer_start, now))
    fresh = initial_state(state.params, now)
    phase = Phase.IDLE if state.phase is Phase.IDLE else Phase.WAITING
    return replace(fresh, phase=phase, sounding=state.sounding, pedal=state.pedal)


def _form_slots(p: TurnParams) -> bool:
    return p.mode is Mode.TRADE and p.slots is Slots.FORM


def _is_own(index: int, p: TurnParams) -> bool:
    """Whether slot ``index`` (of ``bars`` bars from bar 0) is improv's."""
    return (index % 2 == 1) == (p.first is First.PERFORMER)


def _next_own_slot(now: float, p: TurnParams) -> float:
    """The start of improv's first slot at or after ``now``."""
    index = math.ceil(now / p.turn_beats - EPS)
    if not _is_own(index, p):
        index += 1
    return index * p.turn_beats


def _bar_of(now: float, p: TurnParams) -> float:
    """The bar line a trade call starts on: this bar's, or the next one for a pickup."""
    bar = math.floor((now + p.pickup_beats) / p.beats_per_bar + EPS)
    return bar * p.beats_per_bar


def _next_slot(earliest: float, p: TurnParams) -> float:
    """The first beat (or half bar) at or after ``earliest``."""
    unit = 1.0 if p.align is Align.BEAT else p.beats_per_bar / 2
    return math.ceil(earliest / unit - EPS) * unit
