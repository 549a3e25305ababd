"""The port watchdog: one thread (or the sender process's own loop) that keeps every
open port connected and re-creates JACK clients after a server restart."""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from improv.io.midi.jackmon import client_lock

if TYPE_CHECKING:
    from improv.io.midi.rtmidi_ports import RtMidiInput, RtMidiOutput

log = logging.getLogger(__name__)


class _Watchdog:
    """One daemon thread that keeps every open port connected, a few checks a second.

    On JACK it also holds a :class:`~improv.io.midi.jackmon.Monitor`: when the server goes,
    every JACK client of the process is torn down before any is created again, since
    libjack cannot mix clients of a dead server with those of its successor.
    """

    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self._ports: list[RtMidiInput | RtMidiOutput] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._monitor: Any = None  # jackmon.Monitor while JACK ports are open
        self.threaded = True  # False: the process's own loop calls check_now()

    def open(self, port: RtMidiInput | RtMidiOutput, wait_s: float) -> None:
        """Open ``port`` (under the client lock, JACK monitor first) and watch it."""
        with client_lock:
            if port.port.api == "jack" and self._monitor is None:
                from improv.io.midi.jackmon import Monitor

                self._monitor = Monitor.open(self._wake.set)
            port.port.open(wait_s)
        port.name = port.port.describe()
        with self._lock:
            self._ports.append(port)
            if not self.threaded:
                return
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="improv-midi-watchdog", daemon=True
                )
                self._thread.start()

    def remove(self, port: RtMidiInput | RtMidiOutput) -> None:
        """Stop watching ``port`` and close its client (and the monitor after the last).

        All at once, on the caller's thread: a JACK client closing while its server
        shuts down can hang both, so none may linger after the last port closed.
        """
        with self._lock:
            if port in self._ports:
                self._ports.remove(port)
            jack_left = any(p.port.api == "jack" for p in self._ports)
        with client_lock:
            port.port.close()
            if not jack_left:
                self._close_monitor()
        self._wake.set()

    def _run(self) -> None:
        while True:
            with self._lock:
                ports = list(self._ports)
                if not ports:
                    self._thread = None
                    with client_lock:
                        self._close_monitor()
                    return
            self.check(ports)
            self._wake.wait(self.interval_s)
            self._wake.clear()

    def check_now(self) -> None:
        """One round of checks on the caller's thread (the inline mode's tick)."""
        with self._lock:
            ports = list(self._ports)
        if ports:
            self.check(ports)

    def check(self, ports: list[RtMidiInput | RtMidiOutput]) -> None:
        changes: list[tuple[RtMidiInput | RtMidiOutput, bool]] = []
        with client_lock:
            jack_ports = [p for p in ports if p.port.api == "jack"]
            jack_up = self._check_jack(jack_ports) if jack_ports else True
            for port in ports:
                if port.port.api == "jack" and not jack_up:
                    continue
                changed = port.port.check()
                if changed is not None:
                    changes.append((port, changed))
            if not jack_ports:
                self._close_monitor()
        for port, changed in changes:  # listeners run without the client lock
            port._status_changed(changed)

    def _check_jack(self, ports: list[RtMidiInput | RtMidiOutput]) -> bool:
        """Whether the JACK server is up; tears every JACK client down when it went."""
        from improv.io.midi.jackmon import Monitor

        if self._monitor is not None and not self._monitor.alive:
            log.warning("JACK server gone: MIDI ports wait for it")
            for port in ports:
                was = port.port.connected
                port.port.teardown()
                if was:
                    port._status_changed(False)
            self._close_monitor()
        if self._monitor is None:
            self._monitor = Monitor.open(self._wake.set)
        return self._monitor is not None

    def _close_monitor(self) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.close()


@functools.cache
def watchdog() -> _Watchdog:
    """The process's one port watchdog, made on first use (``IMPROV_MIDI_WATCHDOG_S``
    sets its interval: read then, not at import)."""
    return _Watchdog(float(os.environ.get("IMPROV_MIDI_WATCHDOG_S", "0.2")))


def watch_ports_inline() -> tuple[Callable[[], None], float]:
    """Keep this process's ports connected from its own loop instead of a thread.

    For a process with one busy thread (the MIDI sender process): call before
    opening ports, then call the returned check every returned interval (seconds), at
    moments when it may take a millisecond or two (it asks the MIDI system for ports).
    """
    dog = watchdog()
    dog.threaded = False
    return dog.check_now, dog.interval_s
