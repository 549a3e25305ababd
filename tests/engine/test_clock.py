"""The musical clock: internal maths, tempo changes, the MIDI clock follower, clock out."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from improv.engine.clock import (
    PPQN,
    ClockSender,
    InternalClock,
    Metronome,
    MidiClockFollower,
    next_bar_time,
    next_grid_time,
    position,
)
from improv.io.midi import CLOCK, CONTINUE, START, STOP, song_position
from improv.music.time import Metre

TICK = bytes((CLOCK,))


class FakeSink:
    """Collects what a ClockSender or Metronome schedules."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, bytes]] = []
        self.notes: list[tuple[int, int, float, float, int]] = []

    def schedule(self, time: float, data: bytes) -> None:
        self.messages.append((time, data))

    def schedule_note(
        self, pitch: int, velocity: int, on_time: float, off_time: float, channel: int = 0
    ) -> int:
        self.notes.append((pitch, velocity, on_time, off_time, channel))
        return len(self.notes)


def test_internal_clock_maps_time_and_beats_both_ways() -> None:
    clock = InternalClock(120.0, start_time=100.0)
    assert clock.beat_at(100.0) == 0.0
    assert clock.beat_at(101.0) == pytest.approx(2.0)
    assert clock.time_at(8.0) == pytest.approx(104.0)
    assert clock.beat_at(99.0) == pytest.approx(-2.0)  # a count-in runs before bar 0
    pos = position(clock, 100.0 + 0.5 * 9)  # beat 9: bar 2, beat 1
    assert (pos.bar, pos.beat) == (2, pytest.approx(1.0))
    assert next_bar_time(clock, 100.1) == pytest.approx(102.0)
    assert next_grid_time(clock, 100.0, 1.0) == pytest.approx(100.5)  # strictly after


def test_metre_shapes_bars() -> None:
    clock = InternalClock(60.0, start_time=0.0, metre=Metre(6, 8))  # 3 beats a bar
    assert position(clock, 7.5).bar == 2
    assert next_bar_time(clock, 0.1) == pytest.approx(3.0)


def test_tempo_change_lands_on_the_next_bar_without_a_jump() -> None:
    clock = InternalClock(120.0, start_time=0.0)  # a bar lasts 2 s
    when = clock.set_tempo(60.0, t=2.5)
    assert when == pytest.approx(4.0)  # bar 2
    assert clock.beat_at(3.999) == pytest.approx(7.998)
    assert clock.beat_at(4.0) == pytest.approx(8.0)  # continuous
    assert clock.beat_at(5.0) == pytest.approx(9.0)  # one beat a second now
    assert clock.time_at(12.0) == pytest.approx(8.0)
    assert clock.bpm_at(3.0) == 120.0 and clock.bpm_at(4.5) == 60.0
    clock.set_tempo(240.0, t=3.0)  # replaces the pending change
    assert clock.bpm_at(4.5) == 240.0


def test_bad_tempo_is_refused() -> None:
    with pytest.raises(ValueError):
        InternalClock(0.0, start_time=0.0)


def feed_ticks(
    follower: MidiClockFollower, start: float, bpm: float, count: int, jitter: float = 0.0
) -> float:
    """Feed ``count`` ticks from ``start``; returns the time of the next tick."""
    period = 60.0 / (bpm * PPQN)
    rng = random.Random(7)
    for i in range(count):
        follower.feed(TICK, start + i * period + rng.uniform(0, jitter))
    return start + count * period


def test_follower_converges_to_the_tempo_of_a_jittery_tick_stream() -> None:
    follower = MidiClockFollower(initial_bpm=90.0)
    follower.feed(bytes((START,)), 10.0)
    # JACK delivers in 64-frame periods at 48 kHz: up to 1.33 ms late
    feed_ticks(follower, 10.01, 132.0, 24 * 8, jitter=0.00133)
    assert follower.bpm == pytest.approx(132.0, rel=0.002)
    t = 10.01 + 8 * 60.0 / 132.0
    assert follower.beat_at(t) == pytest.approx(8.0, abs=0.02)
    assert follower.time_at(8.0) == pytest.approx(t, abs=0.002)


