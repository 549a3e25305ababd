"""The harness's analysis on synthetic timestamps: known errors in, the same errors out."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from improv.bench.listen import ArrivalClock
from improv.bench.measure import (
    Event,
    Grid,
    Stats,
    Turn,
    analyse,
    circular_offset,
    drift_figures,
    memory_figures,
    mqtt_delays,
    pair_notes,
    reported_loss,
    transport_figures,
)

BEAT = 0.5  # 120 BPM
GRID = Grid(origin=100.0, beat_s=BEAT)


def on(t: float, pitch: int = 60, channel: int = 0, velocity: int = 90) -> Event:
    return Event(t, bytes((0x90 | channel, pitch, velocity)))


def off(t: float, pitch: int = 60, channel: int = 0, zero_velocity: bool = False) -> Event:
    if zero_velocity:
        return Event(t, bytes((0x90 | channel, pitch, 0)))
    return Event(t, bytes((0x80 | channel, pitch, 0)))


def trade_turn(index: int, bars: int = 2, warmup: bool = False) -> Turn:
    """Calls every 2 * bars bars from beat 0; the answer's slot is the bar after the call."""
    start = GRID.time_at(index * 2 * bars * 4)
    slot = start + bars * GRID.bar_s
    return Turn(index, start, slot, slot + bars * GRID.bar_s, slot, warmup, early_s=BEAT / 2)


def answer(
    turn: Turn, positions: list[float], errors_ms: list[float], pitch0: int = 60
) -> list[Event]:
    """Notes at ``positions`` (beats from the slot), each ``errors_ms`` late, a 16th long."""
    assert turn.slot is not None
    events = []
    for i, (beat, error) in enumerate(zip(positions, errors_ms, strict=True)):
        t = turn.slot + beat * BEAT + error / 1000.0
        events += [on(t, pitch0 + i), off(t + BEAT / 4, pitch0 + i)]
    return events


# --- grid ---------------------------------------------------------------------------


def test_grid_positions() -> None:
    assert GRID.time_at(4) == pytest.approx(102.0)
    assert GRID.beat_at(101.25) == pytest.approx(2.5)
    assert GRID.step_s == pytest.approx(BEAT / 12)
    assert GRID.nearest_step(100.0 + BEAT / 12 * 5 + 0.001) == pytest.approx(100.0 + BEAT / 12 * 5)
    assert GRID.next_bar(100.0) == pytest.approx(100.0)
    assert GRID.next_bar(100.001) == pytest.approx(102.0)


# --- pairing ------------------------------------------------------------------------


def test_pairing_counts_stuck_orphans_and_retriggers() -> None:
    events = [
        on(1.0, 60), off(1.1, 60),  # a clean note
        on(1.2, 62), off(1.3, 62, zero_velocity=True),  # note-on velocity 0 ends it
        on(1.4, 64),  # never released: stuck
        off(1.5, 65),  # nothing was sounding: an orphan
        on(1.6, 67), on(1.7, 67), off(1.8, 67),  # struck twice, released once
        on(1.9, 69, channel=1), Event(2.0, bytes((0xB1, 123, 0))),  # only CC 123 ends it
    ]  # fmt: skip
    pairing = pair_notes(events)
    assert len(pairing.notes) == 6
    assert pairing.orphan_offs == 1 and pairing.lost_note_ons == [1.5]
    assert pairing.retriggers == 1
    stuck = sorted((n.pitch, n.closed_by) for n in pairing.notes if n.stuck)
    assert stuck == [(64, None), (69, "cc")]
    # struck twice, released once: the first note's note-off never came, the second's did
    assert [(n.closed_by, n.off) for n in pairing.notes if n.pitch == 67] == [
        ("retrigger", 1.7),
        ("off", 1.8),
    ]
    assert pairing.lost_note_offs == 3
    first = pairing.notes[0]
    assert (first.on, first.off, first.closed_by) == (1.0, 1.1, "off")


# --- errors -------------------------------------------------------------------------


