"""Precise MIDI output: every event at an absolute time, sent by a thread of its own.

The engine decides *what* to play well ahead; the scheduler decides nothing but *when*.
Events wait in a heap keyed by their absolute ``time.monotonic()`` deadline. A
dedicated sender thread (neither the event loop's nor the model's) sleeps on a
condition until ``spin_s`` before the next deadline, then spin-waits the rest: a
sleep wakes late by the kernel's timer slack, a short spin does not (what the spin buys
and costs: ``improv bench scheduler``, docs/realtime-io.md). A thread waking from its
sleep needs the GIL, which a busy Python thread keeps for up to
``sys.getswitchinterval()``, so the scheduler shortens that interval while it runs; even
so a busy Python thread in the same process costs milliseconds at the tail. For real
ports use :class:`improv.output.sender.ProcessScheduler`, the same scheduler in a
process of its own.

Send error (send time minus scheduled time) is recorded for every message into a
preallocated ring (a plain ``array``: the sender process never imports numpy, whose
buffers would cost it 100 MB of locked memory). Note-off bookkeeping lives here too:
every note-on sent gets its note-off, a re-struck pitch is released before it sounds
again, ``cancel_after`` (barge-in) drops what has not started and ends what sounds, and
``panic`` silences everything, pedal included.
"""

from __future__ import annotations

import heapq
import logging
import os
import sys
import threading
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeAlias

from improv.io.midi import (
    NOTE_OFF,
    NOTE_ON,
    MidiOutput,
    NoteTracker,
    note_off,
    note_on,
)
from improv.timebase import now

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

_RAW, _NOTE_ON, _NOTE_OFF = 0, 1, 2

# (time, sequence, kind, data, note id): tuples order by time, then by arrival
_Item: TypeAlias = tuple[float, int, int, bytes, int]

SentCallback: TypeAlias = Callable[[bytes, float, float], None]
"""``on_sent(data, scheduled, sent)``: called after each message went out (on the sender
thread; on the caller's for :meth:`Scheduler.panic`). Re-strike note-offs and panic
messages are reported too."""


