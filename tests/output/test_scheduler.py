"""The scheduler: absolute send times, note-off bookkeeping, barge-in and panic."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from improv.io.midi import (
    CC_ALL_NOTES_OFF,
    CC_SUSTAIN,
    MidiEvent,
    NoteTracker,
    control_change,
    note_off,
    note_on,
)
from improv.io.midi.loopback import RecordingOutput
from improv.output.scheduler import Scheduler
from improv.timebase import now


class SignalOutput(RecordingOutput):
    """A recorder that signals when it has seen ``expected`` messages."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0  # sends tried, whether or not connected
        self.expected = 0
        self.reached = threading.Event()

    def send(self, data: bytes) -> bool:
        ok = super().send(data)
        self.attempts += 1
        if self.attempts >= self.expected:
            self.reached.set()
        return ok

    def wait_for(self, count: int, timeout: float = 5.0) -> list[MidiEvent]:
        """Wait until ``count`` sends have been tried in all; the messages that went out."""
        self.expected = count
        if self.attempts >= count:
            self.reached.set()
        assert self.reached.wait(timeout), f"only {self.attempts} of {count} messages"
        self.reached.clear()
        return list(self.events)


@pytest.fixture
def out() -> SignalOutput:
    return SignalOutput()


@pytest.fixture
def scheduler(out: SignalOutput) -> Iterator[Scheduler]:
    with Scheduler(out) as scheduler:
        yield scheduler


def all_released(events: list[MidiEvent]) -> bool:
    tracker = NoteTracker()
    for event in events:
        tracker.feed(event.data)
    return not tracker.any_sounding()


def test_messages_go_out_at_their_times(out: SignalOutput, scheduler: Scheduler) -> None:
    start = now() + 0.05
    times = [start + i * 0.01 for i in range(20)]
    for i, t in enumerate(reversed(times)):  # scheduling order does not matter
        scheduler.schedule(t, control_change(0, 1, i))
    events = out.wait_for(20)
    sent = [e.time for e in events]
    assert sent == sorted(sent)
    errors = sorted(s - t for s, t in zip(sent, times, strict=True))
    assert errors[0] >= 0  # never early; how late is a benchmark's (improv bench scheduler)
    stats = scheduler.stats()
    assert stats.sent == 20 and stats.failed == 0
    assert 0 <= stats.send_error_ms_p50 <= stats.send_error_ms_p99 <= stats.send_error_ms_max


def test_every_note_gets_its_note_off(out: SignalOutput, scheduler: Scheduler) -> None:
    start = now() + 0.02
    for i in range(10):
        scheduler.schedule_note(60 + i, 100, start + i * 0.005, start + i * 0.005 + 0.02, 1)
    events = out.wait_for(20)
    assert all_released(events)
    assert [e.pitch for e in events if e.is_note_on] == list(range(60, 70))


def test_a_restruck_pitch_is_released_first_and_keeps_its_own_end(
    out: SignalOutput, scheduler: Scheduler
) -> None:
    scheduled: list[tuple[bytes, float]] = []
    scheduler.on_sent = lambda data, at, _sent: scheduled.append((data, at))
    start = now() + 0.02
    scheduler.schedule_note(60, 100, start, start + 0.05)  # long
    scheduler.schedule_note(60, 90, start + 0.02, start + 0.08)  # struck again over it
    out.wait_for(4)
    kinds = [("on" if d[0] == 0x90 else "off", round(t - start, 3)) for d, t in scheduled]
    # the first note's own note-off at +0.05 is superseded: the second note owns the pitch
    assert kinds == [("on", 0.0), ("off", 0.02), ("on", 0.02), ("off", 0.08)]
    assert [e.data[0] for e in out.events] == [0x90, 0x80, 0x90, 0x80]  # released, re-struck
    assert scheduler.stats().superseded == 1


def test_cancel_after_drops_future_notes_and_ends_sounding_ones(
    out: SignalOutput, scheduler: Scheduler
) -> None:
    start = now() + 0.02
    scheduler.schedule_note(60, 100, start, start + 1.0)  # sounding at the cut
    scheduler.schedule_note(62, 100, start + 0.5, start + 0.6)  # not started yet
    scheduler.schedule(start + 0.5, bytes((0xF8,)))  # clock ticks stay
    out.wait_for(1)
    cut = now() + 0.02
    assert scheduler.cancel_after(cut) == 1
    events = out.wait_for(3)
    assert [e.data[0] for e in events] == [0x90, 0x80, 0xF8]
    assert events[1].time < start + 0.3  # ended at the cut, not at +1.0
    assert all_released(events)
    assert scheduler.pending() == 0


def test_cancel_after_respects_the_channel(out: SignalOutput, scheduler: Scheduler) -> None:
    start = now() + 0.2
    scheduler.schedule_note(60, 100, start, start + 0.05, channel=0)
    scheduler.schedule_note(42, 100, start, start + 0.05, channel=9)  # a click
    assert scheduler.cancel_after(now(), channel=0) == 1
    events = out.wait_for(2)
    assert {e.channel for e in events} == {9}


