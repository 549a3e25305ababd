"""The live synth in a process of its own, fed from the very sends that go to the MIDI port.

``improv jam --synth`` starts this process (``python -m improv.io.synth.process``): it
loads the SoundFont, opens an audio output (FluidSynth renders in a native thread of
its own) and listens on a Unix datagram socket. Whoever plays feeds it through a
:class:`SynthFeed`, one datagram per message, sent without waiting:

- improv's sender process, once the messages due together (a chord, a click) have all
  gone out to the port, in one datagram: never between two sends, and a full socket
  drops the datagram, never blocks the sending thread;
- the agent's input, on the thread a performer's message arrives on (rtmidi's, or the
  demo performer's sender), before the event loop sees it.

Each feed maps MIDI channels to the synth's parts (:mod:`improv.io.synth`): whatever
improv sends plays on improv's instrument, the metronome's channel 10 on the drum kit,
whatever the performer plays on the performer's. Nothing here shares a CPU, a lock or
the GIL with the sending thread: the process keeps off the first CPU, the one the
sender pins its sending thread to (:func:`improv.output.standby.split_cpus`), and each
datagram carries its scheduled time, so the process measures how late each message
reached it (``stats``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Iterable, Mapping, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from improv.io.synth import DRUM_CHANNEL, IMPROV, PERFORMER, SynthUnavailable

log = logging.getLogger(__name__)

_RECORD = struct.Struct("<dBBB")  # scheduled time (monotonic seconds), a message's 3 bytes
_MAX_PACKET = 1 << 16
_START_TIMEOUT_S = 30.0
_CALL_TIMEOUT_S = 2.0
_RING = 1 << 16  # delivery delays kept per part

IMPROV_CHANNELS = tuple(DRUM_CHANNEL if c == DRUM_CHANNEL else IMPROV.channel for c in range(16))
"""What improv's sender sends: its notes on improv's instrument, the clicks on the drums."""


def sender_channels(channel_out: int, band: Iterable[int] = ()) -> tuple[int, ...]:
    """What improv's sender sends when it plays on ``channel_out`` (0-15): that channel
    on improv's instrument, the clicks' (and the band's drums') channel 10 on the drum
    kit, the ``band``'s channels as they are (their program changes choose the sound),
    any other (a performer's messages passed ``--thru``) on the performer's."""
    kept = set(band)
    return tuple(
        IMPROV.channel
        if c == channel_out
        else c
        if c == DRUM_CHANNEL or c in kept
        else PERFORMER.channel
        for c in range(16)
    )


PERFORMER_CHANNELS = (PERFORMER.channel,) * 16
"""What the performer plays, on whatever channel: the performer's instrument."""

AUDIO_SETTINGS: dict[str, int | float | str] = {
    "audio.period-size": 64,
    "audio.periods": 4,
    "audio.realtime-prio": 5,
    "audio.jack.id": "improv-synth",
    "audio.jack.autoconnect": 1,
}
"""Four periods of 64 frames: 5.8 ms of output buffer at 44.1 kHz (FluidSynth's own
default on Linux is 16, 23 ms: too late to play along to); the audio thread real-time
below improv's sending threads (10 by default; FluidSynth's own default is 60); through
JACK, connected to the system's playback ports."""
_CAP_EVERY_S = 1.0
"""How often the process looks for a thread of FluidSynth's above the cap."""
_RECEIVE_PRIORITY = 1
"""The receiving thread: real-time (where allowed), the lowest priority, so a loaded
machine cannot hold the notes back while nothing of improv's waits for it."""


def _data_bytes(data: bytes) -> tuple[int, int]:
    return (data[1] if len(data) > 1 else 0, data[2] if len(data) > 2 else 0)


class SynthFeed:
    """One player's way into the synth: :meth:`send` never waits (thread-safe)."""

    def __init__(self, address: str, channels: Sequence[int]) -> None:
        if len(channels) != 16:
            raise ValueError("a channel map has 16 entries")
        self._channels = bytes(channels)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._sock.connect(address)
        self.dropped = 0

    def send(self, data: bytes, scheduled: float) -> None:
        """Pass a channel message on (system messages are not for the synth)."""
        self.send_many(((data, scheduled),))

    def send_many(self, messages: Iterable[tuple[bytes, float]]) -> None:
        """Pass messages on in one datagram (a chord: one wake-up of the synth)."""
        channels = self._channels
        packet = b"".join(
            _RECORD.pack(scheduled, (d[0] & 0xF0) | channels[d[0] & 0x0F], *_data_bytes(d))
            for d, scheduled in messages
            if 0x80 <= d[0] < 0xF0
        )
        if not packet:
            return
        try:
            self._sock.send(packet)
        except OSError:  # full (the synth is behind) or gone: the music goes on
            self.dropped += 1

    def tap(self, data: bytes, t: float) -> None:
        """:meth:`send`, as an input's tap (``BufferedInput.add_tap``) calls it."""
        self.send(data, t)

    def close(self) -> None:
        self._sock.close()


class SynthProcess:
    """The parent's handle on the synth process (start, figures, close)."""

    def __init__(
        self,
        soundfont: Path,
        drivers: Sequence[str] | None = None,
        settings: dict[str, int | float | str] | None = None,
    ) -> None:
        self.soundfont = soundfont
        self.drivers = tuple(drivers) if drivers else None
        self.settings = {**AUDIO_SETTINGS, **(settings or {})}
        self.driver = ""
        self._folder = tempfile.mkdtemp(prefix="improv-synth-")
        self.address = os.path.join(self._folder, "synth.sock")
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    def start(self) -> SynthProcess:
        """Start the process; once it returns the SoundFont is loaded and the audio output
        open. What stops it is raised as its one line (:class:`SynthUnavailable`)."""
        ours, theirs = socket.socketpair()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "improv.io.synth.process", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        conn = Connection(ours.detach())
        conn.send((str(self.soundfont), self.drivers, self.address, self.settings))
        reply: tuple[str, Any] = ("error", "the synth process did not start")
        try:
            if conn.poll(_START_TIMEOUT_S):
                reply = conn.recv()
        except (EOFError, OSError):
            reply = ("error", "the synth process died on start")
        if reply[0] != "ready":
            conn.close()
            self._end()
            raise SynthUnavailable(str(reply[1]))
        self.driver = str(reply[1])
        self._conn = conn
        return self

    def feed(self, channels: Sequence[int]) -> SynthFeed:
        return SynthFeed(self.address, channels)

    def delays(self) -> tuple[dict[str, list[float]], float]:
        """How late each part's messages reached the synth (seconds after their
        scheduled time, the latest 65,536 a part) and the CPU it used (percent of one
        core, since it was ready)."""
        if self._conn is not None:
            try:
                self._conn.send(("delays",))
                if self._conn.poll(_CALL_TIMEOUT_S):
                    delays, cpu_percent = self._conn.recv()
                    return dict(delays), float(cpu_percent)
            except (EOFError, OSError):
                pass
        return {}, 0.0

    def stats(self) -> dict[str, Any]:
        """:meth:`delays` as figures: per part messages and p50/p99/max in ms, and
        ``cpu_percent``."""
        delays, cpu_percent = self.delays()
        return {**delay_figures(delays), "cpu_percent": cpu_percent}

    def close(self) -> None:
        """Silence and end the process."""
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send(("close",))
            self._conn.close()
            self._conn = None
        self._end()

    def _end(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            try:
                process.wait(_CALL_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(1.0)
        with contextlib.suppress(OSError):
            os.unlink(self.address)
        with contextlib.suppress(OSError):
            os.rmdir(self._folder)

    def __enter__(self) -> SynthProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the process ----------------------------------------------------------------------


def _keep_off_the_sending_cpu() -> None:
    """Run on every CPU but the first, where improv's sending thread is pinned."""
    with contextlib.suppress(AttributeError, OSError):
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) >= 2:
            os.sched_setaffinity(0, cpus[1:])


def _below_the_sender() -> None:
    """Every real-time thread of this process (FluidSynth's audio thread; its file
    driver's timer asks for priority 10 whatever the settings say) at most at
    ``audio.realtime-prio``: improv's sending threads, and the standby sender on the
    CPU this process shares with it, always go first."""
    cap = int(AUDIO_SETTINGS["audio.realtime-prio"])
    with contextlib.suppress(AttributeError, OSError):
        for name in os.listdir("/proc/self/task"):
            tid = int(name)
            with contextlib.suppress(OSError):
                if os.sched_getscheduler(tid) == os.SCHED_FIFO and (
                    os.sched_getparam(tid).sched_priority > cap
                ):
                    os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(cap))


def _child_main(fd: int) -> None:
    """Load, open the audio output, then play datagrams until told to close (or the
    parent is gone). SIGINT and SIGTERM (sent to the whole process group) are left to
    the parent, which closes this process after the jam's last note-off."""
    from improv.io.synth import Synth

    conn = Connection(fd)
    soundfont, drivers, address, settings = conn.recv()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="improv-synth: %(message)s")
    _keep_off_the_sending_cpu()  # before FluidSynth's audio thread starts: it inherits it
    try:
        synth = Synth(Path(soundfont), settings=settings)
    except SynthUnavailable as exc:
        conn.send(("error", str(exc)))
        return
    try:
        driver = synth.start_audio(drivers)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(address)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    except (SynthUnavailable, OSError) as exc:
        synth.close()
        conn.send(("error", str(exc)))
        return
    _below_the_sender()
    with contextlib.suppress(AttributeError, OSError):  # this thread only, once loaded
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(_RECEIVE_PRIORITY))
    conn.send(("ready", driver))
    try:
        _serve(conn, sock, synth)
    finally:
        synth.silence()
        time.sleep(0.05)  # the silence reaches the output before it closes
        synth.close()
        sock.close()


