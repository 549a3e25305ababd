"""The scheduler in a process of its own: precise sends whatever the engine's threads do.

A Python thread that wakes at a deadline needs the GIL before it can send. In the jam
process the GIL is held by the event loop, the console view and the model thread, and
when the holder is itself preempted by another process the sender waits for it: on a
loaded two-core machine that costs milliseconds at the 99th percentile. Here the
:class:`~improv.output.scheduler.Scheduler` runs in a child process that does nothing
else: it opens the output port itself (from an :class:`OutputSpec`), takes commands
over a pipe, and reports what it sent, all on one thread (see :class:`_Loop`) that asks
for real-time priority. Beside it, pinned to another CPU, a standby thread that holds
the GIL only for a glance sends what that thread leaves unsent past its time, when the
host stalls its CPU (:mod:`improv.output.standby`).

:class:`ProcessScheduler` offers the same methods as ``Scheduler``; what crosses the
pipe is typed (:mod:`improv.output.commands`). ``cancel_after`` and ``panic`` are
one-way posts, carried out the moment they arrive (nobody waits for them); ``send`` is
a round trip answered at once; queries (``stats``, ``pending`` ...) are round trips
answered within 50 ms (at once unless a message is due within 3 ms).
Times cross the process boundary unchanged: ``time.monotonic()`` is system-wide.
The child never outlives the parent: when the pipe breaks (the parent died, even by
SIGKILL) it silences everything and exits. It ignores SIGINT and SIGTERM, which a
terminal or service manager sends to the whole process group: the parent stops it in
order, after its last note-off. The child's port status (a vanished peer, its return)
reaches the parent's status listeners, and the child's own death reads as a lost port.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import itertools
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from improv.errors import ImprovError
from improv.io.midi.messages import Throttled
from improv.output.commands import Call as CallCommand
from improv.output.commands import (
    CancelAfter,
    Close,
    Command,
    Panic,
    Pending,
    PortStatus,
    Ready,
    Reply,
    Report,
    Request,
    Schedule,
    ScheduleNote,
    Send,
    SendErrors,
    Sent,
    Stats,
    Stop,
)
from improv.output.scheduler import (
    Scheduler,
    SchedulerStats,
    SentCallback,
    check_note,
    try_realtime_priority,
)
from improv.output.standby import Standby, pin_this_thread, split_cpus
from improv.timebase import now

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

_FLUSH_S = 0.02  # how often the child reports what it sent
_QUIET_S = 0.003  # chores and calls only when no message is due sooner
_HOLD_S = 0.05  # longest a call or a chore waits for a quiet moment
_NAP_S = 0.002  # the last stretch before a message's spin is slept, not selected
# posts and urgent calls are carried out as they arrive, not at a quiet moment: each
# takes well under a millisecond, and waiting would let the notes a barge-in cuts go out
# meanwhile, or hold back a panic's silence or a message that must go out now


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """How the child opens its output port (the arguments of ``open_output``)."""

    name: str | None = None
    api: str | None = "auto"
    virtual: bool = False
    client_name: str = "improv-out"
    port_name: str = "out"
    wait_s: float = 0.0
    discard: bool = False  # no port: what is sent is dropped (``improv jam --demo``)
    synth: str | None = None  # the built-in synth's address: fed what was sent, after it
    synth_channels: tuple[int, ...] | None = None  # MIDI channel -> the synth's (16)

    def open(self) -> Any:
        if self.discard:
            from improv.io.midi.loopback import NullOutput

            return NullOutput()
        from improv.io.midi import open_output

        return open_output(
            self.name,
            api=self.api,
            virtual=self.virtual,
            client_name=self.client_name,
            port_name=self.port_name,
            wait_s=self.wait_s,
        )


class ProcessScheduler:
    """A :class:`Scheduler` whose sender thread lives in a child process."""

    def __init__(
        self,
        spec: OutputSpec,
        *,
        spin_s: float = 0.0005,
        capacity: int = 1 << 16,
        on_sent: SentCallback | None = None,
        call_timeout_s: float = 2.0,
    ) -> None:
        self.spec = spec
        self.name = spec.name or f"{spec.client_name}:{spec.port_name}"
        self.on_sent = on_sent
        self._spin_s = spin_s
        self._capacity = capacity
        self._timeout = call_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        self._backlog: list[Command] = []  # commands given before start
        self._calls: dict[int, list[Any]] = {}  # call id -> [event, result]
        self._ids = itertools.count(1)
        self._note_ids = itertools.count(1)
        self._reader: threading.Thread | None = None
        self._listeners: list[Callable[[bool], None]] = []
        self._gone = False  # the child has ended (or never answered)
        self._closing = False
        self._last_stats = SchedulerStats(0, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0)
        self._unreachable = Throttled()

    # --- life cycle -----------------------------------------------------------------

    def start(self) -> ProcessScheduler:
        """Start the child and wait until its port is open (its errors are raised here).

        The child is a fresh interpreter (``python -m improv.output.sender``), never a
        fork of this threaded process, and talks over a socket pair.
        """
        if self._process is not None:
            return self
        ours, theirs = socket.socketpair()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "improv.output.sender", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        conn = Connection(ours.detach())
        conn.send((self.spec, self._spin_s, self._capacity))
        if not conn.poll(30.0 + self.spec.wait_s):
            self._process.kill()
            self._process.wait(5)
            self._process = None
            conn.close()
            raise ImprovError("the MIDI sender process did not start")
        try:
            ready: Ready = conn.recv()
        except EOFError:
            ready = Ready(error=ImprovError("the MIDI sender process died on start"))
        if ready.error is not None:
            self._process.wait(5)
            self._process = None
            conn.close()
            error = ready.error
            raise error if isinstance(error, ImprovError) else ImprovError(str(error))
        self.name = ready.name
        self._conn = conn
        self._reader = threading.Thread(target=self._read, name="improv-sender-reader", daemon=True)
        self._reader.start()
        for command in self._backlog:
            self._post(command)
        self._backlog.clear()
        return self

    def stop(self, *, release: bool = True, timeout: float = 1.0) -> None:
        """Stop sending; with ``release`` silence everything. ``panic`` still works after."""
        self._call(Stop(release, timeout), timeout=timeout + self._timeout)

    def close(self) -> None:
        """Stop, silence everything and end the child process."""
        process, conn = self._process, self._conn
        if process is None:
            return
        self._closing = True
        self._call(Close(), timeout=self._timeout)
        try:
            process.wait(self._timeout)
        except subprocess.TimeoutExpired:
            log.warning("MIDI sender process did not exit: killing it")
            process.kill()
            process.wait(1.0)
        self._process = None
        if conn is not None:
            conn.close()

    def __enter__(self) -> ProcessScheduler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def sender_pid(self) -> int | None:
        """The sender process's id (None until started), to watch it from outside."""
        return self._process.pid if self._process is not None else None

    def add_status_listener(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(connected)`` (from a reader thread) when the child's port peer
        comes or goes, and with False if the child itself dies."""
        self._listeners.append(listener)

    # --- the Scheduler interface ----------------------------------------------------

    def schedule(self, time: float, data: bytes) -> None:
        if not data:
            raise ValueError("empty MIDI message")
        self._post(Schedule(time, bytes(data)))

    def schedule_note(
        self, pitch: int, velocity: int, on_time: float, off_time: float, channel: int = 0
    ) -> int:
        check_note(pitch, velocity, on_time, off_time, channel)
        self._post(ScheduleNote(pitch, velocity, on_time, off_time, channel))
        return next(self._note_ids)

    def send(self, data: bytes) -> bool:
        """Send ``data`` at once (a round trip); False if it could not go out."""
        return bool(self._call(Send(bytes(data))))

    def cancel_after(self, time: float, channel: int | None = None) -> None:
        """Posted: the child cuts on arrival, before anything posted after it."""
        self._post(CancelAfter(time, channel))

    def panic(self) -> None:
        """Posted: the child silences everything on arrival."""
        self._post(Panic())

    def pending(self) -> int:
        return int(self._call(Pending()) or 0)

    def stats(self) -> SchedulerStats:
        """The child counts; the percentiles are computed here, from its raw errors (a
        sort of up to 65,536 values would hold the child's sending thread for milliseconds)."""
        import numpy as np

        stats = self._call(Stats(False))
        if isinstance(stats, SchedulerStats):
            errors = self.send_errors()
            if len(errors):
                p50, p99 = np.percentile(errors, [50, 99]) * 1000.0
                stats = replace(stats, send_error_ms_p50=float(p50), send_error_ms_p99=float(p99))
            self._last_stats = stats
        return self._last_stats

    def send_errors(self) -> np.ndarray:
        import numpy as np  # here only: the sender process itself never imports numpy

        errors = self._call(SendErrors())
        return np.asarray(errors if errors is not None else (), dtype=np.float64)

    # --- the pipe -------------------------------------------------------------------

    def _post(self, command: Command) -> None:
        if self._conn is None:
            if self._process is None:
                self._backlog.append(command)
            return
        if self._gone:
            return
        try:
            with self._send_lock:
                self._conn.send(command)
        except (OSError, ValueError) as exc:
            self._unreachable("MIDI sender process unreachable: %s", exc)

    def _call(self, request: Request, timeout: float | None = None) -> Any:
        if self._conn is None or self._process is None or self._gone:
            return None
        call_id = next(self._ids)
        slot: list[Any] = [threading.Event(), None]
        self._calls[call_id] = slot
        self._post(CallCommand(call_id, request))
        if not slot[0].wait(timeout or self._timeout):
            log.error("MIDI sender process did not answer %s", type(request).__name__)
        self._calls.pop(call_id, None)
        return slot[1]

    def _read(self) -> None:
        """Parent side: deliver answers, port news and what the child sent."""
        conn = self._conn
        assert conn is not None
        while True:
            try:
                message: Report = conn.recv()
            except (EOFError, OSError):
                break
            if isinstance(message, Sent):
                if self.on_sent is not None:
                    for data, scheduled, sent in message.reports:
                        try:
                            self.on_sent(data, scheduled, sent)
                        except Exception:
                            log.exception("on_sent callback failed")
            elif isinstance(message, Reply):
                slot = self._calls.get(message.call_id)
                if slot is not None:
                    slot[1] = message.result
                    slot[0].set()
            elif isinstance(message, PortStatus):
                self._notify(message.connected)
        self._gone = True
        for slot in list(self._calls.values()):  # the child is gone: nobody will answer
            slot[0].set()
        if not self._closing:
            log.error("the MIDI sender process ended unexpectedly: nothing more is sent")
            self._notify(False)

    def _notify(self, connected: bool) -> None:
        for listener in self._listeners:
            try:
                listener(connected)
            except Exception:
                log.exception("port status listener failed")


class _Pipe:
    """The child's end of the pipe, with the port news it has to pass on."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def send(self, message: Report) -> None:
        self.conn.send(message)

    def status(self, connected: bool) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.send(PortStatus(connected))


def _child_main(fd: int) -> None:
    """The sender process: open the port, run a Scheduler, obey the pipe.

    One thread does everything but the standby's watch (see :class:`_Loop`). It
    ignores SIGINT and SIGTERM (a terminal or service manager signals the whole process
    group): the parent ends it in order, after the last note-off went out, and a broken
    pipe (the parent died) makes it silence everything and exit.
    """
    conn = Connection(fd)
    spec, spin_s, capacity = conn.recv()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="improv-sender: %(message)s")
    realtime = try_realtime_priority()
    _lock_memory()
    check_ports: Callable[[], None] | None = None
    check_every = 0.2
    try:
        if not spec.discard:
            from improv.io.midi import watch_ports_inline

            check_ports, check_every = watch_ports_inline()
        output = spec.open()
    except Exception as exc:
        conn.send(Ready(error=exc if isinstance(exc, ImprovError) else ImprovError(str(exc))))
        return
    pipe = _Pipe(conn)
    add_listener = getattr(output, "add_status_listener", None)
    if add_listener is not None:
        add_listener(pipe.status)
    _warm_up(spin_s)
    sent: deque[tuple[bytes, float, float]] = deque()
    tee = _SynthTee.connect(spec, sent) if spec.synth is not None else None
    scheduler = Scheduler(
        output,
        spin_s=spin_s,
        capacity=capacity,
        switch_interval_s=None,
        on_sent=tee.on_sent if tee is not None else _reporting(sent),
    ).start_inline()
    standby = _start_standby(scheduler) if realtime else None
    gc.collect()
    gc.freeze()  # what start-up made lives on: collections never walk it again
    gc.disable()  # and the loop collects in its quiet moments only
    pipe.send(Ready(output.name))
    try:
        after = tee.flush if tee is not None else None
        _Loop(pipe, scheduler, sent, check_ports, check_every, after).run()
    finally:
        if standby is not None:
            standby.close()
        scheduler.stop(release=True)
        output.close()


def _reporting(sent: deque[tuple[bytes, float, float]]) -> SentCallback:
    """``on_sent`` that keeps each message for the next report to the parent."""

    def on_sent(data: bytes, scheduled: float, at: float) -> None:
        sent.append((data, scheduled, at))

    return on_sent


class _SynthTee:
    """Hands what was sent to the built-in synth, a burst at a time: the messages due
    together (a chord and its click) go out to the port first, then to the synth in one
    datagram that never waits (:mod:`improv.io.synth.process`), when the loop has
    nothing due within the spin window; measured by ``improv bench synth``."""

    def __init__(self, feed: Any, sent: deque[tuple[bytes, float, float]]) -> None:
        self.feed = feed
        self.sent = sent
        self.pending: deque[tuple[bytes, float]] = deque()  # appended by a standby too

    @classmethod
    def connect(cls, spec: OutputSpec, sent: deque[tuple[bytes, float, float]]) -> _SynthTee | None:
        from improv.io.synth.process import IMPROV_CHANNELS, SynthFeed

        assert spec.synth is not None
        try:
            return cls(SynthFeed(spec.synth, spec.synth_channels or IMPROV_CHANNELS), sent)
        except OSError as exc:  # the synth is gone: the port plays on
            log.warning("the built-in synth is unreachable (%s): improv plays without it", exc)
            return None

    def on_sent(self, data: bytes, scheduled: float, at: float) -> None:
        self.sent.append((data, scheduled, at))
        self.pending.append((data, scheduled))

    def flush(self) -> None:
        pending = self.pending
        if pending:
            self.feed.send_many([pending.popleft() for _ in range(len(pending))])


def _start_standby(scheduler: Scheduler) -> Standby | None:
    """Pin this (the sending) thread to one CPU and start a standby sender on another
    (see :mod:`improv.output.standby`); None where there is one CPU, or it is off. Only
    for a real-time thread: a pinned thread of normal priority would wait for whatever
    else runs on its CPU."""
    cpus = split_cpus()
    if cpus is None or os.environ.get("IMPROV_STANDBY", "1") == "0":
        return None
    pin_this_thread(cpus[0])
    return Standby(scheduler, cpus[1]).start()


class _Loop:
    """The sender process's sending thread: sends on time, and does the rest in between.

    Each round sends what is due (spinning the last ``spin_s`` to each message's time),
    then waits on the pipe until the next message is due; the last ``_NAP_S`` before the
    spin is a plain sleep instead (on this project's VM ``time.sleep`` woke on time more
    often than ``select``: fewer messages over 0.1 ms late in four of four alternated
    runs, 42 to 50 against 50 to 100 of 600). Schedule commands are taken at once,
    since they may bring an earlier deadline, and so are the urgent calls
    (``_URGENT_CALLS``: a barge-in's cut, a panic, a send-now); everything that can take
    a while (other round-trip calls, reporting what was sent, port checks, garbage
    collection) waits for a quiet moment, when no message is due within ``_QUIET_S``;
    none is held longer than ``_HOLD_S``. With no second busy thread nothing competes
    for the GIL when a message is due (the standby sleeps outside it): a thread woken at
    its deadline in a process with other busy threads waits for the GIL, which costs
    milliseconds now and then. A message that still goes out over a millisecond late is
    logged with its likely cause: the loop's own last work if that ran past the
    message's time, else the host.
    """

    def __init__(
        self,
        pipe: _Pipe,
        scheduler: Scheduler,
        sent: deque[tuple[bytes, float, float]],
        check_ports: Callable[[], None] | None,
        check_every: float,
        after_sends: Callable[[], None] | None = None,
    ) -> None:
        self.pipe = pipe
        self.after_sends = after_sends  # when what is due went out (the synth's feed)
        self.scheduler = scheduler
        self.sent = sent
        self.check_ports = check_ports
        self.check_every = check_every
        self.calls: deque[tuple[float, CallCommand]] = deque()  # (arrived, call)
        self._rounds = 0  # chore rounds since the last port check
        self._last_work = ("nothing", 0.0, 0.0)  # what the loop did last: (what, from, to)
        self._late_seen = 0
        self._late_log = Throttled(first=10, every=100)

    def run(self) -> None:
        conn = self.pipe.conn
        fds = [conn.fileno()]
        scheduler = self.scheduler
        spin = scheduler.spin_s
        next_chore = now()
        try:
            after_sends = self.after_sends
            while True:
                due = scheduler.serve_due()
                if after_sends is not None:
                    after_sends()
                if scheduler.late != self._late_seen:
                    self._explain_late()
                t = now()
                quiet = due is None or due - t > _QUIET_S
                call_late = bool(self.calls) and t - self.calls[0][0] > _HOLD_S
                if (quiet or call_late) and not self._answer_calls():
                    return
                if t >= next_chore and (quiet or t - next_chore > _HOLD_S):
                    self._chores()
                    next_chore = t + _FLUSH_S
                    continue  # the chores took time: look at the heap again
                # sleep until a message is due, a chore or call may wait no longer
                wake = next_chore if t < next_chore else next_chore + _HOLD_S
                if due is not None:
                    if t >= due - spin - _NAP_S:  # the last stretch: time.sleep wakes
                        if select.select(fds, (), (), 0.0)[0]:  # closer to time than
                            self._take(conn.recv())  # select, but take what came first
                        else:
                            time.sleep(max(0.0, due - spin - t))
                        continue
                    wake = min(wake, due - spin - _NAP_S)
                if self.calls:
                    wake = min(wake, self.calls[0][0] + _HOLD_S)
                # select, not conn.poll: poll(2) rounds its timeout up to a millisecond
                if select.select(fds, (), (), max(0.0, wake - t))[0]:
                    self._take(conn.recv())
        except (EOFError, OSError):
            return  # the parent is gone: the caller silences everything

    def _take(self, command: Command) -> None:
        started = now()
        if isinstance(command, CallCommand):
            if command.request.urgent:
                self._answer(command)
            else:
                self.calls.append((started, command))
            return
        command.run(self.scheduler)
        self._last_work = (f"a {type(command).__name__} from the pipe", started, now())

    def _answer_calls(self) -> bool:
        """Carry out the waiting calls; False when one of them says to exit."""
        while self.calls:
            _arrived, command = self.calls.popleft()
            if not self._answer(command):
                return False
        return True

    def _answer(self, command: CallCommand) -> bool:
        """Carry out one call and send its reply; False when it says to exit."""
        started = now()
        request = command.request
        result = request.run(self.scheduler)
        if not request.urgent:  # a caller that stopped us has every report before the
            self._report_sent()  # reply; an urgent call (a send-now) does not wait for it
        self.pipe.send(Reply(command.call_id, result))
        self._last_work = (f"the call {type(request).__name__}", started, now())
        return not isinstance(request, Close)

    def _chores(self) -> None:
        started = now()
        what = "a sent report and gc"
        self._report_sent()
        self._rounds += 1
        if self.check_ports is not None and self._rounds * _FLUSH_S >= self.check_every:
            self._rounds = 0
            self.check_ports()
            what = "a port check"
        gc.collect(0)
        self._last_work = (what, started, now())

    def _report_sent(self) -> None:
        if self.sent:
            self.pipe.send(Sent([self.sent.popleft() for _ in range(len(self.sent))]))

    def _explain_late(self) -> None:
        """Log a message sent over a millisecond late, with the loop's last work before
        it: the cause when that work ran past the message's time, else the host (the
        process was not running when it should have woken)."""
        self._late_seen = self.scheduler.late
        deadline, error = self.scheduler.last_late
        what, started, ended = self._last_work
        if ended > deadline - self.scheduler.spin_s - 0.0002:
            cause = f"the sender was busy with {what} ({(ended - started) * 1e3:.1f} ms)"
        else:
            cause = "the sender was not running (host): its last work ended in time"
        self._late_log("a MIDI message went out %.1f ms late: %s", error * 1e3, cause)


def _lock_memory() -> None:
    """Keep every page of this process in RAM, and have new ones mapped in when they are
    allocated, not at their first touch mid-send; best effort. The process keeps numpy
    out (its buffers alone would be 100 MB locked)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        mcl_current, mcl_future = 1, 2
        if libc.mlockall(mcl_current | mcl_future) != 0:
            log.debug("mlockall refused (errno %d)", ctypes.get_errno())


def _warm_up(spin_s: float) -> None:
    """Run the send path a few hundred times into nowhere, so the first real message
    finds its code and data warm (Python specialises bytecode as it runs)."""
    from improv.io.midi.loopback import NullOutput

    scheduler = Scheduler(NullOutput(), spin_s=spin_s, capacity=512, switch_interval_s=None)
    scheduler.start_inline()
    t = now()
    for i in range(128):
        scheduler.schedule_note(60 + i % 12, 80, t, t + 1e-6)
    while scheduler.serve_due() is not None:
        pass
    scheduler.stop(release=True)


if __name__ == "__main__":
    _child_main(int(sys.argv[1]))
