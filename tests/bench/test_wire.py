"""What the wire delivered, on synthetic event streams: loss that does not snowball,
anomalies flagged per turn, malformed output counted, and phrase windows that wait."""

from __future__ import annotations

import asyncio

import pytest

from improv.bench.latency import Settings, _Target
from improv.bench.matrix import Base, expand, parse_matrix
from improv.bench.measure import Event, Grid, Turn, analyse, answer_state, pair_notes
from improv.timebase import now

BEAT = 0.25  # 240 BPM
GRID = Grid(origin=50.0, beat_s=BEAT)


def on(t: float, pitch: int, channel: int = 0) -> Event:
    return Event(t, bytes((0x90 | channel, pitch, 80)))


def off(t: float, pitch: int, channel: int = 0) -> Event:
    return Event(t, bytes((0x80 | channel, pitch, 0)))


def trade_turns(count: int) -> list[Turn]:
    """Two-bar calls every four bars from beat 0; each answer in the two bars after."""
    turns = []
    for i in range(count):
        start = GRID.time_at(i * 16)
        slot = start + 2 * GRID.bar_s
        turns.append(Turn(i, start, slot, slot + 2 * GRID.bar_s, slot, early_s=BEAT / 2))
    return turns


def answers(turns: list[Turn], pitches: tuple[int, ...] = (60, 62, 60, 64)) -> list[Event]:
    """Each answer: eighth notes on the beat, the same pitch coming back."""
    events = []
    for turn in turns:
        assert turn.slot is not None
        for k, pitch in enumerate(pitches * 2):
            t = turn.slot + k * BEAT
            events += [on(t, pitch), off(t + BEAT / 2, pitch)]
    return events


def without(events: list[Event], *drop: Event) -> list[Event]:
    return [e for e in events if e not in drop]


def test_one_lost_note_off_costs_one_note() -> None:
    turns = trade_turns(6)
    clean = answers(turns)
    lost = clean[1]  # the first note-off of pitch 60, which comes back in every answer
    figures = analyse(without(clean, lost), turns, GRID, follows_clock=True).figures()
    assert figures["lost_note_offs"] == 1 and figures["lost_note_ons"] == 0
    assert figures["lost_notes"] == 1 and figures["messages_lost"] == 1
    assert figures["retriggered_notes"] == 1 and figures["stuck_notes"] == 0
    assert figures["notes_past_window"] == 0 and figures["orphan_note_offs"] == 0
    assert figures["anomalies"] == {"lost_note_off": 1}
    assert figures["message_loss_rate"] == pytest.approx(1 / len(clean), abs=1e-5)


def test_a_lost_first_note_on_is_flagged_and_leaves_the_latency_alone() -> None:
    turns = trade_turns(4)
    clean = answers(turns)
    before = analyse(clean, turns, GRID, follows_clock=True)
    lost = clean[16]  # turn 1's first note-on
    analysis = analyse(without(clean, lost), turns, GRID, follows_clock=True)
    flagged = analysis.turns[1]
    assert "first_note_on_lost" in flagged.flags and flagged.latency_ms is None
    assert flagged.start_error_ms is None
    figures = analysis.figures()
    assert figures["lost_note_ons"] == 1 and figures["lost_notes"] == 1
    assert figures["turns_flagged"] == 1
    assert figures["anomalies"] == {"lost_note_on": 1, "first_note_on_lost": 1}
    # the other turns' latencies, not one shifted by a beat
    assert figures["answer_start_latency_ms_max"] == before.figures()["answer_start_latency_ms_max"]
    assert len(analysis.latencies()) == 3


def test_a_lost_note_on_later_in_an_answer_is_not_its_start() -> None:
    turns = trade_turns(2)
    clean = answers(turns)
    analysis = analyse(without(clean, clean[4]), turns, GRID, follows_clock=True)
    assert analysis.turns[0].flags == ("lost_note_on",)
    assert analysis.turns[0].latency_ms is not None


