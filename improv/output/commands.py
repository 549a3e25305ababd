"""What crosses the pipe between the jam and its sender process, as types, written once.

Parent -> child: :class:`Schedule` and :class:`ScheduleNote` (timed messages),
:class:`CancelAfter` and :class:`Panic` (one-way posts: carried out the moment they
arrive, nobody waits for them), and :class:`Call` carrying a :data:`Request` whose
result comes back as a :class:`Reply`. Child -> parent: :class:`Ready`, :class:`Sent`
(what went out, in batches), :class:`Reply` and :class:`PortStatus`.

Each command knows how to run on a :class:`~improv.output.scheduler.Scheduler`, so the
child dispatches by type, never by an op string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from improv.output.scheduler import Scheduler


@dataclass(frozen=True, slots=True)
class Schedule:
    """Send ``data`` at ``time`` (``time.monotonic()`` seconds, system-wide)."""

    time: float
    data: bytes

    def run(self, scheduler: Scheduler) -> None:
        scheduler.schedule(self.time, self.data)


@dataclass(frozen=True, slots=True)
class ScheduleNote:
    """A note-on and its note-off."""

    pitch: int
    velocity: int
    on_time: float
    off_time: float
    channel: int

    def run(self, scheduler: Scheduler) -> None:
        scheduler.schedule_note(
            self.pitch, self.velocity, self.on_time, self.off_time, self.channel
        )


@dataclass(frozen=True, slots=True)
class CancelAfter:
    """Barge-in: drop what starts at or after ``time`` (on ``channel``), end what sounds."""

    time: float
    channel: int | None

    def run(self, scheduler: Scheduler) -> None:
        scheduler.cancel_after(self.time, self.channel)


@dataclass(frozen=True, slots=True)
class Panic:
    """Note-offs for everything sounding, pedal up, CC 123, at once."""

    def run(self, scheduler: Scheduler) -> None:
        scheduler.panic()


Post = Schedule | ScheduleNote | CancelAfter | Panic
"""A one-way command: carried out on arrival, in pipe order."""


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``data`` now; the result says whether it went out."""

    data: bytes
    urgent = True

    def run(self, scheduler: Scheduler) -> bool:
        return scheduler.send(self.data)


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop sending (``release``: silence everything first)."""

    release: bool
    timeout: float
    urgent = False

    def run(self, scheduler: Scheduler) -> None:
        scheduler.stop(release=self.release, timeout=self.timeout)


@dataclass(frozen=True, slots=True)
class Close:
    """Stop, silence everything; the child exits after its reply."""

    urgent = False

    def run(self, scheduler: Scheduler) -> None:
        scheduler.stop(release=True)


@dataclass(frozen=True, slots=True)
class Pending:
    """How many messages wait."""

    urgent = False

    def run(self, scheduler: Scheduler) -> int:
        return scheduler.pending()


@dataclass(frozen=True, slots=True)
class Stats:
    """The scheduler's counts (percentiles too when asked: the parent computes them)."""

    percentiles: bool
    urgent = False

    def run(self, scheduler: Scheduler) -> Any:
        return scheduler.stats(percentiles=self.percentiles)


@dataclass(frozen=True, slots=True)
class SendErrors:
    """Every send error kept (seconds), as an array of doubles."""

    urgent = False

    def run(self, scheduler: Scheduler) -> Any:
        return scheduler.send_error_array()


Request = Send | Stop | Close | Pending | Stats | SendErrors
"""A round trip: the caller waits for its :class:`Reply`. ``urgent`` ones are carried
out on arrival, the others at the child's next quiet moment."""


@dataclass(frozen=True, slots=True)
class Call:
    call_id: int
    request: Request


Command = Post | Call


@dataclass(frozen=True, slots=True)
class Ready:
    """The child's port is open (``name``), or it could not start (``error``)."""

    name: str = ""
    error: Exception | None = None


@dataclass(frozen=True, slots=True)
class Sent:
    """What went out since the last report: (data, scheduled, sent) each."""

    reports: list[tuple[bytes, float, float]]


@dataclass(frozen=True, slots=True)
class Reply:
    call_id: int
    result: Any


@dataclass(frozen=True, slots=True)
class PortStatus:
    """The child's port peer went (False) or came back (True)."""

    connected: bool


Report = Ready | Sent | Reply | PortStatus