def test_known_errors_are_recovered_exactly_on_the_harness_clock() -> None:
    turns = [trade_turn(i, warmup=i == 0) for i in range(4)]
    errors = {
        0: [30.0, 30.0],  # warm-up: not in the figures
        1: [0.5, -0.25, 1.5, 0.0],
        2: [2.0, 0.75, -1.0],
        3: [0.1, 0.3],
    }
    positions: dict[int, list[float]] = {
        0: [0, 1],
        1: [0, 0.5, 1.25, 3],
        2: [0.25, 1, 2],
        3: [0, 7],
    }
    received = [e for i, t in enumerate(turns) for e in answer(t, positions[i], errors[i])]
    analysis = analyse(received, turns, GRID, follows_clock=True)
    measured = [e for i in (1, 2, 3) for e in errors[i]]
    assert analysis.onset_errors() == pytest.approx(measured, abs=1e-6)
    assert analysis.start_errors() == pytest.approx([0.5, 2.0, 0.1], abs=1e-6)
    # latency: first note after the call's end; turn 2 starts a 16th late, musically
    assert analysis.latencies() == pytest.approx([0.5, 0.25 * BEAT * 1000 + 2.0, 0.1], abs=1e-6)
    figures = analysis.figures()
    absolute = np.abs(measured)
    assert figures["onset_error_ms_p99"] == pytest.approx(np.percentile(absolute, 99), abs=1e-3)
    assert figures["onset_error_ms_max"] == pytest.approx(2.0, abs=1e-3)
    assert figures["onset_error_ms_p50"] == pytest.approx(np.percentile(absolute, 50), abs=1e-3)
    assert figures["answer_start_error_ms_max"] == pytest.approx(2.0, abs=1e-3)
    assert figures["jitter_ms_std"] == pytest.approx(np.std(measured), abs=1e-3)
    assert figures["turns"] == 4 and figures["turns_measured"] == 3
    assert figures["turns_answered"] == 3
    assert figures["grid"] == "harness-clock" and figures["grid_offset_ms"] == 0.0
    assert figures["stuck_notes"] == 0 and figures["stray_notes"] == 0
    assert figures["answer_notes"] == 11


def test_net_figures_subtract_the_transport() -> None:
    turn = trade_turn(0)
    received = answer(turn, [0, 1, 2], [2.5, 2.5, 3.0])
    analysis = analyse(received, [turn], GRID, follows_clock=True, transport_offset_ms=2.5)
    figures = analysis.figures()
    assert figures["onset_error_ms_max"] == pytest.approx(3.0, abs=1e-3)
    assert figures["onset_error_net_ms_max"] == pytest.approx(0.5, abs=1e-3)
    assert figures["answer_start_error_net_ms_p50"] == pytest.approx(0.0, abs=1e-3)


def test_an_agent_on_its_own_clock_has_its_phase_fitted() -> None:
    turns = [trade_turn(i) for i in range(3)]
    phase_ms = 7.3  # the agent's bar lines sit 7.3 ms after the harness's
    jitter = [[0.4, -0.4, 0.0], [0.2, -0.2], [0.0, 0.0, 0.3, -0.3]]
    positions: list[list[float]] = [[0, 1, 2.5], [0.5, 3], [0, 1, 2, 3]]
    received = [
        e
        for turn, pos, jit in zip(turns, positions, jitter, strict=True)
        for e in answer(turn, pos, [phase_ms + j for j in jit])
    ]
    analysis = analyse(received, turns, GRID, follows_clock=False)
    assert analysis.grid_mode == "fitted"
    assert analysis.grid_offset_ms == pytest.approx(phase_ms, abs=1e-3)
    assert analysis.onset_errors() == pytest.approx([j for js in jitter for j in js], abs=1e-3)
    assert analysis.latencies()[0] == pytest.approx(0.4, abs=1e-3)  # vs the fitted bar line


def test_circular_offset_wraps_around_a_step() -> None:
    step = GRID.step_s
    times = [GRID.time_at(k) + d for k, d in ((1, -0.001), (2, 0.001), (3, step - 0.0005))]
    assert circular_offset(times, GRID) * 1000.0 == pytest.approx(-0.1667, abs=0.01)


def test_stray_and_stuck_notes_and_clicks() -> None:
    turn = trade_turn(0)
    assert turn.slot is not None
    received = answer(turn, [0], [0.0])
    received.append(on(turn.call_start + 0.1, 70))  # during the call: stray
    received.append(off(turn.call_start + 0.2, 70))
    received.append(on(turn.slot + 1.0, 72))  # in the answer, never released: stuck
    received.append(on(turn.call_start - 1.0, 76, channel=9))  # a count-in click
    received.append(off(turn.call_start - 0.96, 76, channel=9))
    figures = analyse(received, [turn], GRID, follows_clock=True).figures()
    assert figures["stray_notes"] == 1
    assert figures["stuck_notes"] == 1
    assert figures["answer_notes"] == 2  # clicks are not answers
    assert figures["notes_received"] == 4
    assert figures["notes_past_window"] == 1


