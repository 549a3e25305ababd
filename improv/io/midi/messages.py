"""MIDI messages as the project speaks them: raw bytes with a monotonic time.

Everything above :mod:`improv.io` handles :class:`MidiEvent` (the bytes of one complete
message plus the ``time.monotonic()`` second it arrived or is due), never mido or rtmidi
types. This module is the protocol as data: status tables, byte builders, a parser that
turns whatever arrives on a wire into well-formed messages without ever raising, and
:class:`NoteTracker`, the note-on/note-off and sustain bookkeeping behind MIDI hygiene.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

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
TRANSPORT = frozenset({CLOCK, START, CONTINUE, STOP, SONG_POSITION})
"""A clock master's messages: a follower takes them, ``--thru`` never echoes them."""
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
    def is_system(self) -> bool:
        """Not a channel message (sysex, song position, clock, transport, ...)."""
        return self.data[0] >= 0xF0

    @property
    def is_transport(self) -> bool:
        """Clock, start, continue, stop or song position: see :data:`TRANSPORT`."""
        return self.data[0] in TRANSPORT

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

EOX_PROBE = bytes((SYSEX, 0x7D, 0x69, 0x6D, EOX))
"""improv's own sysex (0x7D: the non-commercial ID), sent into its own JACK inputs when
they fall silent: an event ending in 0xF7 is what frees rtmidi's JACK back end from an
unterminated sysex (see :mod:`improv.io.midi`). Parsers drop it without a word."""


class Throttled:
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
    dropped and counted in :attr:`malformed`: an unterminated sysex ends at the next
    status byte (the messages after it are kept) or at the end of its packet. With
    ``ignore_sysex`` complete sysex messages are dropped too, uncounted, and
    :data:`EOX_PROBE` always is.
    """

    def __init__(
        self, max_sysex: int = 1024, port: str = "", *, ignore_sysex: bool = False
    ) -> None:
        self.max_sysex = max_sysex
        self.ignore_sysex = ignore_sysex
        self._warn = Throttled()
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
                    if len(sysex) > self.max_sysex:
                        self._bad("sysex longer than %d bytes dropped", self.max_sysex)
                    elif not self.ignore_sysex and sysex != EOX_PROBE:
                        out.append(bytes(sysex))
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
