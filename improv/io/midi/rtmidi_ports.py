"""MIDI ports through python-rtmidi: the APIs, listing and matching ports, the rtmidi
clients behind a port, and the poller that drains rtmidi's queue (see the package)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from improv.errors import ImprovError, UsageError
from improv.io.midi.jackmon import client_lock
from improv.io.midi.messages import EOX_PROBE, Throttled
from improv.io.midi.ports import BufferedInput, PortStats, StatusListener
from improv.io.midi.watchdog import watchdog
from improv.timebase import now

log = logging.getLogger(__name__)

GUARD_S = 0.03
"""An input silent this long gets an :data:`EOX_PROBE` (JACK): the bound on deafness."""

GUARD_FLOOD_S = 0.002
"""The guard's wait while a flood of junk glues events into sysex (see :data:`FLOOD_HOLD_S`).

rtmidi's queue is a ring of messages, and each slot keeps the largest message it ever
held. An unterminated sysex in a flood glues everything after it into one message until
the guard's probe ends it: 30 ms of a fuzz flood made messages of up to 33 KB, and as
such messages landed in ever more of the 4,096 slots rtmidi had then, the process grew
by 78 MB over 12 million messages without levelling off. Probing 2 ms after a glued
message keeps most of them to a few kilobytes (and :data:`RTMIDI_QUEUE` the slots few)."""

FLOOD_HOLD_S = 1.0
"""How long after the last glued message the guard keeps :data:`GUARD_FLOOD_S`."""

RTMIDI_QUEUE = 256
"""Slots in rtmidi's own input queue (the loop-side buffer has its own ``capacity``).

The poller drains it every millisecond, so it fills only while the poller waits for the
GIL: 256 slots hold a quarter second of the densest playing a MIDI cable carries, 5 ms
of the fuzz flood. Fewer slots hold less memory (see :data:`GUARD_FLOOD_S`): with 1,024,
8 million hostile messages left them holding 13.6 MB and still growing; with 256,
4.3 MB, levelling off."""

JACK_SETTLE_S = 0.03
"""How long a JACK client close waits before the process touches JACK clients again.