@dataclass(frozen=True, slots=True)
class SchedulerStats:
    """Send figures; errors are send time minus scheduled time, in milliseconds."""

    sent: int
    failed: int
    cancelled: int
    superseded: int
    pending: int
    send_error_ms_p50: float
    send_error_ms_p99: float
    send_error_ms_max: float
    late: int  # messages sent more than 1 ms after their time
    by_standby: int = 0  # messages a standby sender sent (see serve_overdue)

    def as_dict(self) -> dict[str, float | int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


class OutputScheduler(Protocol):
    """What the agent plays through: a :class:`Scheduler` (a thread of this process) or
    a :class:`~improv.output.sender.ProcessScheduler` (a process of its own)."""

    def start(self) -> object: ...

    def stop(self, *, release: bool = True, timeout: float = 1.0) -> None: ...

    def close(self) -> None: ...

    def schedule(self, time: float, data: bytes) -> None: ...

    def schedule_note(
        self, pitch: int, velocity: int, on_time: float, off_time: float, channel: int = 0
    ) -> int: ...

    def cancel_after(self, time: float, channel: int | None = None) -> int | None: ...

    def panic(self) -> int | None: ...

    def send(self, data: bytes) -> bool: ...

    def add_status_listener(self, listener: Callable[[bool], None]) -> None: ...

    def stats(self) -> SchedulerStats: ...

    def send_errors(self) -> np.ndarray: ...


class Scheduler:
    """Sends MIDI bytes to one output at absolute monotonic times.

    Thread-safe: schedule from the event loop (or anywhere); the sender thread sends.
    Use as a context manager, or ``start()`` / ``stop()``.
    """

    def __init__(
        self,
        output: MidiOutput,
        *,
        spin_s: float = 0.0005,
        capacity: int = 1 << 16,
        switch_interval_s: float | None = 0.0005,
        clock: Callable[[], float] = now,
        on_sent: SentCallback | None = None,
    ) -> None:
        self.output = output
        self.on_sent = on_sent
        self.spin_s = spin_s
        self._clock = clock
        self._switch_interval_s = switch_interval_s
        self._saved_switch_interval: float | None = None
        self._heap: list[_Item] = []
        self._lock = threading.Lock()  # the heap's; taken bare where every microsecond counts
        self._cond = threading.Condition(self._lock)
        self._send_lock = threading.Lock()
        self._seq = 0
        self._next_note_id = 1
        self._running = False
        self._thread: threading.Thread | None = None
        self.tracker = NoteTracker()  # what sounds on the output, as sent
        self._owner = [0] * (16 * 128)  # note id owning each (channel, pitch)
        self._errors = array("d", bytes(8 * capacity))  # seconds, a ring
        self._count = 0
        self._max_error = 0.0
        self._late = 0
        self._by_standby = 0
        self.last_late: tuple[float, float] = (0.0, 0.0)  # (deadline, error) of the latest
        self._failed = 0
        self._cancelled = 0
        self._superseded = 0

    # --- life cycle -----------------------------------------------------------------

    def start(self) -> Scheduler:
        """Start the sender thread."""
        if self._thread is not None:
            return self
        if self._switch_interval_s is not None:
            self._saved_switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(self._saved_switch_interval, self._switch_interval_s))
        self._running = True
        self._thread = threading.Thread(target=self._run, name="improv-sender", daemon=True)
        self._thread.start()
        return self

    def start_inline(self) -> Scheduler:
        """Start without a thread: the caller sends by calling :meth:`serve_due` in time.

        For a process whose one busy thread is the sender (:mod:`improv.output.sender`):
        a second busy thread would compete with it for the GIL at the worst moments.
        """
        self._running = True
        return self

    def stop(self, *, release: bool = True, timeout: float = 1.0) -> None:
        """Stop the sender; with ``release``, silence everything (see :meth:`panic`)."""
        with self._cond:
            self._running = False
            self._cond.notify()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
        if release:
            self.panic()
        if self._saved_switch_interval is not None:
            sys.setswitchinterval(self._saved_switch_interval)
            self._saved_switch_interval = None

    def __enter__(self) -> Scheduler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def close(self) -> None:
        """Stop (silencing everything); the scheduler cannot be restarted after it."""
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- scheduling -----------------------------------------------------------------

    def schedule(self, time: float, data: bytes) -> None:
        """Send ``data`` (one complete MIDI message) at ``time`` (monotonic seconds)."""
        if not data:
            raise ValueError("empty MIDI message")
        self._push(time, _RAW, bytes(data), 0)

    def schedule_note(
        self, pitch: int, velocity: int, on_time: float, off_time: float, channel: int = 0
    ) -> int:
        """A note from ``on_time`` to ``off_time``; its note-off is guaranteed. Returns its id."""
        check_note(pitch, velocity, on_time, off_time, channel)
        with self._cond:
            note_id = self._next_note_id
            self._next_note_id += 1
            self._push_locked(on_time, _NOTE_ON, note_on(channel, pitch, velocity), note_id)
            self._push_locked(off_time, _NOTE_OFF, note_off(channel, pitch), note_id)
            self._cond.notify()
        return note_id

    def _push(self, time: float, kind: int, data: bytes, note_id: int) -> None:
        with self._cond:
            self._push_locked(time, kind, data, note_id)
            self._cond.notify()

    def _push_locked(self, time: float, kind: int, data: bytes, note_id: int) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (time, self._seq, kind, data, note_id))

    def cancel_after(self, time: float, channel: int | None = None) -> int:
        """Barge-in: notes starting at or after ``time`` are dropped, sounding ones end then.

        Only note messages are touched (on ``channel``, or all); clock ticks, clicks on
        other channels and controllers stay. Returns how many notes were dropped.
        """
        end = max(time, self._clock())
        with self._cond:
            dropped_ids: set[int] = set()
            dropped = 0
            kept: list[_Item] = []
            ending: list[_Item] = []
            for item in self._heap:
                t, _seq, kind, data, note_id = item
                if t < time or not _is_note(data, channel):
                    kept.append(item)
                elif kind == _NOTE_ON or (kind == _RAW and data[0] & 0xF0 == NOTE_ON and data[2]):
                    dropped_ids.add(note_id)
                    dropped += 1
                else:
                    ending.append(item)
            for _t, seq, kind, data, note_id in ending:
                if kind == _NOTE_OFF and note_id in dropped_ids:
                    continue  # its note never starts
                kept.append((end, seq, kind, data, note_id))
            heapq.heapify(kept)
            self._heap[:] = kept
            self._cancelled += dropped
            self._cond.notify()
        return dropped

    def panic(self) -> int:
        """Drop everything pending, release every sounding note, pedal up, CC 123.

        Runs on the caller's thread and works whether or not the sender runs (shutdown,
        exceptions). Returns the number of messages sent.
        """
        with self._cond:
            self._cancelled += sum(1 for item in self._heap if item[2] == _NOTE_ON)
            self._heap.clear()
        with self._send_lock:
            messages = self.tracker.release_messages()
            for data in messages:
                if self.output.send(data):
                    sent_at = self._clock()
                    self._report(data, sent_at, sent_at)
            self.tracker.reset()
            self._owner = [0] * (16 * 128)
        return len(messages)

    def send(self, data: bytes) -> bool:
        """Send ``data`` now, on the caller's thread (whether or not the sender runs):
        for what must go out at once, such as CC 123 when a port comes back."""
        with self._send_lock:
            ok = self.output.send(data)
            if ok:
                self.tracker.feed(data)
        if ok:
            sent_at = self._clock()
            self._report(data, sent_at, sent_at)
        return ok

    def add_status_listener(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(connected)`` when the output's peer comes or goes (if it can tell)."""
        add = getattr(self.output, "add_status_listener", None)
        if add is not None:
            add(listener)

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    # --- the sender thread ----------------------------------------------------------

    def serve_due(self) -> float | None:
        """Send every message due within ``spin_s``, each spun to its exact time.

        Returns when the next one is due (None when nothing is pending, or stopped). The
        message spun for stays in the heap until its time: should this thread stall
        meanwhile, a standby sender (:meth:`serve_overdue`) can still send it, in order.
        """
        clock = self._clock
        while True:
            with self._cond:
                if not self._running or not self._heap:
                    return None
                deadline = self._heap[0][0]
            if deadline - clock() > self.spin_s:
                return deadline
            while clock() < deadline:
                pass
            self._send_first(clock())

    def next_deadline(self) -> float | None:
        """When the next message is due (None when nothing is pending, or stopped); no
        lock taken."""
        heap = self._heap
        return heap[0][0] if heap and self._running else None

    def serve_overdue(self, late_s: float) -> int:
        """Send every message more than ``late_s`` past its time, at once; how many.

        For a standby sender on another CPU: what :meth:`serve_due` should have sent, had
        its thread been running.
        """
        clock = self._clock
        served = 0
        while self._send_first(clock() - late_s):
            served += 1
        with self._cond:
            self._by_standby += served
        return served

    def _send_first(self, due_by: float) -> bool:
        """Send the first message if it is due by ``due_by``; whether one was.

        Taking it from the heap and sending it are one step under the send lock, so of
        two threads sending (the sending thread and a standby) neither can send a later
        message while the other holds an earlier one: none goes out of order, and no
        note-off overtakes its note-on (which would leave the note hanging).
        """
        with self._send_lock:
            with self._lock:
                heap = self._heap
                if not self._running or not heap or heap[0][0] > due_by:
                    return False
                item = heapq.heappop(heap)
            sent = self._dispatch_locked(item)
        if sent is not None:
            self._report(item[3], item[0], sent)
        return True

    def _run(self) -> None:
        try_realtime_priority()
        clock = self._clock
        cond = self._cond
        heap = self._heap
        while True:
            with cond:
                if not self._running:
                    return
                if not heap:
                    cond.wait()
                    continue
                wait = heap[0][0] - clock() - self.spin_s
                if wait > 0:
                    cond.wait(wait)
                    continue
            self.serve_due()

    def _dispatch_locked(self, item: _Item) -> float | None:
        """Send one message (the caller holds the send lock); when, or None if not sent."""
        deadline, _seq, kind, data, note_id = item
        if kind == _NOTE_ON:
            index = (data[0] & 0x0F) * 128 + data[1]
            if self.tracker.is_down(data[0] & 0x0F, data[1]):
                retrigger = note_off(data[0] & 0x0F, data[1])
                if self.output.send(retrigger):
                    self.tracker.feed(retrigger)
                    self._report(retrigger, deadline, self._clock())
            self._owner[index] = note_id
        elif kind == _NOTE_OFF:
            index = (data[0] & 0x0F) * 128 + data[1]
            if self._owner[index] != note_id:
                self._superseded += 1  # the pitch was struck again: that note owns it
                return None
            self._owner[index] = 0
        ok = self.output.send(data)
        sent_at = self._clock()
        if ok:
            self.tracker.feed(data)
        else:
            self._failed += 1
        error = sent_at - deadline
        self._errors[self._count % len(self._errors)] = error
        self._count += 1
        if error > self._max_error:
            self._max_error = error
        if error > 0.001:
            self._late += 1
            self.last_late = (deadline, error)
        return sent_at if ok else None

    def _report(self, data: bytes, scheduled: float, sent_at: float) -> None:
        if self.on_sent is not None:
            try:
                self.on_sent(data, scheduled, sent_at)
            except Exception:
                log.exception("on_sent callback failed")

    # --- figures --------------------------------------------------------------------

    @property
    def late(self) -> int:
        """How many messages went out over a millisecond late."""
        return self._late

    def stats(self, *, percentiles: bool = True) -> SchedulerStats:
        """Counts and send-error figures; without ``percentiles`` p50 and p99 are left 0
        (they sort every recorded error: milliseconds for a full ring)."""
        p50 = p99 = 0.0
        if percentiles:
            errors = sorted(self._errors[: min(self._count, len(self._errors))])
            p50, p99 = percentile(errors, 50) * 1000.0, percentile(errors, 99) * 1000.0
        return SchedulerStats(
            sent=self._count - self._failed,
            failed=self._failed,
            cancelled=self._cancelled,
            superseded=self._superseded,
            pending=len(self._heap),
            send_error_ms_p50=float(p50),
            send_error_ms_p99=float(p99),
            send_error_ms_max=self._max_error * 1000.0,
            late=self._late,
            by_standby=self._by_standby,
        )

    def send_errors(self) -> np.ndarray:
        """A copy of the recorded send errors in seconds (the last ``capacity`` of them)."""
        import numpy as np

        return np.asarray(self.send_error_array())

    def send_error_array(self) -> array[float]:
        """:meth:`send_errors` as a plain ``array``, oldest first (no numpy needed)."""
        if self._count <= len(self._errors):
            return self._errors[: self._count]
        start = self._count % len(self._errors)
        return self._errors[start:] + self._errors[:start]


def percentile(ordered: list[float], q: float) -> float:
    """The ``q``-th percentile of sorted values, interpolated as numpy's default does."""
    if not ordered:
        return 0.0
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def check_note(pitch: int, velocity: int, on_time: float, off_time: float, channel: int) -> None:
    """Refuse a note no MIDI device could play (a programming error upstream)."""
    if not (0 <= pitch <= 127 and 1 <= velocity <= 127 and 0 <= channel <= 15):
        raise ValueError(f"bad note: pitch {pitch}, velocity {velocity}, channel {channel}")
    if not off_time > on_time:
        raise ValueError(f"note ends before it starts: {on_time} -> {off_time}")


def _is_note(data: bytes, channel: int | None) -> bool:
    status = data[0]
    if status >= 0xF0 or status & 0xF0 not in (NOTE_ON, NOTE_OFF):
        return False
    return channel is None or status & 0x0F == channel


def realtime_priority() -> int:
    """The ``SCHED_FIFO`` priority of improv's sending threads: ``IMPROV_RT_PRIORITY``
    (1 to 99), else 10. Beside a JACK server, whose clients run at its priority less 5,
    a lower setting lets a JACK client preempt a sender spinning to a message's time
    (measured in docs/realtime-io.md)."""
    setting = os.environ.get("IMPROV_RT_PRIORITY", "10")
    try:
        return max(1, min(99, int(setting)))
    except ValueError:
        log.warning("IMPROV_RT_PRIORITY=%r is not a number: using 10", setting)
        return 10


def try_realtime_priority() -> bool:
    """Ask for a real-time or raised priority for this thread; fine if refused. True
    when it runs ``SCHED_FIFO``."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(realtime_priority()))
        log.debug("sender thread runs SCHED_FIFO")
        return True
    except (AttributeError, OSError):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -5)
        except (AttributeError, OSError):
            log.debug("sender thread keeps normal priority")
    return False
