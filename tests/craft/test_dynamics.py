"""Dynamics: velocities follow the call and the line; the last note lands longer."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from improv.craft import measures
from improv.craft.dynamics import CEILING, shape_dynamics
from improv.music.notes import Note

from .hand import CALL, DEVELOPED, notes, situation

FLAT_LOUD = tuple(replace(n, velocity=127) for n in DEVELOPED)


def with_velocity(line: tuple[Note, ...], velocity: int) -> tuple[Note, ...]:
    return tuple(replace(n, velocity=velocity) for n in line)


def test_never_flat_never_127_pitches_and_onsets_kept() -> None:
    shaped = shape_dynamics(FLAT_LOUD, situation(with_velocity(CALL, 127)))
    assert [(n.pitch, n.onset) for n in shaped] == [(n.pitch, n.onset) for n in DEVELOPED]
    assert max(n.velocity for n in shaped) <= CEILING
    assert measures.velocity_distinct(shaped) >= 5
    two = shape_dynamics(notes((60, 8.0, 0.5), (60, 9.0, 0.5)), situation())
    assert two[0].velocity != two[1].velocity


def test_the_level_follows_the_call() -> None:
    soft = shape_dynamics(FLAT_LOUD, situation(with_velocity(CALL, 45)))
    loud = shape_dynamics(FLAT_LOUD, situation(with_velocity(CALL, 105)))
    assert abs(measures.velocity_stats(soft)[0] - 45) <= 10
    assert abs(measures.velocity_stats(loud)[0] - 105) <= 10
    lively_call = tuple(replace(n, velocity=50 + 12 * (i % 5)) for i, n in enumerate(CALL))
    lively = shape_dynamics(FLAT_LOUD, situation(lively_call))
    calm = shape_dynamics(FLAT_LOUD, situation(with_velocity(CALL, 74)))
    assert np.ptp([n.velocity for n in lively]) > np.ptp([n.velocity for n in calm])


def test_up_with_the_climb_and_the_peak_not_at_the_start() -> None:
    shaped = shape_dynamics(DEVELOPED, situation())
    velocities = [n.velocity for n in shaped]
    pitches = [n.pitch for n in shaped]
    assert np.corrcoef(velocities, pitches)[0, 1] > 0.4
    assert int(np.argmax(velocities)) != 0
    falling = notes(*[(84 - 2 * i, 8.0 + 0.5 * i, 0.5) for i in range(10)])
    shaped = shape_dynamics(falling, situation())
    assert int(np.argmax([n.velocity for n in shaped])) != 0


def test_strong_beats_accented_passing_notes_ghosted() -> None:
    # the same pitch on beat 3 and on the "and" of beat 3: the strong beat is louder
    line = notes(
        (64, 8.0, 0.5), (65, 8.5, 0.5), (67, 9.0, 0.5), (69, 9.5, 0.5),
        (67, 10.0, 0.5), (67, 10.5, 0.5), (65, 11.0, 0.5), (64, 11.5, 1.0),
    )  # fmt: skip
    shaped = shape_dynamics(line, situation())
    assert shaped[4].velocity > shaped[5].velocity
    # B between C and Bb, short and off the beat, not in F7: a ghost
    run = notes((72, 12.0, 0.5), (71, 12.5, 0.5), (70, 13.0, 0.5), (69, 13.5, 0.5), (65, 14.0, 1.0))
    shaped = shape_dynamics(run, situation())
    assert shaped[1].velocity < min(shaped[0].velocity, shaped[2].velocity)


def test_last_note_held_where_the_window_allows() -> None:
    short_end = (*DEVELOPED[:-1], Note(65, 80, 14.0, 0.25))
    shaped = shape_dynamics(short_end, situation())
    assert [n.duration for n in shaped[:-1]] == [n.duration for n in DEVELOPED[:-1]]
    assert shaped[-1].duration == 1.0
    late = (*DEVELOPED[:-1], Note(65, 80, 15.5, 0.25))
    assert shape_dynamics(late, situation())[-1].end <= 16.0 - 0.25 + 1e-9
    at_edge = (*DEVELOPED[:-1], Note(65, 80, 15.75, 0.25))
    assert shape_dynamics(at_edge, situation())[-1].duration == 0.25


def test_deterministic_and_empty() -> None:
    assert shape_dynamics(DEVELOPED, situation()) == shape_dynamics(DEVELOPED, situation())
    assert shape_dynamics((), situation()) == []
    assert shape_dynamics(DEVELOPED, situation(call=()))
