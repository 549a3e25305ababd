"""Grid-free timing on synthetic answers: an agent with no clock against one on a grid."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from improv.bench.measure import Event, Grid, Turn, analyse
from improv.bench.rhythm import answer_rhythm, answer_spread_ratio, note_jitter_ms, spread_ratio

BEAT = 0.5  # 120 BPM
GRID = Grid(origin=100.0, beat_s=BEAT)
STEP = GRID.step_s
RHYTHM = [0, 3, 6, 12, 15, 18, 24, 30, 36, 42]  # steps (1/12 beat) from the answer's start


def phrase_turn(index: int) -> Turn:
    """Phrase mode: a call of two bars, its last note-off a beat before the bar line."""
    start = GRID.time_at(index * 16)
    return Turn(index, start, start + 7 * BEAT, start + 16 * BEAT, None, early_s=BEAT / 2)


def notes_at(times: list[float], pitch0: int = 60) -> list[Event]:
    events = []
    for i, t in enumerate(times):
        events += [
            Event(t, bytes((0x90, pitch0 + i % 12, 90))),
            Event(t + 0.05, bytes((0x80, pitch0 + i % 12, 0))),
        ]
    return events


def sleepy_answer(turn: Turn, rng: np.random.Generator, overshoot_s: float) -> list[float]:
    """What a clockless agent plays: a second after the call, the rhythm by sleeps that
    each overshoot, plus a little noise: its own phase, sliding late."""
    t = turn.call_end + 1.0 + float(rng.uniform(0.0, 0.02))
    times = [t]
    for a, b in itertools.pairwise(RHYTHM):
        t += (b - a) * STEP + overshoot_s
        times.append(t + float(rng.normal(0.0, 0.0002)))
    return times


def grid_answer(turn: Turn, rng: np.random.Generator) -> list[float]:
    """An agent on the grid: a beat after the call, every note on its step, 0.5 ms jitter."""
    first = GRID.time_at(round(GRID.beat_at(turn.call_end)) + 1)
    return [first + s * STEP + float(rng.normal(0.0, 0.0005)) for s in RHYTHM]


def test_a_clockless_agent_gets_no_grid_figures_but_its_rhythm_and_drift() -> None:
    rng = np.random.default_rng(3)
    turns = [phrase_turn(i) for i in range(6)]
    received = [e for t in turns for e in notes_at(sleepy_answer(t, rng, 0.0012))]
    figures = analyse(received, turns, GRID, follows_clock=False).figures()
    assert figures["grid_meaningful"] is False
    for key in ("onset_error_ms_p99", "answer_start_error_ms_max", "jitter_ms_std"):
        assert figures[key] is None and key in figures["grid_figures_unreliable"]
    assert figures["rhythm_inferred"] is True
    assert figures["ioi_error_ms_p50"] == pytest.approx(1.2, abs=0.3)  # each sleep's overshoot
    # nine intervals, each 1.2 ms long: the answer slides 10.8 ms late from its first note
    assert figures["answer_drift_ms_mean"] == pytest.approx(10.8, abs=0.5)
    assert figures["answer_start_latency_ms_p50"] == pytest.approx(1010.0, abs=15.0)


def test_an_agent_on_a_grid_keeps_its_grid_figures_and_does_not_drift() -> None:
    rng = np.random.default_rng(4)
    turns = [phrase_turn(i) for i in range(6)]
    received = [e for t in turns for e in notes_at(grid_answer(t, rng))]
    figures = analyse(received, turns, GRID, follows_clock=False).figures()
    assert figures["grid_meaningful"] is True
    assert "grid_figures_unreliable" not in figures
    assert figures["onset_error_ms_p99"] < 2.0
    assert figures["rhythm_inferred"] is True
    assert abs(figures["answer_drift_ms_mean"]) < 1.0 and figures["answer_drift_ms_max"] < 2.0


def test_too_few_answers_tell_nothing() -> None:
    rng = np.random.default_rng(5)
    turns = [phrase_turn(i) for i in range(2)]
    received = [e for t in turns for e in notes_at(sleepy_answer(t, rng, 0.0))]
    figures = analyse(received, turns, GRID, follows_clock=False).figures()
    assert figures["grid_meaningful"] is None and figures["onset_error_ms_p99"] is not None


def test_uniform_noise_has_a_spread_ratio_near_one() -> None:
    rng = np.random.default_rng(6)
    step_ms = STEP * 1000.0
    noise = rng.uniform(-step_ms / 2, step_ms / 2, 2000)
    assert spread_ratio(list(noise), step_ms) == pytest.approx(1.0, abs=0.08)
    delayed = list(rng.normal(2.5, 0.3, 200))  # a constant delay is no spread
    assert spread_ratio(delayed, step_ms) == pytest.approx(0.0, abs=0.05)
    assert spread_ratio([1.0] * 7, step_ms) is None


def test_answers_at_phases_of_their_own_spread_far_beyond_their_jitter() -> None:
    rng = np.random.default_rng(7)
    step_ms = STEP * 1000.0
    own = [list(rng.normal(float(rng.uniform(-15, 15)), 0.3, 8)) for _ in range(6)]
    same = [list(rng.normal(1.0, 0.3, 8)) for _ in range(6)]
    drifting = [list(rng.normal(0.3 * i, 0.3, 8)) for i in range(6)]  # a slow clock drift
    assert (answer_spread_ratio(own, 0.3, step_ms) or 0) > 10
    assert (answer_spread_ratio(same, 0.3, step_ms) or 99) < 3
    assert (answer_spread_ratio(drifting, 0.3, step_ms) or 99) < 3
    assert answer_spread_ratio(same[:2], 0.3, step_ms) is None


def test_answer_rhythm_intervals_and_drift() -> None:
    onsets = [10.0 + s * STEP + i * 0.001 for i, s in enumerate(RHYTHM)]  # 1 ms late a note
    rhythm = answer_rhythm(onsets, STEP)
    assert rhythm.ioi_errors_ms == pytest.approx([1.0] * 9, abs=1e-6)
    assert rhythm.drift_ms == pytest.approx(9.0, abs=0.2)  # a line through uneven steps
    even = answer_rhythm([10.0 + i * (3 * STEP + 0.001) for i in range(8)], STEP)
    assert even.drift_ms == pytest.approx(7.0, abs=1e-6)
    chord = answer_rhythm([5.0, 5.0005], STEP)
    assert chord.ioi_errors_ms == pytest.approx((0.5,)) and chord.drift_ms is None
    assert note_jitter_ms([1.0] * 8) == 0.0 and note_jitter_ms([1.0]) is None
