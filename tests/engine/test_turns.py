"""The turn-taking state machine: every rule, with time passed in (no clock, no sleeps)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from improv.engine.turns import (
    Action,
    Align,
    AnswerDone,
    AnswerEnded,
    AnswerPlanned,
    BargeIn,
    CallEnded,
    CallStarted,
    CancelAnswer,
    Event,
    First,
    Mode,
    NoteOff,
    NoteOn,
    Pause,
    Pedal,
    Phase,
    Relocate,
    Slots,
    Tick,
    TurnParams,
    TurnState,
    initial_state,
    next_wakeup,
    slot_at,
    step,
)

TRADE2 = TurnParams(mode=Mode.TRADE, bars=2, lead_beats=0.5, slots=Slots.FOLLOW)
FORM2 = TurnParams(mode=Mode.TRADE, bars=2, lead_beats=0.5)
PHRASE = TurnParams(
    mode=Mode.PHRASE, gap_beats=1.0, adaptive_gap=False, lead_beats=0.25, shaped_gap=False
)


def run(
    state: TurnState, events: list[tuple[float, Event]]
) -> tuple[TurnState, list[tuple[float, Action]]]:
    out: list[tuple[float, Action]] = []
    for now, event in events:
        state, actions = step(state, event, now)
        out.extend((now, a) for a in actions)
    return state, out


def kinds(actions: list[tuple[float, Action]]) -> list[str]:
    return [type(a).__name__ for _, a in actions]


def note(t: float, pitch: int = 60, length: float = 0.4) -> list[tuple[float, Event]]:
    return [(t, NoteOn(pitch)), (t + length, NoteOff(pitch))]


# --- trade ----------------------------------------------------------------------------


def test_trade_call_is_n_bars_and_answer_starts_on_the_next_bar_line() -> None:
    events = note(0.0) + note(1.0) + note(5.5)
    state, actions = run(initial_state(TRADE2), events)
    assert actions[0] == (0.0, CallStarted(0.0))
    assert state.phase is Phase.CALLING
    assert next_wakeup(state) == 8.0 - 0.5  # planned one lead ahead of the bar line
    state, actions = run(state, [(7.5, Tick())])
    assert [a for _, a in actions] == [AnswerPlanned(0.0, 8.0, 8.0, 16.0)]
    assert state.phase is Phase.PENDING
    state, actions = run(state, [(8.0, Tick())])
    assert [a for _, a in actions] == [CallEnded(0.0, 8.0)]
    assert state.phase is Phase.ANSWERING and state.turn == "answering"
    state, actions = run(state, [(16.0, Tick())])
    assert [a for _, a in actions] == [AnswerEnded(8.0, 16.0)]
    assert state.phase is Phase.WAITING and state.turn == "listening"


def test_trade_call_starts_on_the_bar_line_of_its_first_note() -> None:
    state, actions = run(initial_state(TRADE2), note(5.0))  # bar 1, beat 2
    assert actions[0][1] == CallStarted(4.0)
    assert state.call_end == 12.0


def test_trade_pickup_belongs_to_the_next_bar() -> None:
    _, actions = run(initial_state(TRADE2), note(3.7))  # last half beat of bar 0
    assert actions[0][1] == CallStarted(4.0)
    _, actions = run(initial_state(TRADE2), note(-0.01))  # a hair early: bar 0
    assert actions[0][1] == CallStarted(0.0)


def test_trade_notes_up_to_the_bar_line_stay_in_the_call() -> None:
    state, _ = run(initial_state(TRADE2), [*note(0.0), (7.6, Tick())])
    state, actions = run(state, note(7.8, length=0.1))
    assert actions == [] and state.phase is Phase.PENDING


def test_trade_late_note_in_grace_is_not_a_barge_in() -> None:
    state, _ = run(initial_state(TRADE2), [*note(0.0), (7.6, Tick()), (8.0, Tick())])
    state, actions = run(state, note(8.2))
    assert actions == [] and state.phase is Phase.ANSWERING


def test_trade_barge_in_yield_cancels_and_starts_a_new_call() -> None:
    state, _ = run(initial_state(TRADE2), [*note(0.0), (7.6, Tick()), (8.0, Tick())])
    state, actions = run(state, [(10.5, NoteOn(64))])
    assert [a for _, a in actions] == [
        CancelAnswer(10.5, "barge-in"),
        AnswerEnded(8.0, 10.5),
        CallStarted(8.0),
    ]
    assert state.phase is Phase.CALLING and state.call_end == 16.0


def test_trade_barge_in_keep_plays_on_then_takes_the_call() -> None:
    params = replace(TRADE2, barge_in=BargeIn.KEEP)
    state, _ = run(initial_state(params), [*note(0.0), (7.6, Tick()), (8.0, Tick())])
    state, actions = run(state, note(10.5))
    assert actions == [] and state.phase is Phase.ANSWERING
    state, actions = run(state, [(16.0, Tick())])
    assert [a for _, a in actions] == [AnswerEnded(8.0, 16.0), CallStarted(16.0)]
    assert state.phase is Phase.CALLING


def test_trade_pickup_at_the_end_of_an_answer_starts_the_next_call() -> None:
    state, _ = run(initial_state(TRADE2), [*note(0.0), (7.6, Tick()), (8.0, Tick())])
    state, actions = run(state, note(15.6, length=0.2))
    assert actions == [] and state.phase is Phase.ANSWERING
    state, actions = run(state, [(16.0, Tick())])
    assert [a for _, a in actions] == [AnswerEnded(8.0, 16.0), CallStarted(16.0)]
    assert state.call_end == 24.0


def test_trade_answer_done_early_keeps_the_slot() -> None:
    state, _ = run(initial_state(TRADE2), [*note(0.0), (7.6, Tick()), (8.0, Tick())])
    state, actions = run(state, [(12.0, AnswerDone())])
    assert actions == [] and state.phase is Phase.ANSWERING


def test_late_tick_catches_up_every_deadline() -> None:
    state, actions = run(initial_state(TRADE2), [*note(0.0), (17.0, Tick())])
    assert kinds(actions)[1:] == ["AnswerPlanned", "CallEnded", "AnswerEnded"]
    assert state.phase is Phase.WAITING


def test_trade_n_bars_in_other_metres() -> None:
    params = TurnParams(mode=Mode.TRADE, bars=4, beats_per_bar=3.0, lead_beats=0.25)
    state, actions = run(initial_state(replace(params, slots=Slots.FOLLOW)), note(4.0))
    assert actions[0][1] == CallStarted(3.0)
    assert state.call_end == 15.0
    state, actions = run(initial_state(params), note(4.0))  # the form's slot: bars 0-3
    assert actions[0][1] == CallStarted(0.0)
    assert state.call_end == 12.0


def test_form_slots_a_late_call_is_answered_in_the_next_slot() -> None:
    # the soloist lays out for the first bar of their two: the answer keeps bars 2-3
    state, actions = run(initial_state(FORM2), note(4.5) + note(6.0))
    assert actions[0][1] == CallStarted(0.0)
    state, actions = run(state, [(7.5, Tick())])
    assert [a for _, a in actions] == [AnswerPlanned(0.0, 8.0, 8.0, 16.0)]
    state, _ = run(state, [(8.0, Tick()), (16.0, Tick())])
    state, actions = run(state, note(20.0))  # next call late again: still bars 4-5
    assert actions[0][1] == CallStarted(16.0) and state.call_end == 24.0


def test_form_slots_playing_in_improvs_idle_slot_is_not_a_call() -> None:
    state, actions = run(initial_state(FORM2), note(9.0))  # bars 2-3 are improv's
    assert actions == [] and state.phase is Phase.WAITING
    state, actions = run(state, note(15.7))  # a pickup into the performer's bars 4-5
    assert actions[0][1] == CallStarted(16.0)


def test_form_slots_barge_in_yields_and_the_slot_stays_improvs() -> None:
    state, _ = run(initial_state(FORM2), [*note(0.0), (7.6, Tick()), (8.0, Tick())])
    state, actions = run(state, note(10.5))
    assert kinds(actions) == ["CancelAnswer", "AnswerEnded"]
    assert state.phase is Phase.WAITING
    _, actions = run(state, note(16.2))
    assert actions[0][1] == CallStarted(16.0)


def test_form_slots_improv_leads_when_first() -> None:
    params = replace(FORM2, first=First.IMPROV)
    state = initial_state(params)
    assert next_wakeup(state) == -0.5
    state, actions = run(state, [(-0.5, Tick())])
    assert [a for _, a in actions] == [AnswerPlanned(0.0, 0.0, 0.0, 8.0)]
    state, _ = run(state, [(0.0, Tick()), (8.0, Tick())])
    assert state.phase is Phase.WAITING and next_wakeup(state) is None  # leads once
    state, actions = run(state, note(9.0))  # bars 2-3: the performer's
    assert actions[0][1] == CallStarted(8.0)


def test_slot_and_bars_left() -> None:
    state = initial_state(FORM2)
    assert slot_at(state, 0.0) == ("performer", 2)
    assert slot_at(state, 5.0) == ("performer", 1)
    assert slot_at(state, 8.0) == ("improv", 2)
    assert slot_at(initial_state(replace(FORM2, first=First.IMPROV)), 1.0) == ("improv", 2)
    state, _ = run(initial_state(TRADE2), [*note(4.0), (11.5, Tick()), (12.0, Tick())])
    assert slot_at(state, 13.0) == ("improv", 2)  # follow: the answer's bars
    assert slot_at(initial_state(PHRASE), 3.0) == ("performer", None)


def test_relocate_ends_the_answer_and_forgets_the_call() -> None:
    state, _ = run(initial_state(FORM2), [*note(0.0), (7.6, Tick()), (8.0, Tick())])
    state, actions = run(state, [(0.0, Relocate())])  # the master starts again from 0
    assert kinds(actions) == ["CancelAnswer", "AnswerEnded"]
    assert state.phase is Phase.WAITING and next_wakeup(state) is None
    state, actions = run(state, [*note(1.0), (7.5, Tick())])
    assert [a for _, a in actions][-1] == AnswerPlanned(0.0, 8.0, 8.0, 16.0)
    state, _ = run(state, [(7.6, Pause(True)), (8.0, Relocate())])
    assert state.phase is Phase.IDLE  # a pause outlives the transport


# --- phrase ---------------------------------------------------------------------------


def test_phrase_call_ends_after_the_gap_and_answer_starts_on_the_next_beat() -> None:
    events = note(0.0) + note(0.5) + note(1.0, length=0.7)  # released at 1.7
    state, actions = run(initial_state(PHRASE), events)
    assert actions[0][1] == CallStarted(0.0)
    assert next_wakeup(state) == 2.7
    state, actions = run(state, [(2.7, Tick())])
    planned = actions[0][1]
    assert isinstance(planned, AnswerPlanned)
    assert planned.call_end == 1.7 and planned.start == 3.0  # next beat after 2.7 + lead
    assert planned.end - planned.start == 2.0  # call lasted 1.7 beats: min 2
    state, actions = run(state, [(3.0, Tick())])
    assert [a for _, a in actions] == [CallEnded(0.0, 1.7)]
    assert state.phase is Phase.ANSWERING


def test_phrase_answer_length_follows_the_call_within_bounds() -> None:
    events = [e for t in range(10) for e in note(t * 0.5)]  # 5 beats of eighths
    state, _ = run(initial_state(PHRASE), events)
    _, actions = run(state, [(6.0, Tick())])
    planned = actions[0][1]
    assert isinstance(planned, AnswerPlanned) and planned.end - planned.start == 5.0
    long_call = [e for t in range(60) for e in note(t * 0.5)]  # 30 beats
    state, _ = run(initial_state(PHRASE), long_call)
    _, actions = run(state, [(40.0, Tick())])
    planned = actions[0][1]
    assert isinstance(planned, AnswerPlanned) and planned.end - planned.start == 16.0


def test_phrase_half_bar_alignment() -> None:
    params = replace(PHRASE, align=Align.HALF_BAR)
    state, _ = run(initial_state(params), note(0.0, length=0.5))
    _, actions = run(state, [(1.6, Tick())])
    planned = actions[0][1]
    assert isinstance(planned, AnswerPlanned) and planned.start == 2.0
    state, _ = run(initial_state(params), note(1.0, length=0.9))
    _, actions = run(state, [(2.95, Tick())])
    planned = actions[0][1]
    assert isinstance(planned, AnswerPlanned) and planned.start == 4.0


def test_phrase_held_note_and_pedal_count_as_sounding() -> None:
    state, _ = run(initial_state(PHRASE), [(0.0, NoteOn(60))])
    state, actions = run(state, [(4.0, Tick())])
    assert actions == [] and state.phase is Phase.CALLING
    state, _ = run(state, [(4.0, Pedal(True)), (4.5, NoteOff(60)), (6.0, Tick())])
    assert state.phase is Phase.CALLING  # the pedal holds it
    state, actions = run(state, [(6.0, Pedal(False))])
    assert next_wakeup(state) == 7.0
    _, actions = run(state, [(7.0, Tick())])
    assert isinstance(actions[0][1], AnswerPlanned) and actions[0][1].call_end == 6.0


def test_phrase_a_note_that_never_ends_is_released_after_stuck_beats() -> None:
    state, _ = run(initial_state(PHRASE), [(0.0, NoteOn(60))])  # no note-off, ever
    assert next_wakeup(state) == 0.0 + PHRASE.stuck_beats + 1.0
    state, actions = run(state, [(9.0, Tick())])
    assert kinds(actions) == ["AnswerPlanned"]


def test_phrase_performer_resumes_before_the_answer_starts() -> None:
    state, _ = run(initial_state(PHRASE), [*note(0.0), (1.4, Tick())])
    assert state.phase is Phase.PENDING
    state, actions = run(state, [(1.6, NoteOn(62))])
    assert [a for _, a in actions] == [CancelAnswer(1.6, "call resumed")]
    assert state.phase is Phase.CALLING and state.call_start == 0.0


def test_phrase_adaptive_gap_follows_the_calls_pace() -> None:
    params = replace(PHRASE, adaptive_gap=True)
    fast = [e for t in range(8) for e in note(t * 0.25, length=0.1)]  # sixteenths
    state, _ = run(initial_state(params), fast)
    assert state.gap() == 0.5
    slow = [e for t in range(6) for e in note(t * 2.0, length=0.5)]  # half notes
    state, _ = run(initial_state(params), slow)
    assert state.gap() == 2.0


def test_phrase_barge_in_yield_and_answer_done() -> None:
    state, _ = run(initial_state(PHRASE), [*note(0.0), (1.4, Tick()), (2.0, Tick())])
    assert state.phase is Phase.ANSWERING
    state, actions = run(state, [(3.0, NoteOn(70))])
    assert kinds(actions) == ["CancelAnswer", "AnswerEnded", "CallStarted"]
    assert state.call_start == 3.0
    state, _ = run(initial_state(PHRASE), [*note(0.0), (1.4, Tick()), (2.0, Tick())])
    state, actions = run(state, [(3.0, AnswerDone())])
    assert [a for _, a in actions] == [AnswerEnded(2.0, 3.0)]
    assert state.phase is Phase.WAITING


SHAPED = replace(PHRASE, shaped_gap=True)


def test_phrase_a_breath_mid_bar_is_not_a_phrase_end() -> None:
    line = [e for t in range(8) for e in note(t * 0.5, length=0.4)]  # beats 0-3.9
    state, _ = run(initial_state(SHAPED), [*line, *note(5.0)])  # a one-beat breath
    assert state.phase is Phase.CALLING  # the same phrase goes on
    end = state.last_release  # 5.4: mid-bar, after a 1.35-bar phrase
    assert next_wakeup(state) == end + (1.0 + 0.25 * 5.4 / 4)


def test_phrase_gap_is_shorter_at_a_bar_end_and_after_a_cadence() -> None:
    state, _ = run(initial_state(SHAPED), note(0.0) + note(2.0) + note(3.2, length=0.5))
    at_bar_end = state.gap()  # silence from 3.7: the bar's last beat
    state, _ = run(initial_state(SHAPED), note(0.0) + note(1.0) + note(1.2, length=0.5))
    mid_bar = state.gap()  # silence from 1.7
    assert at_bar_end < 1.0 < mid_bar
    state, _ = run(initial_state(SHAPED), note(0.0) + note(0.5) + note(1.0, length=1.5))
    assert state.gap() < mid_bar  # a held last note: a cadence


def test_phrase_gap_grows_with_the_phrase() -> None:
    short = [e for t in range(4) for e in note(t * 0.5)]
    long = [e for t in range(28) for e in note(t * 0.5)]  # 3.5 bars
    state_short, _ = run(initial_state(SHAPED), [(t + 12.0, e) for t, e in short])
    state_long, _ = run(initial_state(SHAPED), long)
    assert state_long.last_release % 4 == state_short.last_release % 4  # same place
    assert state_long.gap() > state_short.gap()


def test_phrase_yields_at_once_when_the_soloist_comes_back() -> None:
    state, _ = run(initial_state(PHRASE), [*note(0.0), (1.4, Tick()), (2.0, Tick())])
    state, actions = run(state, [(2.1, NoteOn(70))])  # within the trade grace: still
    assert kinds(actions) == ["CancelAnswer", "AnswerEnded", "CallStarted"]
    assert actions[0][1] == CancelAnswer(2.1, "barge-in")


def test_pause_cancels_the_answer_and_ignores_the_performer() -> None:
    state, _ = run(initial_state(TRADE2), [*note(0.0), (7.6, Tick()), (8.0, Tick())])
    state, actions = run(state, [(9.0, Pause(True))])
    assert kinds(actions) == ["CancelAnswer", "AnswerEnded"]
    assert state.turn == "idle"
    state, actions = run(state, note(10.0))
    assert actions == [] and next_wakeup(state) is None
    state, actions = run(state, [(11.0, Pause(False)), *note(12.0)])
    assert [a for _, a in actions] == [CallStarted(12.0)]


def test_bad_params_are_refused() -> None:
    import pytest

    for bad in (dict(bars=0), dict(gap_beats=0), dict(min_answer_beats=8, max_answer_beats=4)):
        with pytest.raises(ValueError):
            TurnParams(**bad)  # type: ignore[arg-type]


# --- invariants over random performances ------------------------------------------------

EVENTS = st.one_of(
    st.builds(NoteOn, st.integers(40, 90), st.integers(1, 127)),
    st.builds(NoteOff, st.integers(40, 90)),
    st.builds(Pedal, st.booleans()),
    st.just(Tick()),
    st.just(AnswerDone()),
    st.builds(Pause, st.booleans()),
    st.just(Relocate()),
)


@settings(max_examples=300, deadline=None)
@given(
    mode=st.sampled_from(list(Mode)),
    barge=st.sampled_from(list(BargeIn)),
    bars=st.sampled_from([2, 4, 8, 12]),
    slots=st.sampled_from(list(Slots)),
    first=st.sampled_from(list(First)),
    steps=st.lists(st.tuples(st.floats(0.0, 3.0), EVENTS), max_size=80),
)
def test_invariants_hold_for_any_performance(
    mode: Mode,
    barge: BargeIn,
    bars: int,
    slots: Slots,
    first: First,
    steps: list[tuple[float, Event]],
) -> None:
    params = TurnParams(
        mode=mode, bars=bars, barge_in=barge, lead_beats=0.3, slots=slots, first=first
    )
    state = initial_state(params)
    now = 0.0
    open_answer: AnswerPlanned | None = None
    playing = False
    for dt, event in steps:
        now += dt
        actions: list[Action] = []
        wake = next_wakeup(state)
        if wake is not None and wake < now:  # the agent ticks at every wake-up
            state, actions = step(state, Tick(), max(wake, now - dt))
        state, more = step(state, event, now)
        for action in actions + more:
            if isinstance(action, AnswerPlanned):
                assert open_answer is None
                assert action.start >= action.call_end - 1e-9
                if mode is Mode.TRADE:
                    assert action.start % params.beats_per_bar == 0
                    assert action.end - action.start == params.turn_beats
                else:
                    assert params.min_answer_beats <= action.end - action.start
                    assert action.end - action.start <= params.max_answer_beats
                open_answer = action
            elif isinstance(action, CallEnded):
                assert open_answer is not None and not playing
                playing = True
            elif isinstance(action, CancelAnswer):
                assert open_answer is not None
                if not playing:
                    open_answer = None
            elif isinstance(action, AnswerEnded):
                assert playing and open_answer is not None
                playing, open_answer = False, None
        assert (state.phase is Phase.ANSWERING) == playing
        assert (state.phase is Phase.PENDING) == (open_answer is not None and not playing)
        if state.phase is Phase.CALLING and mode is Mode.TRADE:
            assert state.call_start % params.beats_per_bar == 0
            if slots is Slots.FORM:
                assert state.call_start % params.turn_beats == 0