def test_overlaps_repeats_sweeps_and_all_notes_off_are_not_losses() -> None:
    events = [
        on(1.0, 60), on(1.1, 60), off(1.2, 60), off(1.3, 60),  # an overlap of one key
        on(2.0, 62), on(2.0005, 62), off(2.2, 62), off(2.2004, 62),  # sent twice at once
        on(3.0, 64), Event(3.1, bytes((0xB0, 123, 0))), off(3.1001, 64),  # CC 123, then off
        on(5.0, 66), off(5.1, 66), off(5.1003, 66),  # a note-off sent twice
        *[off(4.0 + k * 0.00003, k) for k in range(2, 128)],  # a barge-in's sweep
    ]  # fmt: skip
    pairing = pair_notes(events)
    assert pairing.lost_note_ons == [] and pairing.lost_note_offs == 1  # the one CC 123 ended
    assert pairing.overlaps == 1 and pairing.retriggers == 1
    assert len(pairing.repeated_note_ons) == 1 and len(pairing.repeated_note_offs) == 1
    assert pairing.redundant_offs == 1
    assert len(pairing.sweeps) == 1 and len(pairing.sweep_offs) == 126
    assert [n.closed_by for n in pairing.notes] == ["off", "off", "off", "cc", "off"]


def test_malformed_output_is_counted_and_flagged() -> None:
    turns = trade_turns(3)
    events = answers(turns)
    end_of_answer = turns[0].window_end - 0.1
    events.append(Event(end_of_answer, b"\xff"))  # FF 2F 00: System Reset, then data bytes
    sweep_at = turns[1].slot or 0.0
    events += [off(sweep_at + 0.3 + k * 1e-5, k) for k in range(128)]
    events += [on(sweep_at + 1.0001, 90), on(sweep_at + 1.0008, 90)]  # a burst
    events += [off(sweep_at + 1.1, 90), off(sweep_at + 1.1006, 90)]
    figures = analyse(
        events, turns, GRID, follows_clock=True, malformed=[end_of_answer, end_of_answer + 2]
    ).figures()
    assert figures["system_resets"] == 1 and figures["malformed_packets"] == 2
    assert figures["note_off_sweeps"] == 1 and figures["repeated_note_ons"] == 1
    assert figures["lost_notes"] == 0
    assert figures["anomalies"] == {"malformed": 2, "note_off_sweep": 1, "repeated_message": 1}


def test_answer_state_says_begun_and_silent_since() -> None:
    assert answer_state([]) == (False, None)
    assert answer_state([on(1.0, 60)]) == (True, None)
    assert answer_state([on(1.0, 60), off(1.2, 60), on(1.1, 64), off(1.5, 64)]) == (True, 1.5)
    clicks = [on(1.0, 76, channel=9), off(1.05, 76, channel=9)]
    assert answer_state(clicks) == (False, None)  # a click is no answer


class _Ears:
    """A listener stand-in: what the agent played so far."""

    def __init__(self) -> None:
        self.heard: list[Event] = []

    def events(self) -> list[Event]:
        return list(self.heard)


async def test_a_phrase_window_waits_for_a_slow_answer_to_end() -> None:
    configs = expand(Base(240.0, "phrase", 2), parse_matrix([]), spawn=False)
    target = _Target(Settings(api="jack", configs=configs), configs[0], calls=None)  # type: ignore[arg-type]
    ears = _Ears()
    target.listener = ears  # type: ignore[assignment]
    start = now()
    turn = Turn(0, start - 1.0, start, start + 0.1, None, early_s=0.05)
    target.data.turns.append(turn)

    async def slow_agent() -> None:  # answers late, and plays on past the nominal window
        for k in range(4):
            t = now()
            ears.heard += [on(t, 60 + k), off(t + 0.08, 60 + k)]
            target.heard.set()
            await asyncio.sleep(0.08)

    playing = asyncio.create_task(slow_agent())
    longer = await target.wait_answer(turn)
    await playing
    last_off = max(e.t for e in ears.heard)
    assert longer.window_end >= last_off + 4 * BEAT  # a bar of silence after the answer
    assert longer.window_end < last_off + 4 * BEAT + 0.1
    assert target.data.turns == [longer]


async def test_an_unanswered_phrase_does_not_wait() -> None:
    configs = expand(Base(240.0, "phrase", 2), parse_matrix([]), spawn=False)
    target = _Target(Settings(api="jack", configs=configs), configs[0], calls=None)  # type: ignore[arg-type]
    target.listener = _Ears()  # type: ignore[assignment]
    turn = Turn(0, now() - 1.0, now(), now() + 0.05, None, early_s=0.05)
    target.data.turns.append(turn)
    assert await target.wait_answer(turn) == turn
