"""MIDI ports: real ones through python-rtmidi, and the interface every port offers.

Input reaches the asyncio loop through a bounded buffer: a poller thread drains rtmidi's
queue (the driver's real-time thread never waits for the GIL), timestamps
(``time.monotonic()``) and parses each packet, appends it, and wakes the loop with at
most one pending ``call_soon_threadsafe``, so a flood (a sysex storm, a stalled loop)
drops and counts instead of growing memory. Ports survive their peer: a watchdog
thread re-opens a vanished port by name and, after a JACK server restart, re-creates
the clients, while the port objects the engine holds (and its clock) carry on.

The MIDI wing of ``io``, one job per module: :mod:`~improv.io.midi.messages` (the
protocol table, the parser, the message type), :mod:`~improv.io.midi.ports` (the port
interface and the loop-side buffer), :mod:`~improv.io.midi.rtmidi_ports` (rtmidi),
:mod:`~improv.io.midi.watchdog`, :mod:`~improv.io.midi.jackmon` (JACK server
life), :mod:`~improv.io.midi.loopback` (the in-process transport) and
:mod:`~improv.io.midi.files` (jam and take files; their bytes are :mod:`improv.smf`'s).
The names a user of ports needs are re-exported here, so ``improv.io.midi`` is the one
import for live MIDI.

One packet must not make an input deaf: after a sysex without its final 0xF7,
rtmidi's JACK back end treats every following event as its continuation and delivers
nothing until an event ends in 0xF7. So every JACK input has a guard, an output client
of ours connected to it, and when nothing has come in for ``GUARD_S`` the poller sends
:data:`~improv.io.midi.messages.EOX_PROBE` through it: a stuck input then delivers what it
held (the parser drops the unterminated sysex at the next status byte, counted and
logged, and keeps the notes after it, timed at the probe) and a free one drops the
probe. rtmidi always passes sysex up; ``ignore_sysex`` drops it in the parser. A cost:
a sysex sent in several JACK events more than ``GUARD_S`` apart is cut at the gap.
"""

from __future__ import annotations

from improv.io.midi.messages import (
    ACTIVE_SENSING as ACTIVE_SENSING,
)
from improv.io.midi.messages import (
    CC_ALL_NOTES_OFF as CC_ALL_NOTES_OFF,
)
from improv.io.midi.messages import (
    CC_ALL_SOUND_OFF as CC_ALL_SOUND_OFF,
)
from improv.io.midi.messages import (
    CC_RESET_CONTROLLERS as CC_RESET_CONTROLLERS,
)
from improv.io.midi.messages import (
    CC_SUSTAIN as CC_SUSTAIN,
)
from improv.io.midi.messages import (
    CHANNEL_PRESSURE as CHANNEL_PRESSURE,
)
from improv.io.midi.messages import (
    CLOCK as CLOCK,
)
from improv.io.midi.messages import (
    CONTINUE as CONTINUE,
)
from improv.io.midi.messages import (
    CONTROL_CHANGE as CONTROL_CHANGE,
)
from improv.io.midi.messages import (
    EOX as EOX,
)
from improv.io.midi.messages import (
    EOX_PROBE as EOX_PROBE,
)
from improv.io.midi.messages import (
    NOTE_OFF as NOTE_OFF,
)
from improv.io.midi.messages import (
    NOTE_ON as NOTE_ON,
)
from improv.io.midi.messages import (
    PITCH_BEND as PITCH_BEND,
)
from improv.io.midi.messages import (
    POLY_PRESSURE as POLY_PRESSURE,
)
from improv.io.midi.messages import (
    PROGRAM_CHANGE as PROGRAM_CHANGE,
)
from improv.io.midi.messages import (
    RESET as RESET,
)
from improv.io.midi.messages import (
    SONG_POSITION as SONG_POSITION,
)
from improv.io.midi.messages import (
    START as START,
)
from improv.io.midi.messages import (
    STOP as STOP,
)
from improv.io.midi.messages import (
    SYSEX as SYSEX,
)
from improv.io.midi.messages import (
    MidiEvent as MidiEvent,
)
from improv.io.midi.messages import (
    MidiParser as MidiParser,
)
from improv.io.midi.messages import (
    NoteTracker as NoteTracker,
)
from improv.io.midi.messages import (
    control_change as control_change,
)
from improv.io.midi.messages import (
    data_length as data_length,
)
from improv.io.midi.messages import (
    note_off as note_off,
)
from improv.io.midi.messages import (
    note_on as note_on,
)
from improv.io.midi.messages import (
    song_position as song_position,
)
from improv.io.midi.ports import (
    BufferedInput as BufferedInput,
)
from improv.io.midi.ports import (
    MidiInput as MidiInput,
)
from improv.io.midi.ports import (
    MidiOutput as MidiOutput,
)
from improv.io.midi.ports import (
    PortClosedError as PortClosedError,
)
from improv.io.midi.ports import (
    PortStats as PortStats,
)
from improv.io.midi.ports import (
    StatusListener as StatusListener,
)
from improv.io.midi.rtmidi_ports import (
    API_NAMES as API_NAMES,
)
from improv.io.midi.rtmidi_ports import (
    GUARD_S as GUARD_S,
)
from improv.io.midi.rtmidi_ports import (
    PortList as PortList,
)
from improv.io.midi.rtmidi_ports import (
    RtMidiInput as RtMidiInput,
)
from improv.io.midi.rtmidi_ports import (
    RtMidiOutput as RtMidiOutput,
)
from improv.io.midi.rtmidi_ports import (
    compiled_apis as compiled_apis,
)
from improv.io.midi.rtmidi_ports import (
    list_ports as list_ports,
)
from improv.io.midi.rtmidi_ports import (
    match_port as match_port,
)
from improv.io.midi.rtmidi_ports import (
    open_input as open_input,
)
from improv.io.midi.rtmidi_ports import (
    open_output as open_output,
)
from improv.io.midi.rtmidi_ports import (
    resolve_api as resolve_api,
)
from improv.io.midi.watchdog import (
    watch_ports_inline as watch_ports_inline,
)
from improv.io.midi.watchdog import (
    watchdog as watchdog,
)
