"""The interface every MIDI port offers (:class:`MidiInput`, :class:`MidiOutput`),
and :class:`BufferedInput`, through which a producer thread hands events to the loop."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from improv.errors import ImprovError
from improv.io.midi.messages import MidiEvent, MidiParser, Throttled

log = logging.getLogger(__name__)


class PortClosedError(ImprovError):
    """Raised by ``receive`` once a port is closed and its buffer is empty."""


@dataclass(slots=True)
class PortStats:
    """Counters of one port; read them from any thread (plain ints, updated in place)."""

    received: int = 0
    dropped: int = 0  # input: buffer full; output: port disconnected
    queue_full: int = 0  # input: times the back end's own queue was found full (see rtmidi)
    malformed: int = 0
    sent: int = 0
    send_errors: int = 0
    reconnects: int = 0


class MidiInput(Protocol):
    """What the engine reads from: real ports and the in-process loopback alike."""

    name: str
    stats: PortStats

    @property
    def connected(self) -> bool: ...

    def poll(self) -> MidiEvent | None: ...

    async def receive(self) -> MidiEvent: ...

    def __aiter__(self) -> AsyncIterator[MidiEvent]: ...

    def add_status_listener(self, listener: StatusListener) -> None: ...

    def close(self) -> None: ...


class MidiOutput(Protocol):
    """What the scheduler writes to. ``send`` never raises: it returns False and counts."""

    name: str
    stats: PortStats

    @property
    def connected(self) -> bool: ...

    def send(self, data: bytes) -> bool: ...

    def close(self) -> None: ...


StatusListener = Callable[[bool], None]


class BufferedInput:
    """An input whose producer (any thread) hands events to the asyncio loop.

    ``_push`` runs on the producer's thread: it parses, appends to a bounded deque and
    schedules one wake-up of the loop unless one is already pending. ``receive`` and
    ``poll`` run on the loop. A port may be opened before the loop runs; it binds to
    the loop of its first ``receive``.
    """

    def __init__(
        self, name: str, capacity: int = 4096, max_sysex: int = 1024, ignore_sysex: bool = False
    ) -> None:
        self.name = name
        self.stats = PortStats()
        self._capacity = capacity
        self._buffer: deque[MidiEvent] = deque()
        self._parser = MidiParser(max_sysex, name, ignore_sysex=ignore_sysex)
        self._drops = Throttled()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup = asyncio.Event()
        self._wake_pending = False
        self._closed = False
        self._listeners: list[StatusListener] = []
        self._tap: Callable[[bytes, float], None] | None = None

    @property
    def connected(self) -> bool:
        return not self._closed

    @property
    def closed(self) -> bool:
        return self._closed

    def add_status_listener(self, listener: StatusListener) -> None:
        """Call ``listener(connected)`` (from the watchdog thread) when the peer comes or goes."""
        self._listeners.append(listener)

    def add_tap(self, tap: Callable[[bytes, float], None]) -> None:
        """Call ``tap(data, time)`` with each message as it arrives, on the producer's
        thread, before the loop sees it: for a monitor that must not wait for the loop
        (the built-in synth, which plays the performer). It must not block."""
        self._tap = tap

    def _notify(self, connected: bool) -> None:
        for listener in self._listeners:
            try:
                listener(connected)
            except Exception:
                log.exception("port status listener failed")

    def _push(self, packet: bytes, t: float) -> None:
        messages = self._parser.parse(packet)
        self.stats.malformed = self._parser.malformed
        for data in messages:
            if len(self._buffer) >= self._capacity:
                self.stats.dropped += 1
                self._drops(
                    "MIDI in %r: buffer full (%d), event dropped", self.name, self._capacity
                )
                continue
            self._buffer.append(MidiEvent(data, t))
            self.stats.received += 1
            if self._tap is not None:
                self._tap(data, t)
        if messages:
            self._wake()

    def _wake(self) -> None:
        loop = self._loop
        if loop is None or self._wake_pending:
            return
        self._wake_pending = True
        try:
            loop.call_soon_threadsafe(self._on_wake)
        except RuntimeError:  # the loop has closed
            self._wake_pending = False

    def _on_wake(self) -> None:
        self._wake_pending = False
        self._wakeup.set()

    def poll(self) -> MidiEvent | None:
        """The oldest buffered event, or None; never waits."""
        try:
            return self._buffer.popleft()
        except IndexError:
            return None

    def pending(self) -> int:
        return len(self._buffer)

    async def receive(self) -> MidiEvent:
        """Wait for the next event; raises :class:`PortClosedError` once closed and drained."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        while True:
            try:
                return self._buffer.popleft()
            except IndexError:
                pass
            if self._closed:
                raise PortClosedError(f"MIDI input {self.name!r} is closed")
            self._wakeup.clear()
            if self._buffer or self._closed:
                continue
            await self._wakeup.wait()

    def __aiter__(self) -> AsyncIterator[MidiEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[MidiEvent]:
        while True:
            try:
                yield await self.receive()
            except PortClosedError:
                return

    def close(self) -> None:
        self._closed = True
        self._wake()
