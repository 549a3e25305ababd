"""A MIDI file as a WAV file, offline: ``improv render JAM.mid --out jam.wav``.

The built-in synth (:class:`~improv.io.synth.Synth`, the same parts and instruments as
``improv jam --synth``) renders on this thread, as fast as the CPU goes: the file's
messages in time order (tempo changes applied, :func:`improv.smf.timeline`), the audio
up to each message's sample rendered before it is played. FluidSynth works in blocks
of 64 frames (:data:`FLUID_BLOCK`) and a message takes effect at the start of a block,
so each is played at the block boundary nearest its time: at most half a block
(0.7 ms at 44.1 kHz) early or late, never a whole block late. The WAV is 16-bit
stereo, written as it is rendered (memory stays flat however long the jam), to a
temporary file renamed into place.
"""

from __future__ import annotations

import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from improv.errors import UsageError
from improv.files import atomic_output
from improv.io.synth import SAMPLE_RATE, Synth
from improv.smf import SYSEX, MidiFileError, load_midi, timeline

TAIL_S = 2.0
"""Rendered after the last message: the release and the reverb's tail."""
MAX_SECONDS = 6 * 3600
"""A WAV file holds at most 4 GiB: about 6.7 hours of 16-bit stereo at 44.1 kHz."""
FLUID_BLOCK = 64
"""FluidSynth's internal block (``FLUID_BUFSIZE``): messages take effect between blocks."""
BLOCK_FRAMES = 1 << 15
"""Frames rendered and written at a time (0.7 s): a progress step, a bounded buffer."""

Progress = Callable[[float, float], None]
"""``progress(seconds_done, seconds_total)``, called as the audio is rendered."""


@dataclass(frozen=True, slots=True)
class Rendered:
    path: Path
    seconds: float  # of audio written
    messages: int  # MIDI channel messages played
    wall_s: float  # time the rendering took


def render_midi(
    midi_path: Path,
    out: Path,
    soundfont: Path,
    *,
    sample_rate: int = SAMPLE_RATE,
    progress: Progress | None = None,
) -> Rendered:
    """Render ``midi_path`` to ``out`` (WAV) with ``soundfont``; bad input is a one-line
    :class:`UsageError`."""
    events = _timed_messages(midi_path)
    total = (events[-1][0] if events else 0.0) + TAIL_S
    if total > MAX_SECONDS:
        raise UsageError(
            f"MIDI file {midi_path} lasts {total / 3600:.1f} hours: more than a WAV file holds"
        )
    started = time.perf_counter()
    synth = Synth(soundfont, sample_rate=sample_rate)
    try:
        with atomic_output(out, "--out") as tmp, wave.open(str(tmp), "wb") as wav:
            wav.setnchannels(2)
            wav.setsampwidth(2)
            wav.setframerate(sample_rate)
            done = 0

            def render_to(frame: int) -> None:
                nonlocal done
                while done < frame:
                    count = min(BLOCK_FRAMES, frame - done)
                    wav.writeframesraw(synth.samples(count).tobytes())
                    done += count
                    if progress is not None:
                        progress(done / sample_rate, total)

            for seconds, data in events:
                render_to(_block_frame(seconds, sample_rate))
                synth.play(data)
            render_to(_block_frame(total, sample_rate))
    finally:
        synth.close()
    return Rendered(out, total, len(events), time.perf_counter() - started)


def _block_frame(seconds: float, sample_rate: int) -> int:
    """The frame of the FluidSynth block boundary nearest ``seconds``."""
    return round(seconds * sample_rate / FLUID_BLOCK) * FLUID_BLOCK


def _timed_messages(source: Path) -> list[tuple[float, bytes]]:
    """(seconds, bytes) of every channel message, in time order (all tracks merged)."""
    try:
        midi = load_midi(source)
    except MidiFileError as exc:
        raise UsageError(f"cannot read MIDI file {exc}") from None
    try:
        return [(seconds, e.message) for seconds, e in timeline(midi) if e.status < SYSEX]
    except MidiFileError as exc:  # a tempo that cannot be read
        raise UsageError(f"cannot read MIDI file {source}: {exc}") from None
