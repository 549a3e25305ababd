"""The standby sender: it sends what the sending thread left unsent past its time, and
with both running every message goes out once."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from improv.io.midi import control_change
from improv.io.midi.loopback import RecordingOutput
from improv.output.scheduler import Scheduler
from improv.output.standby import MARGIN_S, Standby, split_cpus
from improv.timebase import now

pytestmark = pytest.mark.skipif(split_cpus() is None, reason="needs two CPUs")


@pytest.fixture
def standby_for() -> Iterator[list[Standby]]:
    started: list[Standby] = []
    yield started
    for standby in started:
        standby.close()


def _start(scheduler: Scheduler, started: list[Standby]) -> Standby:
    cpus = split_cpus()
    assert cpus is not None
    standby = Standby(scheduler, cpus[1]).start()
    assert standby is not None, "no clock_nanosleep on this Linux?"
    started.append(standby)
    return standby


def test_a_message_the_sending_thread_misses_is_sent_by_the_standby(
    standby_for: list[Standby],
) -> None:
    sent = threading.Event()
    output = RecordingOutput()
    scheduler = Scheduler(output, on_sent=lambda *_: sent.set()).start_inline()
    _start(scheduler, standby_for)
    due = now() + 0.01
    scheduler.schedule(due, control_change(0, 1, 0))  # and nobody calls serve_due
    assert sent.wait(5.0)
    (event,) = output.take()
    assert MARGIN_S <= event.time - due < 0.05  # its margin, then at once
    assert scheduler.stats(percentiles=False).by_standby == 1


def test_with_both_running_every_message_goes_out_once_in_order(
    standby_for: list[Standby],
) -> None:
    output = RecordingOutput()
    scheduler = Scheduler(output).start_inline()
    _start(scheduler, standby_for)
    start = now() + 0.05
    for i in range(300):  # a message every 0.7 ms: both threads get some
        scheduler.schedule(start + i * 0.0007, control_change(0, 1, i % 128))
    while (due := scheduler.serve_due()) is not None:
        while now() < due - scheduler.spin_s:
            pass  # the sending thread, as the sender process runs it (minus its naps)
    events = output.take()
    assert [e.data[2] for e in events] == [i % 128 for i in range(300)]
    assert scheduler.stats(percentiles=False).sent == 300