def _serve(conn: Connection, sock: socket.socket, synth: Any) -> None:
    delays: dict[int, array[float]] = {}  # synth channel -> seconds late, a ring each
    counts: dict[int, int] = {}
    clock = time.monotonic
    started, cpu_at_start = clock(), _cpu_s()
    capped = started
    while True:
        ready = select.select([conn.fileno(), sock.fileno()], [], [], _CAP_EVERY_S)[0]
        if clock() - capped >= _CAP_EVERY_S:
            _below_the_sender()  # threads FluidSynth starts late (its file timer's)
            capped = clock()
        if sock.fileno() in ready:
            while True:
                try:
                    packet = sock.recv(_MAX_PACKET)
                except BlockingIOError:
                    break
                got = clock()
                for scheduled, status, first, second in _RECORD.iter_unpack(packet):
                    synth.play(bytes((status, first, second)))
                    channel = status & 0x0F
                    ring = delays.setdefault(channel, array("d", bytes(8 * _RING)))
                    count = counts.get(channel, 0)
                    ring[count % _RING] = got - scheduled
                    counts[channel] = count + 1
        if conn.fileno() in ready:
            try:
                command = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            if command[0] == "close":
                return
            if command[0] == "delays":
                cpu = (_cpu_s() - cpu_at_start) / max(1e-9, clock() - started)
                names = {PERFORMER.channel: "performer", IMPROV.channel: "improv"}
                names[DRUM_CHANNEL] = "metronome"
                raw = {
                    names.get(channel, f"channel {channel + 1}"): ring[
                        : min(counts[channel], _RING)
                    ].tolist()
                    for channel, ring in sorted(delays.items())
                }
                conn.send((raw, round(100 * cpu, 1)))


def _cpu_s() -> float:
    """CPU time of this process (every thread: FluidSynth's audio thread too)."""
    times = os.times()
    return times.user + times.system


def delay_figures(delays: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """Per part: messages, and how late they reached the synth (p50/p99/max, ms)."""
    out: dict[str, Any] = {}
    for part, measured in delays.items():
        values = sorted(measured)
        if not values:
            continue
        out[part] = {
            "messages": len(values),
            "delay_ms_p50": round(values[len(values) // 2] * 1e3, 3),
            "delay_ms_p99": round(values[min(len(values) - 1, int(len(values) * 0.99))] * 1e3, 3),
            "delay_ms_max": round(values[-1] * 1e3, 3),
        }
    return out


if __name__ == "__main__":
    _child_main(int(sys.argv[1]))
