"""A standby sender: a second thread, on another CPU, for when the sender's CPU stalls.

On a virtual machine a vCPU is now and then not run by the host for milliseconds; a
sender sleeping on it wakes that much late, whatever its code. Stalls mostly hit one
vCPU at a time. So the sender process pins its sending thread to one CPU and runs this
thread, pinned to another, which sleeps until each message's time plus a margin and
sends whatever is then still unsent (:meth:`Scheduler.serve_overdue`). It sleeps in
``clock_nanosleep`` through ctypes, which lets go of the GIL, and holds the GIL only
for the few microseconds of a look at the heap: the sending thread, woken on time,
never waits for it (what it buys: docs/realtime-io.md, "What each measure buys").
Linux only (``clock_nanosleep`` with an absolute monotonic time, CPU
affinity); elsewhere, or with one CPU, there is no standby.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
from collections.abc import Callable

from improv.output.scheduler import Scheduler, try_realtime_priority
from improv.timebase import now

log = logging.getLogger(__name__)

MARGIN_S = 0.0003  # how late a message must be before the standby sends it
IDLE_S = 0.02  # how often it looks at an empty heap (new messages come at any time)
_CLOCK_MONOTONIC = 1
_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _clock_nanosleep() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).clock_nanosleep
    except (OSError, AttributeError):
        return None
    function.argtypes = [
        ctypes.c_int,
        ctypes.c_int,
        ctypes.POINTER(_Timespec),
        ctypes.POINTER(_Timespec),
    ]
    return function


def split_cpus() -> tuple[int, int] | None:
    """Two CPUs this process may run on (the sender's, the standby's), or None."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else None


def pin_this_thread(cpu: int) -> bool:
    """Keep the calling thread on ``cpu``; False where refused."""
    try:
        os.sched_setaffinity(threading.get_native_id(), {cpu})
    except (AttributeError, OSError):
        return False
    return True


class Standby:
    """The standby thread; :meth:`start` returns None where it cannot run."""

    def __init__(self, scheduler: Scheduler, cpu: int, margin_s: float = MARGIN_S) -> None:
        self.scheduler = scheduler
        self.cpu = cpu
        self.margin_s = margin_s
        self._sleep = _clock_nanosleep()
        self._closed = False
        self._thread: threading.Thread | None = None

    def start(self) -> Standby | None:
        if self._sleep is None:
            return None
        self._thread = threading.Thread(target=self._run, name="improv-standby", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop looking (the thread ends at its next wake-up, within ``IDLE_S``)."""
        self._closed = True

    def _run(self) -> None:
        pin_this_thread(self.cpu)
        try_realtime_priority()
        scheduler = self.scheduler
        wake = _Timespec()
        sleep = self._sleep
        assert sleep is not None
        while not self._closed:
            t = now()
            due = scheduler.next_deadline()
            until = min(due + self.margin_s, t + IDLE_S) if due is not None else t + IDLE_S
            if until > t:
                wake.tv_sec = int(until)
                wake.tv_nsec = int((until - wake.tv_sec) * 1e9)
                sleep(_CLOCK_MONOTONIC, _TIMER_ABSTIME, ctypes.byref(wake), None)
            if not self._closed:
                scheduler.serve_overdue(self.margin_s)
