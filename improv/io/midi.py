"""MIDI at the edge: the project's own event type, robust parsing, and rtmidi ports.

Everything above this module speaks :class:`MidiEvent` (raw bytes plus the
``time.monotonic()`` second they arrived), never mido or rtmidi types. Input reaches
the asyncio loop through a bounded buffer: rtmidi's callback thread timestamps and
parses each packet, appends it, and wakes the loop with at most one pending
``call_soon_threadsafe``, so a flood (a sysex storm, a stalled loop) drops and counts
instead of growing memory. Ports survive their peer: a watchdog re-opens a vanished
port by name, and after a JACK server restart re-creates the clients, while the port
objects the engine holds (and its clock) carry on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from improv.errors import ImprovError, UsageError

log = logging.getLogger(__name__)

now = time.monotonic
"""The one clock of improv: every event time and schedule is in these seconds."""

# --- the protocol as data -----------------------------------------------------------

NOTE_OFF = 0x80
NOTE_ON = 0x90
POLY_PRESSURE = 0xA0
CONTROL_CHANGE = 0xB0
PROGRAM_CHANGE = 0xC0
CHANNEL_PRESSURE = 0xD0
PITCH_BEND = 0xE0
SYSEX = 0xF0
SONG_POSITION = 0xF2
EOX = 0xF7
CLOCK = 0xF8
START = 0xFA
CONTINUE = 0xFB
STOP = 0xFC
ACTIVE_SENSING = 0xFE
RESET = 0xFF

CC_SUSTAIN = 64
CC_ALL_SOUND_OFF = 120
CC_RESET_CONTROLLERS = 121
CC_ALL_NOTES_OFF = 123

_CHANNEL_DATA_LEN = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}
_SYSTEM_DATA_LEN = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF6: 0}
_REALTIME = frozenset({0xF8, 0xFA, 0xFB, 0xFC, 0xFE, 0xFF})
_UNDEFINED = frozenset({0xF4, 0xF5, 0xF9, 0xFD})


def data_length(status: int) -> int:
    """Data bytes that follow a status byte (-1 for sysex, undefined or data bytes)."""
    if status < 0x80:
        return -1
    if status < 0xF0:
        return _CHANNEL_DATA_LEN[status & 0xF0]
    if status in _REALTIME:
        return 0
    return _SYSTEM_DATA_LEN.get(status, -1)


@dataclass(slots=True)
class MidiEvent:
    """One complete MIDI message: raw bytes and its time (``time.monotonic()`` seconds)."""

    data: bytes
    time: float

    @property
    def status(self) -> int:
        return self.data[0]

    @property
    def type(self) -> int:
        """Status without the channel for channel messages (0x90 ...), else the status."""
        status = self.data[0]
        return status & 0xF0 if status < 0xF0 else status

    @property
    def channel(self) -> int:
        """Channel 0..15 of a channel message, -1 for system messages."""
        status = self.data[0]
        return status & 0x0F if status < 0xF0 else -1

    @property
    def is_note_on(self) -> bool:
        """A note-on with velocity > 0 (velocity 0 is a note-off)."""
        return self.data[0] & 0xF0 == NOTE_ON and self.data[0] < 0xF0 and self.data[2] > 0

    @property
    def is_note_off(self) -> bool:
        kind = self.data[0] & 0xF0
        return self.data[0] < 0xF0 and (kind == NOTE_OFF or (kind == NOTE_ON and self.data[2] == 0))

    @property
    def is_control_change(self) -> bool:
        return self.data[0] & 0xF0 == CONTROL_CHANGE and self.data[0] < 0xF0

    @property
    def is_realtime(self) -> bool:
        return self.data[0] >= 0xF8

    @property
    def pitch(self) -> int:
        """Note number of a note message (also the controller number of a CC)."""
        return self.data[1]

    @property
    def velocity(self) -> int:
        """Velocity of a note message (also the value of a CC)."""
        return self.data[2]

    @property
    def control(self) -> int:
        return self.data[1]

    @property
    def value(self) -> int:
        return self.data[2]

    def to_mido(self) -> Any:
        """The same message as a ``mido.Message`` (for files and foreign APIs)."""
        import mido

        return mido.Message.from_bytes(self.data, time=self.time)

    @classmethod
    def from_mido(cls, message: Any, time: float) -> MidiEvent:
        return cls(bytes(message.bytes()), time)

    def __repr__(self) -> str:
        return f"MidiEvent({self.data.hex(' ')}, t={self.time:.6f})"


def note_on(channel: int, pitch: int, velocity: int) -> bytes:
    return bytes((NOTE_ON | (channel & 0x0F), pitch & 0x7F, velocity & 0x7F))


def note_off(channel: int, pitch: int, velocity: int = 0) -> bytes:
    return bytes((NOTE_OFF | (channel & 0x0F), pitch & 0x7F, velocity & 0x7F))


def control_change(channel: int, control: int, value: int) -> bytes:
    return bytes((CONTROL_CHANGE | (channel & 0x0F), control & 0x7F, value & 0x7F))


def song_position(sixteenths: int) -> bytes:
    """Song position pointer: position in MIDI beats (sixteenth notes) from the start."""
    return bytes((SONG_POSITION, sixteenths & 0x7F, (sixteenths >> 7) & 0x7F))


# --- parsing ------------------------------------------------------------------------


class _Throttled:
    """Logs the first few occurrences of a problem, then every ``every``-th, counting all."""

    def __init__(self, first: int = 5, every: int = 1000) -> None:
        self.count = 0
        self._first = first
        self._every = every

    def __call__(self, message: str, *args: object) -> None:
        self.count += 1
        if self.count <= self._first or self.count % self._every == 0:
            log.warning(message + " (%d so far)", *args, self.count)


class MidiParser:
    """Splits a received packet into well-formed messages; never raises.

    rtmidi hands over one packet per callback. Running status is honoured inside a
    packet; real-time bytes are taken out wherever they stand; truncated messages,
    stray data bytes, undefined status bytes and unterminated or oversized sysex are
    dropped and counted in :attr:`malformed`.
    """

    def __init__(self, max_sysex: int = 1024, port: str = "") -> None:
        self.max_sysex = max_sysex
        self._warn = _Throttled()
        self._port = port

    @property
    def malformed(self) -> int:
        return self._warn.count

    def parse(self, packet: bytes) -> list[bytes]:
        if not packet:
            return []
        status = packet[0]
        if 0x80 <= status < 0xF0 and len(packet) == _CHANNEL_DATA_LEN[status & 0xF0] + 1:
            if all(b < 0x80 for b in packet[1:]):
                return [packet]  # the common case: one clean channel message
        elif status in _REALTIME and len(packet) == 1:
            return [packet]
        return self._parse_slow(packet)

    def _parse_slow(self, packet: bytes) -> list[bytes]:
        out: list[bytes] = []
        running = 0  # running status (channel messages only)
        current: bytearray | None = None  # message under construction
        need = 0
        sysex: bytearray | None = None
        for byte in packet:
            if byte >= 0xF8:  # real-time: may interleave anything
                if byte in _REALTIME:
                    out.append(bytes((byte,)))
                else:
                    self._bad("undefined status byte 0x%02X", byte)
                continue
            if sysex is not None:
                if byte < 0x80:
                    if len(sysex) < self.max_sysex:
                        sysex.append(byte)
                    continue
                if byte == EOX:
                    sysex.append(byte)
                    if len(sysex) <= self.max_sysex:
                        out.append(bytes(sysex))
                    else:
                        self._bad("sysex longer than %d bytes dropped", self.max_sysex)
                    sysex = None
                    continue
                self._bad("unterminated sysex dropped (%d bytes)", len(sysex))
                sysex = None  # the interrupting status byte starts a new message below
            if byte >= 0x80:
                if current is not None:
                    self._bad("truncated message %s dropped", bytes(current).hex(" "))
                    current = None
                if byte == SYSEX:
                    sysex = bytearray((byte,))
                    running = 0
                    continue
                length = data_length(byte)
                if length < 0:
                    self._bad("undefined or stray status byte 0x%02X", byte)
                    running = 0
                    continue
                running = byte if byte < 0xF0 else 0
                if length == 0:
                    out.append(bytes((byte,)))
                    continue
                current = bytearray((byte,))
                need = length
                continue
            # a data byte
            if current is None:
                if not running:
                    self._bad("stray data byte 0x%02X", byte)
                    continue
                current = bytearray((running,))
                need = data_length(running)
            current.append(byte)
            if len(current) == need + 1:
                out.append(bytes(current))
                current = None
        if current is not None:
            self._bad("truncated message %s dropped", bytes(current).hex(" "))
        if sysex is not None:
            self._bad("unterminated sysex dropped (%d bytes)", len(sysex))
        return out

    def _bad(self, message: str, *args: object) -> None:
        self._warn(f"MIDI in {self._port!r}: {message}", *args)


# --- ports --------------------------------------------------------------------------


class PortClosedError(ImprovError):
    """Raised by ``receive`` once a port is closed and its buffer is empty."""


@dataclass(slots=True)
class PortStats:
    """Counters of one port; read them from any thread (plain ints, updated in place)."""

    received: int = 0
    dropped: int = 0  # input: buffer full; output: port disconnected
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

    def __init__(self, name: str, capacity: int = 4096, max_sysex: int = 1024) -> None:
        self.name = name
        self.stats = PortStats()
        self._capacity = capacity
        self._buffer: deque[MidiEvent] = deque()
        self._parser = MidiParser(max_sysex, name)
        self._drops = _Throttled()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup = asyncio.Event()
        self._wake_pending = False
        self._closed = False
        self._listeners: list[StatusListener] = []

    @property
    def connected(self) -> bool:
        return not self._closed

    @property
    def closed(self) -> bool:
        return self._closed

    def add_status_listener(self, listener: StatusListener) -> None:
        """Call ``listener(connected)`` (from the watchdog thread) when the peer comes or goes."""
        self._listeners.append(listener)

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


# --- rtmidi back end ----------------------------------------------------------------

API_NAMES = ("alsa", "jack", "coremidi", "winmm")


def _rtmidi() -> Any:
    try:
        import rtmidi
    except ImportError as exc:  # pragma: no cover - a dependency
        raise ImprovError(f"python-rtmidi is not installed: {exc}") from exc
    return rtmidi


def _api_constants() -> dict[str, int]:
    rtmidi = _rtmidi()
    return {
        "alsa": rtmidi.API_LINUX_ALSA,
        "jack": rtmidi.API_UNIX_JACK,
        "coremidi": rtmidi.API_MACOSX_CORE,
        "winmm": rtmidi.API_WINDOWS_MM,
    }


def compiled_apis() -> list[str]:
    """Names of the MIDI APIs this python-rtmidi build supports."""
    rtmidi = _rtmidi()
    by_value = {value: name for name, value in _api_constants().items()}
    return [by_value[a] for a in rtmidi.get_compiled_api() if a in by_value]


def _client_works(api: str) -> bool:
    rtmidi = _rtmidi()
    if api == "jack":
        from improv.io import jackmon

        return jackmon.server_running()
    try:
        probe = rtmidi.MidiOut(_api_constants()[api], "improv-probe")
    except Exception:
        return False
    probe.delete()
    return True


def resolve_api(name: str | None) -> str:
    """Check an API name (``alsa|jack|coremidi|winmm|auto``) and resolve ``auto``.

    ``auto`` prefers a running JACK server (what a JACK user expects), then the
    platform's native API.
    """
    name = (name or "auto").lower()
    available = compiled_apis()
    if name == "auto":
        order = ["jack", "coremidi", "winmm", "alsa"]
        for candidate in order:
            if candidate in available and _client_works(candidate):
                return candidate
        raise ImprovError(
            f"no MIDI API works here (compiled: {', '.join(available) or 'none'}); "
            "start a JACK server or load the ALSA sequencer"
        )
    if name not in API_NAMES:
        raise UsageError(f"unknown MIDI API {name!r}; choose one of alsa, jack, coremidi, auto")
    if name not in available:
        raise UsageError(f"MIDI API {name!r} is not available (compiled: {', '.join(available)})")
    return name


@dataclass(slots=True)
class PortList:
    """Ports one API offers: ``inputs`` (what ``--in`` accepts), ``outputs`` (``--out``)."""

    api: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    error: str | None = None


def list_ports(api: str | None = None) -> list[PortList]:
    """Ports per API; ``None``/``"auto"`` lists every compiled API (failures as ``error``)."""
    rtmidi = _rtmidi()
    names = compiled_apis() if api in (None, "auto") else [resolve_api(api)]
    result: list[PortList] = []
    for name in names:
        entry = PortList(name)
        if name == "jack":
            from improv.io import jackmon

            if not jackmon.server_running():
                entry.error = "JACK server not running"
                result.append(entry)
                continue
        try:
            midi_in = rtmidi.MidiIn(_api_constants()[name], "improv-ports")
            midi_out = rtmidi.MidiOut(_api_constants()[name], "improv-ports")
        except Exception as exc:
            entry.error = str(exc).strip() or type(exc).__name__
            result.append(entry)
            continue
        try:
            entry.inputs = list(midi_in.get_ports())
            entry.outputs = list(midi_out.get_ports())
        finally:
            midi_in.delete()
            midi_out.delete()
        result.append(entry)
    return result


def match_port(pattern: str, names: Iterable[str]) -> str:
    """The port a user means: an exact name, else the one name holding ``pattern``.

    Case-insensitive substring; ambiguity and absence are usage errors naming the ports.
    """
    names = list(names)
    if pattern in names:
        return pattern
    lowered = pattern.lower()
    hits = [n for n in names if lowered in n.lower()]
    if len(hits) == 1:
        return hits[0]
    available = ", ".join(repr(n) for n in names) or "none"
    if not hits:
        raise UsageError(f"no MIDI port matches {pattern!r}; available: {available}")
    raise UsageError(f"MIDI port {pattern!r} is ambiguous: {', '.join(map(repr, hits))}")


class _RtMidiPort:
    """Owns one rtmidi client and keeps it connected (used by the watchdog)."""

    def __init__(
        self,
        is_input: bool,
        api: str,
        pattern: str | None,
        client_name: str,
        port_name: str,
    ) -> None:
        self._is_input = is_input
        self.api = api
        self.pattern = pattern
        self.client_name = client_name
        self.port_name = port_name
        self.target: str | None = None  # the peer's full port name, when not virtual
        self._rt: Any = None
        self._jack: Any = None  # jackmon.Monitor while on JACK
        self._connected = False
        self._lock = threading.Lock()  # guards _rt against send during re-open
        self.configure: Callable[[Any], None] | None = None  # inputs: callback, filters

    @property
    def virtual(self) -> bool:
        return self.pattern is None

    def _create(self) -> None:
        rtmidi = _rtmidi()
        api = _api_constants()[self.api]
        if self.api == "jack":
            from improv.io import jackmon

            self._jack = jackmon.Monitor.open()
        cls = rtmidi.MidiIn if self._is_input else rtmidi.MidiOut
        try:
            self._rt = cls(api, self.client_name)
        except Exception as exc:
            self._close_monitor()
            raise ImprovError(f"cannot open a {self.api} MIDI client: {exc}") from exc
        if self.configure is not None:
            self.configure(self._rt)

    def _connect(self, wait_s: float = 0.0) -> bool:
        """Open our port (virtual, or connected to the peer); False if the peer is absent."""
        rt = self._rt
        if self.virtual:
            rt.open_virtual_port(self.port_name)
            self._connected = True
            return True
        assert self.pattern is not None
        deadline = now() + wait_s
        while True:
            names = list(rt.get_ports())
            target = self.target
            if target is None:
                try:
                    target = match_port(self.pattern, names)
                except UsageError:
                    if now() >= deadline:
                        raise
                    time.sleep(0.05)
                    continue
            if target in names:
                rt.open_port(names.index(target), self.port_name)
                self.target = target
                self._connected = True
                return True
            if now() >= deadline:
                return False
            time.sleep(0.05)

    def _teardown(self) -> None:
        rt, self._rt = self._rt, None
        self._connected = False
        if rt is not None:
            with contextlib.suppress(Exception):
                if self._is_input:
                    rt.cancel_callback()
                rt.close_port()
            rt.delete()
        self._close_monitor()

    def _close_monitor(self) -> None:
        monitor, self._jack = self._jack, None
        if monitor is not None:
            monitor.close()

    def check(self) -> bool | None:
        """Watchdog step: keep the port connected; the new state if it changed, else None."""
        was = self._connected
        try:
            if self._jack is not None and not self._jack.alive:
                log.warning("JACK server gone: MIDI port %r waits for it", self.describe())
                with self._lock:
                    self._teardown()
            if self._rt is None:
                with self._lock:
                    self._create()
                    if not self._connect():
                        self._connected = False
            elif not self.virtual and self._connected:
                if self.target not in self._rt.get_ports():
                    log.warning("MIDI port %r vanished; waiting for it", self.target)
                    with self._lock:
                        self._rt.close_port()
                        self._connected = False
            elif not self.virtual:
                with self._lock:
                    self._connect()
        except Exception as exc:
            log.debug("MIDI port %r not back yet: %s", self.describe(), exc)
            with self._lock, contextlib.suppress(Exception):
                self._teardown()
        if self._connected != was:
            if self._connected:
                log.warning("MIDI port %r is back", self.describe())
            return self._connected
        return None

    def describe(self) -> str:
        if self.virtual:
            return f"{self.client_name}:{self.port_name} (virtual, {self.api})"
        return f"{self.target or self.pattern} ({self.api})"


class RtMidiInput(BufferedInput):
    """A MIDI input port through python-rtmidi (see :func:`open_input`)."""

    def __init__(
        self,
        port: _RtMidiPort,
        capacity: int,
        max_sysex: int,
        ignore_sysex: bool,
    ) -> None:
        super().__init__(port.describe(), capacity, max_sysex)
        self._port = port
        self._ignore_sysex = ignore_sysex
        port.configure = self._configure

    def _configure(self, rt: Any) -> None:
        # sysex, timing (MIDI clock: needed), active sensing
        rt.ignore_types(sysex=self._ignore_sysex, timing=False, active_sense=True)
        rt.set_callback(self._on_message)
        rt.set_error_callback(self._on_error)

    def _on_message(self, message: tuple[list[int], float], _data: object = None) -> None:
        t = now()
        self._push(bytes(message[0]), t)

    def _on_error(self, kind: int, text: str, _data: object = None) -> None:
        log.warning("MIDI in %r: rtmidi error %s: %s", self.name, kind, text)

    @property
    def connected(self) -> bool:
        return self._port._connected and not self._closed

    def close(self) -> None:
        _watchdog.remove(self)
        with self._port._lock:
            self._port._teardown()
        super().close()

    def _check(self) -> None:
        changed = self._port.check()
        if changed is not None:
            self.name = self._port.describe()
            if changed:
                self.stats.reconnects += 1
            self._notify(changed)


class RtMidiOutput:
    """A MIDI output port through python-rtmidi (see :func:`open_output`)."""

    def __init__(self, port: _RtMidiPort) -> None:
        self._port = port
        self.name = port.describe()
        self.stats = PortStats()
        self._errors = _Throttled()
        self._drops = _Throttled(first=1, every=10000)
        self._listeners: list[StatusListener] = []

    @property
    def connected(self) -> bool:
        return self._port._connected

    def add_status_listener(self, listener: StatusListener) -> None:
        self._listeners.append(listener)

    def send(self, data: bytes) -> bool:
        """Send one message now; False (counted, logged) if disconnected or failing."""
        port = self._port
        if not port._connected:
            self.stats.dropped += 1
            self._drops("MIDI out %r is disconnected: messages dropped", self.name)
            return False
        try:
            with port._lock:
                port._rt.send_message(data)
        except Exception as exc:
            self.stats.send_errors += 1
            self._errors("MIDI out %r: send failed: %s", self.name, exc)
            return False
        self.stats.sent += 1
        return True

    def close(self) -> None:
        _watchdog.remove(self)
        with self._port._lock:
            self._port._teardown()

    def _check(self) -> None:
        changed = self._port.check()
        if changed is not None:
            self.name = self._port.describe()
            if changed:
                self.stats.reconnects += 1
            for listener in self._listeners:
                try:
                    listener(changed)
                except Exception:
                    log.exception("port status listener failed")


class _Watchdog:
    """One daemon thread that checks every open port a few times a second."""

    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self._ports: list[RtMidiInput | RtMidiOutput] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def add(self, port: RtMidiInput | RtMidiOutput) -> None:
        with self._lock:
            self._ports.append(port)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="improv-midi-watchdog", daemon=True
                )
                self._thread.start()

    def remove(self, port: RtMidiInput | RtMidiOutput) -> None:
        with self._lock:
            if port in self._ports:
                self._ports.remove(port)
        self._wake.set()

    def _run(self) -> None:
        while True:
            with self._lock:
                ports = list(self._ports)
                if not ports:
                    self._thread = None
                    return
            for port in ports:
                port._check()
            self._wake.wait(self.interval_s)
            self._wake.clear()


_watchdog = _Watchdog(float(os.environ.get("IMPROV_MIDI_WATCHDOG_S", "0.2")))


def open_input(
    name: str | None = None,
    *,
    api: str | None = "auto",
    virtual: bool = False,
    client_name: str = "improv-in",
    port_name: str = "in",
    capacity: int = 4096,
    max_sysex: int = 1024,
    ignore_sysex: bool = True,
    wait_s: float = 0.0,
) -> RtMidiInput:
    """Open a MIDI input: the peer port matching ``name``, or our own virtual port.

    ``wait_s`` waits that long for a named port to appear. Once open, the port is kept
    connected: if its peer vanishes it is waited for and re-opened by name.
    """
    port = _open_port(True, name, api, virtual, client_name, port_name)
    midi_in = RtMidiInput(port, capacity, max_sysex, ignore_sysex)
    _start(port, wait_s)
    midi_in.name = port.describe()
    _watchdog.add(midi_in)
    return midi_in


def open_output(
    name: str | None = None,
    *,
    api: str | None = "auto",
    virtual: bool = False,
    client_name: str = "improv-out",
    port_name: str = "out",
    wait_s: float = 0.0,
) -> RtMidiOutput:
    """Open a MIDI output: the peer port matching ``name``, or our own virtual port."""
    port = _open_port(False, name, api, virtual, client_name, port_name)
    _start(port, wait_s)
    midi_out = RtMidiOutput(port)
    _watchdog.add(midi_out)
    return midi_out


def _open_port(
    is_input: bool,
    name: str | None,
    api: str | None,
    virtual: bool,
    client_name: str,
    port_name: str,
) -> _RtMidiPort:
    if virtual == (name is not None):
        raise UsageError("give a MIDI port name or virtual=True (exactly one)")
    return _RtMidiPort(is_input, resolve_api(api), name, client_name, port_name)


def _start(port: _RtMidiPort, wait_s: float) -> None:
    port._create()
    try:
        if not port._connect(wait_s):
            raise UsageError(f"MIDI port {port.pattern!r} did not appear")
    except BaseException:
        port._teardown()
        raise


# --- note bookkeeping ---------------------------------------------------------------


class NoteTracker:
    """Which notes sound, per channel and pitch, honouring the sustain pedal.

    Feed it every message that went out (the scheduler) or came in (the performer):
    a note released while the pedal is down keeps sounding until the pedal lifts.
    ``release_messages`` is MIDI hygiene in one call: what silences everything fed.
    """

    __slots__ = ("_down", "_held", "_pedal", "_used")

    def __init__(self) -> None:
        self._down = bytearray(16 * 128)  # key down (note-on without its note-off)
        self._held = bytearray(16 * 128)  # key up, held by the sustain pedal
        self._pedal = bytearray(16)
        self._used = 0  # bit mask of channels seen

    def feed(self, data: bytes) -> None:
        status = data[0]
        if status >= 0xF0 or len(data) < 3:
            return
        kind = status & 0xF0
        channel = status & 0x0F
        self._used |= 1 << channel
        if kind == NOTE_ON and data[2] > 0:
            index = channel * 128 + data[1]
            self._down[index] = 1
            self._held[index] = 0
        elif kind in (NOTE_OFF, NOTE_ON):
            index = channel * 128 + data[1]
            if self._down[index]:
                self._down[index] = 0
                if self._pedal[channel]:
                    self._held[index] = 1
        elif kind == CONTROL_CHANGE:
            control = data[1]
            if control == CC_SUSTAIN:
                self._pedal[channel] = 1 if data[2] >= 64 else 0
                if not self._pedal[channel]:
                    self._clear(self._held, channel)
            elif control == CC_ALL_NOTES_OFF:  # keys up; the pedal still holds them
                if self._pedal[channel]:
                    start = channel * 128
                    for i in range(start, start + 128):
                        if self._down[i]:
                            self._held[i] = 1
                self._clear(self._down, channel)
            elif control == CC_ALL_SOUND_OFF:
                self._clear(self._down, channel)
                self._clear(self._held, channel)
            elif control == CC_RESET_CONTROLLERS:  # the pedal lifts
                self._pedal[channel] = 0
                self._clear(self._held, channel)

    @staticmethod
    def _clear(array: bytearray, channel: int) -> None:
        array[channel * 128 : (channel + 1) * 128] = bytes(128)

    def is_down(self, channel: int, pitch: int) -> bool:
        return bool(self._down[channel * 128 + pitch])

    def is_sounding(self, channel: int, pitch: int) -> bool:
        index = channel * 128 + pitch
        return bool(self._down[index] or self._held[index])

    def any_sounding(self) -> bool:
        """Any key down or any note held by a pedal (phrase ends wait for this)."""
        return self._down.find(1) >= 0 or self._held.find(1) >= 0

    def pedal(self, channel: int) -> bool:
        return bool(self._pedal[channel])

    def sounding(self) -> list[tuple[int, int]]:
        """(channel, pitch) of every sounding note, keys down or held by the pedal."""
        return [divmod(i, 128) for i in range(16 * 128) if self._down[i] or self._held[i]]

    def channels_used(self) -> list[int]:
        return [c for c in range(16) if self._used >> c & 1]

    def release_messages(self) -> list[bytes]:
        """Note-offs for keys down, pedal up where down, CC 123 on every channel used."""
        out = [note_off(i // 128, i % 128) for i in range(16 * 128) if self._down[i]]
        for channel in self.channels_used():
            if self._pedal[channel]:
                out.append(control_change(channel, CC_SUSTAIN, 0))
            out.append(control_change(channel, CC_ALL_NOTES_OFF, 0))
        return out

    def reset(self) -> None:
        self._down[:] = bytes(len(self._down))
        self._held[:] = bytes(len(self._held))
        self._pedal[:] = bytes(16)
        self._used = 0