def test_follower_keeps_the_tempo_through_late_and_bunched_ticks() -> None:
    # a loaded machine: every tick up to 1.5 ms late, and now and then a stall of 10 to
    # 60 ms that delivers all the ticks due in it at once
    follower = MidiClockFollower(initial_bpm=120.0)
    follower.feed(bytes((START,)), 0.0)
    period = 60.0 / (300.0 * PPQN)
    rng = random.Random(3)
    stall_end = -1.0
    for i in range(24 * 32):
        due = 0.01 + i * period
        if due > stall_end and rng.random() < 0.02:
            stall_end = due + rng.uniform(0.01, 0.06)
        arrival = max(due, stall_end) + rng.uniform(0, 0.0015)
        follower.feed(TICK, arrival)
        if i >= 48:  # from the third beat on
            assert follower.bpm == pytest.approx(300.0, rel=0.01), i
            assert follower.time_at(i / 24 + 1) == pytest.approx(due + 0.2, abs=0.004), i
    assert follower.outliers > 20


@pytest.mark.parametrize("held_up", [2, 4, 6, 10])
def test_follower_keeps_a_known_tempo_when_the_first_ticks_after_a_start_come_bunched(
    held_up: int,
) -> None:
    """A master starts again; its first ticks are held up and come at once, the rest on
    time. A line through them would run fast (notes planned early, once 0.18 beats on
    the bass in a loaded run); the known tempo is kept and the phase comes from the
    ticks that were on time."""
    follower = MidiClockFollower(initial_bpm=120.0)
    follower.feed(bytes((START,)), 0.0)
    stop = feed_ticks(follower, 0.01, 300.0, 24 * 8)
    follower.feed(bytes((STOP,)), stop)
    start = stop + 0.6
    follower.feed(bytes((START,)), start - 0.01)
    period = 60.0 / (300.0 * PPQN)
    for i in range(24 * 4):
        due = start + i * period
        follower.feed(TICK, max(due, start + 0.03) if i < held_up else due)
        if i >= held_up:
            assert follower.time_at(i / 24 + 1) == pytest.approx(due + 0.2, abs=0.002), i
    assert follower.bpm == pytest.approx(300.0, rel=0.001)


def test_follower_tracks_a_tempo_change() -> None:
    follower = MidiClockFollower()
    follower.feed(bytes((START,)), 0.0)
    t = feed_ticks(follower, 0.001, 100.0, 24 * 4)
    feed_ticks(follower, t, 140.0, 24 * 4)
    assert follower.bpm == pytest.approx(140.0, rel=0.001)
    assert follower.beat_at(t + 4 * 60.0 / 140.0 - 1e-6) == pytest.approx(8.0, abs=0.05)


def test_follower_start_stop_continue_and_song_position() -> None:
    follower = MidiClockFollower()
    assert follower.feed(bytes((START,)), 0.0) == "start"
    assert follower.beat_at(0.0) == 0.0 and follower.running
    t = feed_ticks(follower, 0.01, 120.0, 48)  # two beats
    assert follower.beat_at(t - 60.0 / (120 * PPQN)) == pytest.approx(47 / 24)
    assert follower.feed(bytes((STOP,)), t) == "stop"
    frozen = follower.beat_at(t)
    assert frozen == pytest.approx(2.0)  # the next tick would have been beat 2
    assert follower.beat_at(t + 10.0) == frozen and math.isinf(follower.time_at(4.0))
    feed_ticks(follower, t + 0.5, 120.0, 24)  # clocks while stopped: tempo only
    assert follower.beat_at(t + 1.0) == frozen
    assert follower.feed(song_position(16), t + 1.0) == "position"  # bar 1 (16 sixteenths)
    assert follower.beat_at(t + 1.0) == 4.0
    assert follower.feed(bytes((CONTINUE,)), t + 1.1) == "continue"
    follower.feed(TICK, t + 1.2)
    assert follower.beat_at(t + 1.2) == pytest.approx(4.0)
    follower.feed(TICK, t + 1.2 + 60.0 / (120 * PPQN))
    assert follower.beat_at(t + 1.2 + 60.0 / (120 * PPQN)) == pytest.approx(4.0 + 1 / 24)