Every graph change (a port unregistered, a client closed) makes the server send each
active client a latency notification, handled on that client's own libjack thread.
libjack walks the client's port list there while an unregister on another thread may
erase from it, and that race crashes the process (jack2 issues #216 and #340: SIGSEGV
in ``JackClient::HandleLatencyCallback``; seen here when an input closed right after
its guard, under load, and when a guard closed right after its port). rtmidi gives no
way to deactivate a client first, so after each port unregister and each client close
the process lets the notifications it caused be handled before the next step. That
narrows the window; it cannot close it while another process changes the graph, so
the test suite runs the JACK tests in a worker that a crash restarts (scripts/test.sh).
The MIDI sender process tears down on its sending loop only when its port or server
is gone, when nothing can be sent anyway.
"""


API_NAMES = ("alsa", "jack", "coremidi", "winmm")


def _rtmidi() -> Any:
    try:
        import rtmidi
    except ImportError as exc:  # pragma: no cover - a dependency
        raise ImprovError(f"python-rtmidi is not installed: {exc}") from exc
    _quiet_alsa()
    return rtmidi


@functools.cache
def _quiet_alsa() -> None:
    """Keep libasound from printing to stderr where the ALSA sequencer is absent.

    rtmidi already turns the failure into an exception with its own message. The
    handler is libc's ``strlen``: a C function that ignores what it gets, so no Python
    runs inside ALSA.
    """
    path = ctypes.util.find_library("asound")
    libc = ctypes.util.find_library("c")
    if not path or not libc:
        return
    with contextlib.suppress(OSError, AttributeError):
        strlen = ctypes.cast(ctypes.CDLL(libc).strlen, ctypes.c_void_p)
        handler = ctypes.CDLL(path).snd_lib_error_set_handler
        handler.argtypes = [ctypes.c_void_p]
        handler(strlen)


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
        from improv.io.midi import jackmon

        return jackmon.server_running()
    with client_lock:
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
    names = compiled_apis() if api in (None, "auto") else [resolve_api(api)]
    return [_list_api(name) for name in names]


def _list_api(name: str) -> PortList:
    rtmidi = _rtmidi()
    entry = PortList(name)
    with client_lock:
        if name == "jack":
            from improv.io.midi import jackmon

            if not jackmon.server_running():
                entry.error = "JACK server not running"
                return entry
        try:
            midi_in = rtmidi.MidiIn(_api_constants()[name], "improv-ports")
        except Exception as exc:
            entry.error = str(exc).strip() or type(exc).__name__
            return entry
        midi_out = rtmidi.MidiOut(_api_constants()[name], "improv-ports")
        try:
            entry.inputs = list(midi_in.get_ports())
            entry.outputs = list(midi_out.get_ports())
        finally:
            midi_in.delete()
            midi_out.delete()
    return entry


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


def _dispose(client: Any, *, jack: bool) -> None:
    """Close an rtmidi client's port and delete the client; on JACK with a
    :data:`JACK_SETTLE_S` pause after each, for the notifications they caused."""
    with contextlib.suppress(Exception):
        client.close_port()
    if jack:
        time.sleep(JACK_SETTLE_S)
    client.delete()
    if jack:
        time.sleep(JACK_SETTLE_S)


class _RtMidiPort:
    """Owns one rtmidi client and keeps it connected (driven by the watchdog).

    Client management (create, connect, close, delete) runs under the process-wide
    :data:`~improv.io.midi.jackmon.client_lock`: libjack's client side is shared by all
    clients of a process and does not survive them opening and closing on several
    threads at once. ``lock`` only keeps a send away from a client being replaced.
    """

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
        self.rt: Any = None
        self.guarded = False  # a JACK input that gets a guard (see the module)
        self.guard: Any = None  # inputs on JACK: our output client connected to our port
        self.connected = False
        self.closed = False  # closed by its owner: the watchdog must never bring it back
        self.lock = threading.Lock()
        self.configure: Callable[[Any], None] | None = None  # inputs: message filters
        self.queue_size = RTMIDI_QUEUE  # inputs: rtmidi's own queue, drained by the poller

    @property
    def virtual(self) -> bool:
        return self.pattern is None

    def open(self, wait_s: float = 0.0) -> None:
        """Create the client and connect; a usage error if the named port never appears."""
        with client_lock:
            self._create()
            try:
                if not self._connect(wait_s):
                    raise UsageError(f"MIDI port {self.pattern!r} did not appear")
            except BaseException:
                self.teardown()
                raise

    def _create(self) -> None:
        rtmidi = _rtmidi()
        api = _api_constants()[self.api]
        try:
            if self._is_input:
                rt = rtmidi.MidiIn(api, self.client_name, queue_size_limit=self.queue_size)
            else:
                rt = rtmidi.MidiOut(api, self.client_name)
        except Exception as exc:
            raise ImprovError(f"cannot open a {self.api} MIDI client: {exc}") from exc
        with self.lock:
            self.rt = rt

    def _connect(self, wait_s: float = 0.0) -> bool:
        """Open our port (virtual, or connected to the peer); False if the peer is absent."""
        rt = self.rt
        if self.configure is not None:
            self.configure(rt)
        if self.virtual:
            rt.open_virtual_port(self.port_name)
            self.connected = True
            self._open_guard()
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
                self.connected = True
                self._open_guard()
                return True
            if now() >= deadline:
                return False
            time.sleep(0.05)

    def _open_guard(self) -> None:
        """Connect a guard (a JACK output client) to our input port, anew each time the
        port is opened: through it the poller sends :data:`EOX_PROBE` (see the module).
        An input without one still works: its failure is logged, never raised."""
        if not self._is_input or self.api != "jack" or not self.guarded:
            return
        self._close_guard()
        guard: Any = None
        try:
            guard = _rtmidi().MidiOut(_api_constants()["jack"], f"{self.client_name}-guard")
            names = list(guard.get_ports())
            ours = f"{self.client_name}:{self.port_name}"
            if ours not in names:  # JACK renamed a second client of that name: the newest
                renamed = [
                    n
                    for n in names
                    if n.startswith(f"{self.client_name}-") and n.endswith(f":{self.port_name}")
                ]
                ours = renamed[-1] if renamed else ""
            if not ours:
                raise ImprovError("our own input port is not listed")
            guard.open_port(names.index(ours), "guard")
        except Exception as exc:
            log.warning("MIDI in %r: no guard against unterminated sysex: %s", self.describe(), exc)
            if guard is not None:
                with contextlib.suppress(Exception):
                    guard.delete()
            return
        with self.lock:
            self.guard = guard

    def _close_guard(self) -> None:
        with self.lock:
            guard, self.guard = self.guard, None
        if guard is not None:
            _dispose(guard, jack=True)  # guards are JACK's alone

    def teardown(self) -> None:
        """Close and delete the client (call under ``client_lock``)."""
        self._close_guard()
        with self.lock:
            rt, self.rt = self.rt, None
            self.connected = False
        if rt is not None:
            _dispose(rt, jack=self.api == "jack")

    def close(self) -> None:
        """Tear down for good (call under ``client_lock``).

        A watchdog round that took its list of ports before this one was removed may
        still come to it; :meth:`check` then leaves it closed instead of re-creating it.
        """
        self.closed = True
        self.teardown()

    def check(self) -> bool | None:
        """Watchdog step (under ``client_lock``): reconnect; the new state if it changed."""
        if self.closed:
            return None
        was = self.connected
        try:
            if self.rt is None:
                self._create()
                self._connect()
            elif not self.virtual and self.connected:
                if self.target not in self.rt.get_ports():
                    log.warning("MIDI port %r vanished; waiting for it", self.target)
                    with self.lock:
                        self.connected = False
                    self.rt.close_port()
            elif not self.virtual:
                self._connect()
        except Exception as exc:
            log.debug("MIDI port %r not back yet: %s", self.describe(), exc)
            with contextlib.suppress(Exception):
                self.teardown()
        if self.connected == was:
            return None
        if self.connected:
            log.warning("MIDI port %r is back", self.describe())
        return self.connected

    def describe(self) -> str:
        if self.virtual:
            return f"{self.client_name}:{self.port_name} (virtual, {self.api})"
        return f"{self.target or self.pattern} ({self.api})"


_STATUS_BYTE = re.compile(rb"[\x80-\xff]")


def _glued(packet: bytes) -> bool:
    """A sysex that holds a status byte: rtmidi glued events after an unterminated one."""
    return packet[:1] == b"\xf0" and _STATUS_BYTE.search(packet, 1, len(packet) - 1) is not None


class RtMidiInput(BufferedInput):
    """A MIDI input port through python-rtmidi (see :func:`open_input`).

    rtmidi's callback mode calls Python from the driver's real-time thread, which then
    waits for the GIL; under load, JACK input then arrives duplicated and lost. Instead
    rtmidi queues in C, never touching the GIL, and a poller thread of ours drains that
    queue every ``poll_s``. Each event's time is
    rebuilt from rtmidi's exact inter-event deltas, anchored at the poll that found
    it, so its error is at most one poll interval (plus the poller's wake-up).
    """

    def __init__(
        self,
        port: _RtMidiPort,
        capacity: int,
        max_sysex: int,
        ignore_sysex: bool,
        poll_s: float,
    ) -> None:
        super().__init__(port.describe(), capacity, max_sysex, ignore_sysex)
        self.port = port
        self.poll_s = poll_s
        self._last_time = 0.0
        self._poller: threading.Thread | None = None
        self._overflows = Throttled()
        port.configure = self._configure

    def _configure(self, rt: Any) -> None:
        # MIDI clock must come through; active sensing never matters here; sysex comes
        # up for the parser to judge (see the module's docstring)
        rt.ignore_types(sysex=False, timing=False, active_sense=True)

    def _start_polling(self) -> None:
        self._poller = threading.Thread(
            target=self._poll, name=f"improv-midi-in {self.name}", daemon=True
        )
        self._poller.start()

    def _poll(self) -> None:
        port = self.port
        batch: list[tuple[list[int], float]] = []
        heard = now()  # when rtmidi last delivered (or the guard last probed)
        flood_until = 0.0  # the guard waits GUARD_FLOOD_S until then
        backlog = 0  # messages taken since rtmidi's queue was last found empty
        while not self._closed:
            with port.lock:  # the watchdog swaps clients under this lock
                rt = port.rt
                if rt is not None:
                    while len(batch) < 256:
                        message = rt.get_message()
                        if message is None:
                            backlog = 0
                            break
                        batch.append(message)
                        backlog += 1
                        if backlog == port.queue_size - 1:
                            self._queue_full()
                polled = now()
                guard_s = GUARD_FLOOD_S if polled < flood_until else GUARD_S
                if not batch and port.guard is not None and polled - heard >= guard_s:
                    heard = polled
                    with contextlib.suppress(Exception):
                        port.guard.send_message(EOX_PROBE)
            if not batch:
                time.sleep(self.poll_s)
                continue
            t = heard = now()
            times = []
            for _data, delta in reversed(batch):  # the last one arrived by now
                times.append(t)
                t -= delta
            for (data, _delta), at in zip(batch, reversed(times), strict=True):
                self._last_time = max(self._last_time, at)
                packet = bytes(data)
                if _glued(packet):
                    flood_until = heard + FLOOD_HOLD_S
                self._push(packet, self._last_time)
            batch.clear()

    def _queue_full(self) -> None:
        """rtmidi's queue holds ``queue_size - 1`` messages and drops (with a line on
        stderr only) what comes while it is full; it cannot say how many. So a drain
        that takes that many without once finding it empty is counted and logged: the
        input may have lost messages there (a flood faster than the poller drains)."""
        self.stats.queue_full += 1
        self._overflows(
            "MIDI in %r: rtmidi's queue was full (%d messages): input may have been lost",
            self.name,
            self.port.queue_size - 1,
        )

    @property
    def connected(self) -> bool:
        return self.port.connected and not self._closed

    def close(self) -> None:
        super().close()  # the poller stops at its next round
        watchdog().remove(self)
        if self._poller is not None and self._poller is not threading.current_thread():
            self._poller.join(1.0)

    def _status_changed(self, connected: bool) -> None:
        self.name = self.port.describe()
        if connected:
            self.stats.reconnects += 1
        self._notify(connected)


class RtMidiOutput:
    """A MIDI output port through python-rtmidi (see :func:`open_output`)."""

    def __init__(self, port: _RtMidiPort) -> None:
        self.port = port
        self.name = port.describe()
        self.stats = PortStats()
        self._errors = Throttled()
        self._drops = Throttled(first=1, every=10000)
        self._listeners: list[StatusListener] = []

    @property
    def connected(self) -> bool:
        return self.port.connected

    def add_status_listener(self, listener: StatusListener) -> None:
        """Call ``listener(connected)`` (from the watchdog thread) when the peer comes or goes."""
        self._listeners.append(listener)

    def send(self, data: bytes) -> bool:
        """Send one message now; False (counted, logged) if disconnected or failing."""
        port = self.port
        try:
            with port.lock:
                if not port.connected:
                    self.stats.dropped += 1
                    self._drops("MIDI out %r is disconnected: messages dropped", self.name)
                    return False
                port.rt.send_message(data)
        except Exception as exc:
            self.stats.send_errors += 1
            self._errors("MIDI out %r: send failed: %s", self.name, exc)
            return False
        self.stats.sent += 1
        return True

    def close(self) -> None:
        watchdog().remove(self)

    def _status_changed(self, connected: bool) -> None:
        self.name = self.port.describe()
        if connected:
            self.stats.reconnects += 1
        for listener in self._listeners:
            try:
                listener(connected)
            except Exception:
                log.exception("port status listener failed")


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
    poll_s: float = 0.001,
    guard_sysex: bool = True,
) -> RtMidiInput:
    """Open a MIDI input: the peer port matching ``name``, or our own virtual port.

    ``api`` is ``alsa``, ``jack``, ``coremidi`` or ``auto``; ``wait_s`` waits that long
    for a named port to appear; ``poll_s`` is how often rtmidi's queue is drained (the
    bound on timestamp error). Once open, the port is kept connected: if its peer
    vanishes it is waited for and re-opened by name; the object stays the same.
    ``guard_sysex`` gives a JACK input its guard against an unterminated sysex (see the
    module). The losses once blamed on its probes were JACK2's asynchronous mode losing
    and doubling events of late clients (see docs/realtime-io.md); on a server in
    synchronous mode the JACK tests pass with it, clock following included.
    """
    port = _RtMidiPort(True, resolve_api(api), _check_name(name, virtual), client_name, port_name)
    port.queue_size = min(capacity, RTMIDI_QUEUE)
    port.guarded = guard_sysex
    midi_in = RtMidiInput(port, capacity, max_sysex, ignore_sysex, poll_s)
    watchdog().open(midi_in, wait_s)
    midi_in._start_polling()
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
    port = _RtMidiPort(False, resolve_api(api), _check_name(name, virtual), client_name, port_name)
    midi_out = RtMidiOutput(port)
    watchdog().open(midi_out, wait_s)
    return midi_out


def _check_name(name: str | None, virtual: bool) -> str | None:
    if virtual == (name is not None):
        raise UsageError("give a MIDI port name or virtual=True (exactly one)")
    return name
