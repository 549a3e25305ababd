"""The harness's ear: an rtmidi input whose arrival times come from the driver's own clock.

rtmidi queues every message with the time since the previous one, taken by the MIDI
driver when the message reached its client (on JACK: the process cycle that delivered
it), without Python in the way. Summing those deltas gives every arrival on one clock,
exact up to one constant. Each poll of the queue bounds that constant from above
(nothing can have arrived after the poll that found it), so the tightest bound over
the whole run, a poll that came soon after an arrival, pins it down: the final times
(:meth:`Listener.events`) are known when the run is over, to within the best poll's
delay, a few microseconds to tens of them, where stamping each message when its poll
finds it would be late by up to a poll interval and the poller's wake-up. So the poll
interval costs no precision, and a lazy one (2 ms) spares the CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from typing import Any

from improv.bench.measure import Event
from improv.errors import ImprovError, UsageError
from improv.io.midi import CLOCK, MidiParser, match_port
from improv.io.midi.jackmon import client_lock
from improv.timebase import now

_APIS = {"alsa": "API_LINUX_ALSA", "jack": "API_UNIX_JACK", "coremidi": "API_MACOSX_CORE"}


class ArrivalClock:
    """Arrival times from the driver's deltas, anchored by the polls that found them."""

    def __init__(self) -> None:
        self.elapsed = 0.0  # seconds from the first arrival to the latest
        self.offset = math.inf  # the first arrival's time, bounded from above

    def arrived(self, delta: float) -> float:
        """A message ``delta`` seconds after the previous one; its seconds from the first."""
        self.elapsed += delta
        return self.elapsed

    def polled(self, t: float) -> None:
        """A poll at ``t`` found everything up to the latest arrival."""
        self.offset = min(self.offset, t - self.elapsed)

    def time(self, elapsed: float) -> float:
        return self.offset + elapsed


class Listener:
    """Records everything one port sends; clock ticks are only counted.

    ``port``: the name (or part) of the port to listen to, or None for a virtual port
    ``client_name:port_name`` that the agent connects to.
    """

    def __init__(
        self,
        api: str,
        *,
        port: str | None,
        client_name: str,
        port_name: str,
        poll_s: float = 0.002,
        wait_s: float = 5.0,
    ) -> None:
        import rtmidi

        if api not in _APIS:
            raise UsageError(f"the harness cannot listen through MIDI API {api!r}")
        self.poll_s = poll_s
        self.clock_ticks = 0
        self._raw: list[tuple[bytes, float]] = []  # (message, seconds since the first)
        self._malformed: list[tuple[bytes, float]] = []  # whole packets with bad bytes
        self._clock = ArrivalClock()
        self._parser = MidiParser(port=client_name)
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._heard: asyncio.Event | None = None
        with client_lock:
            try:
                self._rt: Any = rtmidi.MidiIn(getattr(rtmidi, _APIS[api]), client_name, 4096)
            except Exception as exc:
                raise ImprovError(f"cannot open a {api} MIDI client: {exc}") from exc
            self._rt.ignore_types(sysex=True, timing=False, active_sense=True)
            if port is None:
                self._rt.open_virtual_port(port_name)
                self.name = f"{client_name}:{port_name}"
            else:
                self.name = self._connect(port, port_name, wait_s)
        self._thread = threading.Thread(target=self._run, name=f"listen {self.name}", daemon=True)
        self._thread.start()

    def _connect(self, pattern: str, port_name: str, wait_s: float) -> str:
        deadline = now() + wait_s
        while True:
            names = list(self._rt.get_ports())
            try:
                target = match_port(pattern, names)
            except UsageError:
                if now() >= deadline:
                    raise
                time.sleep(0.05)  # waiting for the agent's port to appear
                continue
            self._rt.open_port(names.index(target), port_name)
            return target

    def bind(self, loop: asyncio.AbstractEventLoop, heard: asyncio.Event) -> None:
        """Set ``heard`` on ``loop`` whenever messages arrive."""
        self._loop, self._heard = loop, heard

    def _run(self) -> None:
        rt, clock = self._rt, self._clock
        while not self._closed:
            found = False
            while (message := rt.get_message()) is not None:
                data, delta = message
                elapsed = clock.arrived(delta)
                found = True
                before = self._parser.malformed
                parts = self._parser.parse(bytes(data))
                if self._parser.malformed != before:  # every one counted (the parser logs a few)
                    self._malformed.append((bytes(data), elapsed))
                for part in parts:
                    if part[0] == CLOCK:
                        self.clock_ticks += 1
                    else:
                        self._raw.append((part, elapsed))
            if not found:
                time.sleep(self.poll_s)
                continue
            clock.polled(now())
            if self._loop is not None and self._heard is not None:
                with contextlib.suppress(RuntimeError):  # the loop has closed
                    self._loop.call_soon_threadsafe(self._heard.set)

    def events(self) -> list[Event]:
        """Everything heard so far, timed with the best offset so far (final once closed)."""
        raw = self._raw[: len(self._raw)]
        return [Event(self._clock.time(elapsed), data) for data, elapsed in raw]

    def malformed(self) -> list[Event]:
        """Packets that held bytes which are no MIDI (a stray data byte, a cut message)."""
        raw = self._malformed[: len(self._malformed)]
        return [Event(self._clock.time(elapsed), data) for data, elapsed in raw]

    def close(self) -> None:
        self._closed = True
        self._thread.join(1.0)
        with client_lock, contextlib.suppress(Exception):
            self._rt.close_port()
            self._rt.delete()
