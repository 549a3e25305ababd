"""In-process MIDI: a loopback pair with the same interface as real ports.

``improv jam --demo`` plays its simulated performer through one pair and listens to
the agent through another, and tests run the engine without JACK. The output side may
be driven from any thread (the scheduler's sender thread); the input side hands events
to the asyncio loop exactly as an rtmidi port does, timestamped at ``send``.
"""

from __future__ import annotations

import threading

from improv.io.midi import BufferedInput, MidiEvent, PortStats
from improv.timebase import now


class LoopbackInput(BufferedInput):
    """The receiving end of a :func:`loopback` pair."""


class LoopbackOutput:
    """The sending end: ``send`` delivers to the paired input at once."""

    def __init__(self, name: str, peer: LoopbackInput) -> None:
        self.name = name
        self.stats = PortStats()
        self._peer = peer
        self._connected = True

    @property
    def connected(self) -> bool:
        return self._connected and not self._peer.closed

    def send(self, data: bytes) -> bool:
        if not self.connected:
            self.stats.dropped += 1
            return False
        self._peer._push(bytes(data), now())
        self.stats.sent += 1
        return True

    def set_connected(self, connected: bool) -> None:
        """Simulate the peer vanishing and coming back (tests, demo)."""
        self._connected = connected
        self._peer._notify(connected)

    def close(self) -> None:
        self._connected = False


def loopback(name: str = "loopback", capacity: int = 4096) -> tuple[LoopbackOutput, LoopbackInput]:
    """A connected (output, input) pair: what goes into the output comes out of the input."""
    midi_in = LoopbackInput(name, capacity)
    return LoopbackOutput(name, midi_in), midi_in


class NullOutput:
    """An output that drops what it is sent (counting it): a jam nobody listens to."""

    def __init__(self, name: str = "discard") -> None:
        self.name = name
        self.stats = PortStats()

    @property
    def connected(self) -> bool:
        return True

    def send(self, data: bytes) -> bool:
        self.stats.sent += 1
        return True

    def close(self) -> None:
        pass


class RecordingOutput:
    """An output that keeps every message with its send time (tests, dry runs)."""

    def __init__(self, name: str = "recorder") -> None:
        self.name = name
        self.stats = PortStats()
        self.events: list[MidiEvent] = []
        self._lock = threading.Lock()
        self._connected = True

    @property
    def connected(self) -> bool:
        return self._connected

    def send(self, data: bytes) -> bool:
        if not self._connected:
            self.stats.dropped += 1
            return False
        event = MidiEvent(bytes(data), now())
        with self._lock:
            self.events.append(event)
        self.stats.sent += 1
        return True

    def set_connected(self, connected: bool) -> None:
        self._connected = connected

    def take(self) -> list[MidiEvent]:
        """The events recorded so far, clearing the record."""
        with self._lock:
            events, self.events = self.events, []
        return events

    def close(self) -> None:
        self._connected = False