def test_answer_channels_can_be_chosen() -> None:
    turn = trade_turn(0)
    received = [*answer(turn, [0, 1], [0.0, 0.0]), on(turn.call_end + 0.3, 50, channel=3)]
    everything = analyse(received, [turn], GRID, follows_clock=True)
    only_first = analyse(received, [turn], GRID, follows_clock=True, channels=frozenset({0}))
    assert everything.heard_notes == 3 and only_first.heard_notes == 2


def test_reported_loss() -> None:
    assert reported_loss(12, 10) == 2
    assert reported_loss(10, 11) == 0
    assert reported_loss(None, 10) is None


def test_unanswered_turns_and_empty_figures() -> None:
    figures = analyse([], [trade_turn(0)], GRID, follows_clock=False).figures()
    assert figures["turns_answered"] == 0
    assert figures["onset_error_ms_p99"] is None and figures["answer_start_error_ms_p99"] is None
    assert Stats.of([]).n == 0


# --- transport, memory, drift, MQTT -------------------------------------------------


def test_transport_figures() -> None:
    pairs = [(float(i), i + (0.001 if i % 2 else 0.0005)) for i in range(100)]
    figures = transport_figures(pairs)
    assert figures["samples"] == 100
    assert figures["latency_ms_max"] == pytest.approx(1.0)
    assert figures["latency_ms_p50"] == pytest.approx(0.75)


def test_memory_slope() -> None:
    samples = [(60.0 * i, (100 + 2 * i) * 2**20) for i in range(10)]
    figures = memory_figures(samples)
    assert figures["rss_mb_start"] == 100 and figures["rss_mb_end"] == 118
    assert figures["rss_mb_per_min"] == pytest.approx(2.0)
    assert memory_figures([]) == {}


def test_drift_is_flagged_only_when_errors_grow() -> None:
    turns = [trade_turn(i) for i in range(24)]
    steady = [e for t in turns for e in answer(t, [0, 1], [0.5, -0.5])]
    growing = [e for i, t in enumerate(turns) for e in answer(t, [0, 1], [0.2 * i, 0.2 * i])]
    assert drift_figures(analyse(steady, turns, GRID, follows_clock=True))["drifting"] == []
    drift = drift_figures(analyse(growing, turns, GRID, follows_clock=True))
    assert "onset_error_ms" in drift["drifting"]
    assert drift["onset_error_ms_per_min"] > 0
    assert drift_figures(analyse(steady[:8], turns[:2], GRID, follows_clock=True)) == {}


def test_mqtt_delays_against_the_wire() -> None:
    turns = [trade_turn(i) for i in range(2)]
    received = [e for t in turns for e in answer(t, [0, 1], [0.0, 0.0])]
    analysis = analyse(received, turns, GRID, follows_clock=True)
    answer_end = turns[0].window_end  # trade: the bar line that closes the answer
    beat = GRID.time_at(9)
    messages: list[tuple[float, str, dict[str, Any]]] = [
        (beat + 0.002, "improv/a/beat", {"t": beat, "bar": 2, "beat": 1.0}),
        (GRID.time_at(10) + 0.003, "improv/a/beat", {"bar": 2, "beat": 2.0}),
        (answer_end + 0.005, "improv/a/phrase/answer", {"role": "answer"}),
        (turns[0].call_end + 0.004, "improv/a/phrase/call", {"role": "call"}),
    ]
    figures = mqtt_delays(messages, analysis)
    assert figures["mqtt_messages"] == 4
    assert figures["mqtt_beat_delay_ms_max"] == pytest.approx(3.0, abs=1e-6)
    assert figures["mqtt_beat_delay_ms_p50"] == pytest.approx(2.5, abs=1e-6)
    assert figures["mqtt_answer_delay_ms_max"] == pytest.approx(5.0, abs=1e-6)
    assert figures["mqtt_call_delay_ms_max"] == pytest.approx(4.0, abs=1e-6)
    assert math.isfinite(figures["mqtt_beat_delay_ms_p99"] or math.nan)


def test_arrival_times_from_deltas_and_polls() -> None:
    rng = np.random.default_rng(0)
    true = np.cumsum(rng.uniform(0.001, 0.02, 300)) + 50.0
    clock = ArrivalClock()
    elapsed = []
    for i, t in enumerate(true):
        elapsed.append(clock.arrived(0.0 if i == 0 else float(t - true[i - 1])))
        if i % 3 == 2:  # a poll finds three at a time, late by up to 2 ms
            clock.polled(float(t) + (0.00001 if i == 152 else float(rng.uniform(0.0005, 0.002))))
    recovered = np.array([clock.time(e) for e in elapsed])
    assert np.allclose(recovered - true, 0.00001, atol=1e-9)  # the best poll's delay