def test_panic_releases_everything_including_the_pedal(
    out: SignalOutput, scheduler: Scheduler
) -> None:
    start = now() + 0.01
    scheduler.schedule(start, control_change(2, CC_SUSTAIN, 127))
    scheduler.schedule_note(50, 100, start, start + 10.0, channel=2)
    scheduler.schedule_note(55, 100, start, start + 10.0, channel=3)
    scheduler.schedule_note(57, 100, start + 5.0, start + 6.0, channel=3)
    out.wait_for(3)
    sent = scheduler.panic()
    events = out.take()
    assert sent == len(events) - 3 and all_released(events)
    released = {e.data for e in events[3:]}
    assert control_change(2, CC_SUSTAIN, 0) in released
    assert {control_change(c, CC_ALL_NOTES_OFF, 0) for c in (2, 3)} <= released
    assert scheduler.pending() == 0 and scheduler.stats().cancelled == 1


def test_stop_releases_sounding_notes(out: SignalOutput) -> None:
    scheduler = Scheduler(out).start()
    t = now() + 0.01
    scheduler.schedule_note(64, 100, t, t + 5.0)
    out.wait_for(1)
    scheduler.stop()
    assert not scheduler.running
    assert all_released(out.events)


def test_panic_works_without_the_sender_thread(out: SignalOutput) -> None:
    scheduler = Scheduler(out)
    scheduler.tracker.feed(note_on(0, 60, 100))  # as if sent before the thread died
    scheduler.panic()
    assert [e.data for e in out.events][:1] == [bytes((0x80, 60, 0))]


def test_send_failures_are_counted(out: SignalOutput, scheduler: Scheduler) -> None:
    out.set_connected(False)
    scheduler.schedule(now(), note_on(0, 60, 100))
    scheduler.schedule(now(), control_change(0, 7, 100))
    assert out.wait_for(2) == []
    scheduler.stop(release=False)  # joins the sender: its counts are final
    assert scheduler.stats().failed == 2
    assert not scheduler.tracker.any_sounding()  # a note that never went out does not sound


def test_bad_notes_are_refused(scheduler: Scheduler) -> None:
    with pytest.raises(ValueError):
        scheduler.schedule_note(128, 100, 1.0, 2.0)
    with pytest.raises(ValueError):
        scheduler.schedule_note(60, 100, 2.0, 1.0)
    with pytest.raises(ValueError):
        scheduler.schedule(1.0, b"")


def test_inline_scheduler_sends_only_what_is_due_when_served(out: SignalOutput) -> None:
    scheduler = Scheduler(out, spin_s=0.005).start_inline()
    t = now()
    scheduler.schedule(t + 10.0, control_change(0, 7, 100))
    scheduler.schedule_note(60, 100, t, t + 0.002)
    assert scheduler.pending() == 3
    # the note-on is due and its note-off within the spin window: both go, each on time
    assert scheduler.serve_due() == t + 10.0
    on, off = out.events
    assert on.data == note_on(0, 60, 100) and off.is_note_off and off.time >= t + 0.002
    assert not scheduler.running  # no thread: nothing more goes out unless served
    scheduler.stop()  # drops the pending controller, sends CC 123
    assert scheduler.serve_due() is None and scheduler.pending() == 0
    assert [e.data for e in out.events[2:]] == [control_change(0, CC_ALL_NOTES_OFF, 0)]


def test_percentile_matches_numpy() -> None:
    import numpy as np

    from improv.output.scheduler import percentile

    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 100, 1001):
        values = rng.exponential(size=n)
        for q in (0, 50, 99, 100):
            assert percentile(sorted(values), q) == pytest.approx(np.percentile(values, q))
    assert percentile([], 50) == 0.0


def test_a_note_off_never_overtakes_its_note_on_between_two_sending_threads() -> None:
    """The sending thread spins towards a note-on while a second one (a standby sender)
    finds it and its note-off overdue: both go out once, in order. Before, the spinning
    thread held the note-on out of the heap, the other sent the note-off first (dropped:
    not yet its pitch's owner), then the note-on went out: a hanging note."""
    out = RecordingOutput()
    in_spin = threading.Event()
    clock_calls = 0

    def clock() -> float:
        nonlocal clock_calls
        if threading.current_thread() is spinner:
            clock_calls += 1
            if clock_calls >= 3:  # past its check: spinning to the note-on
                in_spin.set()
        return now()

    scheduler = Scheduler(out, spin_s=1.0, clock=clock).start_inline()
    spinner = threading.Thread(target=lambda: scheduler.serve_due())
    t = now() + 0.5  # ample time for this thread to act while the other spins
    scheduler.schedule_note(60, 100, t, t + 0.001)
    spinner.start()
    assert in_spin.wait(5.0)
    assert scheduler.serve_overdue(-1.0) == 2  # as if both were late: the standby's view
    spinner.join(5.0)
    assert [e.data for e in out.take()] == [note_on(0, 60, 100), note_off(0, 60)]
    assert not scheduler.tracker.is_down(0, 60)
