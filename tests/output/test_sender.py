"""The sender process's one thread: calls are answered even when it is never quiet."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import pytest

from improv.io.midi import control_change
from improv.io.midi.loopback import NullOutput
from improv.output.scheduler import Scheduler, realtime_priority
from improv.output.sender import OutputSpec, ProcessScheduler, _Loop, _Pipe
from improv.timebase import now


def test_calls_are_answered_while_messages_are_due_every_two_milliseconds() -> None:
    first, sent = threading.Event(), threading.Event()
    count = 0

    def on_sent(data: bytes, scheduled: float, at: float) -> None:
        nonlocal count
        count += 1
        first.set()
        if count == 400:
            sent.set()

    with ProcessScheduler(OutputSpec(discard=True), on_sent=on_sent) as scheduler:
        start = now() + 0.2
        for i in range(400):  # never 3 ms without a message due: no quiet moment
            scheduler.schedule(start + i * 0.002, control_change(0, 7, i % 128))
        assert first.wait(5.0)  # the calls below land while messages are going out
        waits = []
        for _ in range(5):
            t = time.monotonic()
            assert scheduler.pending() > 0
            waits.append(time.monotonic() - t)
        assert sent.wait(5.0)
        errors = scheduler.send_errors()
    assert len(errors) == 400
    assert max(waits) < 0.5  # held for a quiet moment at most 50 ms, then answered


def test_a_barge_in_cut_is_posted_and_carried_out_on_arrival_while_notes_are_due() -> None:
    """A cut is a one-way post: the caller never waits, and the child cuts as it takes
    the post (not at a quiet moment), so no note after the cut goes out."""
    first = threading.Event()
    note_ons: list[float] = []  # the scheduled times of the note-ons that went out

    def on_sent(data: bytes, scheduled: float, at: float) -> None:
        if data[0] & 0xF0 == 0x90 and data[2]:
            note_ons.append(scheduled)
        first.set()

    with ProcessScheduler(OutputSpec(discard=True), on_sent=on_sent) as scheduler:
        start = now() + 0.2
        for i in range(200):  # a note every 2 ms: never a quiet moment
            on = start + i * 0.002
            scheduler.schedule_note(60 + i % 12, 100, on, on + 0.001)
        assert first.wait(5.0)
        cut = now() + 0.005
        assert scheduler.cancel_after(cut) is None  # posted: nothing to wait for
        scheduler.stop()  # a round trip: every report is in when it returns
    assert note_ons and max(note_ons) < cut
    assert len(note_ons) < 100  # the rest were dropped, not sent


def test_the_sender_process_keeps_numpy_out() -> None:
    """Its memory is locked: numpy's reserved buffers would make that 100 MB more."""
    with ProcessScheduler(OutputSpec(discard=True)) as scheduler:
        maps = Path(f"/proc/{scheduler.sender_pid}/maps").read_text()
    assert "numpy" not in maps and "python" in maps


@pytest.mark.parametrize(("setting", "expected"), [(None, 10), ("4", 4), ("0", 1), ("x", 10)])
def test_the_realtime_priority_is_10_or_as_set(
    setting: str | None, expected: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    if setting is None:
        monkeypatch.delenv("IMPROV_RT_PRIORITY", raising=False)
    else:
        monkeypatch.setenv("IMPROV_RT_PRIORITY", setting)
    assert realtime_priority() == expected


@pytest.mark.skipif(os.geteuid() != 0, reason="SCHED_FIFO needs root or rtprio rights")
def test_the_sending_thread_runs_at_the_set_realtime_priority(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IMPROV_RT_PRIORITY", "3")  # the child inherits the environment
    with ProcessScheduler(OutputSpec(discard=True)) as scheduler:
        pid = scheduler.sender_pid
        assert pid is not None
        policy = os.sched_getscheduler(pid)
        param = os.sched_getparam(pid)
    assert policy == os.SCHED_FIFO
    assert param.sched_priority == 3


def _loop_with(check_ports: Callable[[], None]) -> tuple[_Loop, Scheduler]:
    scheduler = Scheduler(NullOutput(), switch_interval_s=None).start_inline()
    loop = _Loop(_Pipe(None), scheduler, deque(), check_ports, check_every=0.0)  # type: ignore[arg-type]
    return loop, scheduler


def test_a_message_late_for_the_loops_own_work_is_logged_with_that_work(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop, scheduler = _loop_with(lambda: time.sleep(0.004))  # a port check that stalls
    scheduler.schedule(now() + 0.001, control_change(0, 1, 0))
    loop._chores()  # the message falls due during the port check
    scheduler.serve_due()
    loop._explain_late()
    assert scheduler.late == 1
    assert "ms late: the sender was busy with a port check" in caplog.text


def test_a_message_late_with_no_work_in_the_way_is_put_down_to_the_host(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop, scheduler = _loop_with(lambda: None)
    loop._chores()
    scheduler.schedule(now() + 0.002, control_change(0, 1, 0))
    time.sleep(0.005)  # the process wakes 3 ms late (the host ran something else)
    scheduler.serve_due()
    loop._explain_late()
    assert scheduler.late == 1
    assert "the sender was not running (host)" in caplog.text