def test_follower_holds_when_ticks_stop_coming() -> None:
    follower = MidiClockFollower()
    follower.feed(bytes((START,)), 0.0)
    t = feed_ticks(follower, 0.0, 120.0, 24)
    assert follower.beat_at(t + 5.0) == pytest.approx(1.0)  # at most one tick past the last


def test_follower_counts_silence_from_a_start_until_its_first_tick() -> None:
    """A master's first tick comes a moment after its START or CONTINUE: the silence is
    counted from that message, not from a tick of a run before (or none at all), so a
    start is never taken for a lost clock."""
    follower = MidiClockFollower()
    assert math.isinf(follower.silent_for(0.0))  # nothing heard yet
    follower.feed(bytes((START,)), 1.0)
    assert follower.silent_for(1.01) == pytest.approx(0.01)
    assert follower.silent_for(1.01) < follower.lost_after_s
    t = feed_ticks(follower, 1.02, 120.0, 24)
    follower.feed(bytes((STOP,)), t)
    follower.feed(bytes((CONTINUE,)), t + 10.0)  # ten seconds stopped, then CONTINUE
    assert follower.silent_for(t + 10.02) == pytest.approx(0.02)
    assert follower.silent_for(t + 11.0) > follower.lost_after_s  # no tick at all: lost


def test_follower_ignores_other_messages() -> None:
    follower = MidiClockFollower()
    assert follower.feed(bytes((0x90, 60, 100)), 1.0) is None
    assert follower.feed(b"", 1.0) is None
    assert not follower.running and follower.beat_at(1.0) == 0.0


def test_clock_sender_starts_on_beat_and_ticks_24_per_beat() -> None:
    clock = InternalClock(120.0, start_time=10.0)
    sink = FakeSink()
    sender = ClockSender(sink, clock, from_beat=-1.0)  # a beat of count-in
    assert sender.fill(10.0 + 0.5) == 24 + 25  # from beat -1 up to and including beat 1
    times = [t for t, data in sink.messages if data == TICK]
    assert times[0] == pytest.approx(9.5)
    assert all(b - a == pytest.approx(0.5 / 24) for a, b in itertools.pairwise(times))
    start = [t for t, data in sink.messages if data == bytes((START,))]
    assert start == [pytest.approx(10.0)]
    i = sink.messages.index((start[0], bytes((START,))))
    assert sink.messages[i + 1] == (pytest.approx(10.0), TICK)  # START, then beat 0's tick
    sender.fill(10.5)  # nothing twice
    assert len([m for m in sink.messages if m[1] == TICK]) == 49
    sender.stop(11.0)
    assert sender.fill(20.0) == 0 and sink.messages[-1] == (11.0, bytes((STOP,)))


def test_count_in_and_metronome_accent_the_bar_line() -> None:
    clock = InternalClock(60.0, start_time=100.0, metre=Metre(3, 4))
    sink = FakeSink()
    count_in = Metronome.count_in(sink, clock, bars=1)
    assert count_in.fill(1000.0) == 3 and count_in.done
    pitches = [n[0] for n in sink.notes]
    assert pitches == [76, 77, 77]  # accent on the count-in's bar line
    assert [n[2] for n in sink.notes] == [97.0, 98.0, 99.0]
    assert all(n[4] == 9 for n in sink.notes)  # channel 10
    sink.notes.clear()
    metronome = Metronome(sink, clock)
    metronome.fill(103.5)
    assert [n[0] for n in sink.notes] == [76, 77, 77, 76]
