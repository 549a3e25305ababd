"""The built-in synth: FluidSynth with a General MIDI SoundFont, for those with no sound module.

One :class:`Synth` wraps pyfluidsynth for both uses: live (an audio driver of
FluidSynth's own plays in a native thread; :mod:`improv.io.synth.process` feeds it) and
offline (:meth:`Synth.samples` renders blocks on the caller's thread; see
:mod:`improv.io.synth.render`). Each part of a jam has its own channel and instrument
(:data:`PARTS`): the performer on 1, improv on 2, a band's parts on 3 to 9, the
metronome on the General MIDI drum channel 10; a jam's record carries the same
programs (performer on channel 1, improv on its own), so it renders with the
instruments it was heard with.

FluidSynth reports problems through its log and a NULL handle; they are caught here
and turned into one line (:class:`SynthUnavailable`: which SoundFont or which audio
output is missing), the message the user sees.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from improv.errors import UsageError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 44100
GAIN = 0.5
SOUNDFONT_LIMIT = 2 << 30
"""A SoundFont may be large (FluidR3_GM is 141 MiB), but not a device or a disk image."""

SOUNDFONT_SEARCH = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/sounds/sf3/default-GM.sf3",
    "/usr/share/soundfonts/FluidR3_GM.sf3",
    "/opt/homebrew/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2",
)
"""Where a General MIDI SoundFont lives (Debian's fluid-soundfont-gm first); the
``IMPROV_SOUNDFONT`` environment variable, then ``--soundfont``, go before these."""


@dataclass(frozen=True, slots=True)
class Part:
    """One voice of the jam: its synth channel (0-15) and General MIDI program."""

    name: str
    channel: int
    program: int  # GM program 0-127; on the drum channel the drum kit


PERFORMER = Part("performer", 0, 66)  # Tenor Sax
IMPROV = Part("improv", 1, 26)  # Electric Guitar (jazz)
METRONOME = Part("metronome", 9, 0)  # Standard drum kit: the clicks are wood blocks
PARTS = (PERFORMER, IMPROV, METRONOME)
"""Channels 2 to 8 are free for a band's parts (bass, comping)."""

DRUM_CHANNEL = 9


class SynthUnavailable(UsageError):
    """The synth cannot play: no SoundFont, a bad one, or no audio output (one line)."""


def find_soundfont(given: str | Path | None = None) -> Path:
    """The SoundFont to use: ``given``, else ``$IMPROV_SOUNDFONT``, else the first GM
    SoundFont found on the system; a :class:`SynthUnavailable` names what is missing."""
    if given is not None:
        return check_soundfont(Path(given), "--soundfont")
    env = os.environ.get("IMPROV_SOUNDFONT")
    if env:
        return check_soundfont(Path(env), "IMPROV_SOUNDFONT")
    for candidate in SOUNDFONT_SEARCH:
        path = Path(candidate)
        if path.is_file():
            return check_soundfont(path, "SoundFont")
    raise SynthUnavailable(
        "no General MIDI SoundFont found (install fluid-soundfont-gm, or give --soundfont PATH)"
    )


def check_soundfont(path: Path, what: str) -> Path:
    """``path`` if it is a readable SoundFont (SF2/SF3 or DLS, by its RIFF header)."""
    from improv.files import check_input

    try:
        check_input(path, SOUNDFONT_LIMIT, what)
        with path.open("rb") as handle:
            head = handle.read(12)
    except UsageError as exc:
        raise SynthUnavailable(str(exc)) from None
    except OSError as exc:
        raise SynthUnavailable(f"{what} {path}: {exc.strerror or exc}") from None
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] not in (b"sfbk", b"DLS "):
        raise SynthUnavailable(f"{what} {path}: not a SoundFont (no SF2 header)")
    return path


def _fluidsynth() -> Any:
    """The pyfluidsynth module, or a one-line error where the library is missing."""
    try:
        import fluidsynth  # type: ignore[import-untyped]
    except (ImportError, OSError) as exc:
        raise SynthUnavailable(
            f"FluidSynth is not installed ({exc}): install fluidsynth and pyfluidsynth"
        ) from None
    return fluidsynth


_LOG_FUNCTION = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_FLUID_ERR, _FLUID_WARN = 1, 2


class _FluidLog:
    """FluidSynth's own log, caught: errors kept (for the one-line message), nothing
    printed to the terminal by FluidSynth itself."""

    def __init__(self, fluidsynth: Any) -> None:
        self.errors: list[str] = []
        self._callback = _LOG_FUNCTION(self._log)  # kept alive as long as the synth
        setter = getattr(fluidsynth._fl, "fluid_set_log_function", None)
        if setter is not None:
            setter.argtypes = [ctypes.c_int, _LOG_FUNCTION, ctypes.c_void_p]
            for level in range(5):
                setter(level, self._callback, None)

    def _log(self, level: int, message: bytes | None, _data: object) -> None:
        text = (message or b"").decode("utf-8", "replace").strip()
        if level <= _FLUID_ERR:
            self.errors.append(text)
        log.debug("fluidsynth: %s", text)

    def take(self) -> str:
        """The errors logged since the last take, as one line."""
        errors, self.errors = self.errors, []
        return "; ".join(dict.fromkeys(e for e in errors if e))


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence what libraries below FluidSynth write to fd 2 themselves (alsa-lib's
    "cannot find card", libjack's "cannot connect to server"): their news reaches the
    user as the one line FluidSynth's log gives."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def audio_drivers() -> tuple[str, ...]:
    """The audio outputs to try, in order: ``$IMPROV_AUDIO_DRIVER`` alone if set, else
    the usual ones of the platform (a JACK server is used only when one runs)."""
    chosen = os.environ.get("IMPROV_AUDIO_DRIVER")
    if chosen:
        return (chosen,)
    if sys.platform == "darwin":
        return ("coreaudio",)
    if sys.platform.startswith("win"):
        return ("wasapi", "dsound")
    return ("pipewire", "pulseaudio", "alsa", "jack")


class Synth:
    """A FluidSynth with one SoundFont loaded and each part's instrument selected.

    Not thread-safe by itself: one thread plays into it (FluidSynth's audio thread,
    when started, renders under FluidSynth's own lock).
    """

    def __init__(
        self,
        soundfont: Path,
        *,
        sample_rate: int = SAMPLE_RATE,
        gain: float = GAIN,
        parts: Sequence[Part] = PARTS,
        settings: dict[str, int | float | str] | None = None,
    ) -> None:
        fluidsynth = _fluidsynth()
        self._fs = fluidsynth
        self.log = _FluidLog(fluidsynth)
        self.sample_rate = sample_rate
        self.soundfont = soundfont
        self.driver_name: str | None = None
        self._driver: Any = None
        self.synth = fluidsynth.Synth(gain=gain, samplerate=sample_rate, **(settings or {}))
        with _quiet_stderr():
            self.sfid = self.synth.sfload(str(soundfont))
        if self.sfid < 0:
            reason = self.log.take() or "FluidSynth could not load it"
            self.synth.delete()
            raise SynthUnavailable(f"SoundFont {soundfont}: {reason}")
        for part in parts:
            self.select(part.channel, part.program)

    def select(self, channel: int, program: int) -> None:
        """Give ``channel`` a General MIDI program (the drum kit on channel 10)."""
        bank = 128 if channel == DRUM_CHANNEL else 0
        self.synth.program_select(channel, self.sfid, bank, program)

    def start_audio(self, drivers: Sequence[str] | None = None) -> str:
        """Play through the first audio output that opens; its name. None opens: a
        :class:`SynthUnavailable` saying, in one line, what each said."""
        reasons = []
        os.environ.setdefault("JACK_NO_START_SERVER", "1")  # use a server, never start one
        for driver in drivers or audio_drivers():
            self.synth.setting("audio.driver", driver)
            with _quiet_stderr():
                handle = self._fs.new_fluid_audio_driver(self.synth.settings, self.synth.synth)
            if handle:
                self._driver, self.driver_name = handle, driver
                self.log.take()
                return driver
            reason = self.log.take()
            if "find the requested audio driver" not in reason:  # not built in: say nothing
                reasons.append(f"{driver}: {_short(reason) or 'cannot open'}")
        raise SynthUnavailable("no audio output (" + ("; ".join(reasons) or "none built in") + ")")

    def play(self, data: bytes) -> None:
        """Play one MIDI channel message (note, controller, program, pitch bend)."""
        if not data or data[0] < 0x80 or data[0] >= 0xF0:
            return
        kind, channel = data[0] & 0xF0, data[0] & 0x0F
        first = data[1] if len(data) > 1 else 0
        second = data[2] if len(data) > 2 else 0
        synth = self.synth
        if kind == 0x90 and second:
            synth.noteon(channel, first, second)
        elif kind in (0x80, 0x90):
            synth.noteoff(channel, first)
        elif kind == 0xB0:
            synth.cc(channel, first, second)
        elif kind == 0xC0:
            if channel == DRUM_CHANNEL:
                self.select(channel, first)
            else:
                synth.program_change(channel, first)
        elif kind == 0xE0:
            synth.pitch_bend(channel, (second << 7 | first) - 8192)

    def silence(self) -> None:
        """Every note on every channel off at once (panic)."""
        for channel in range(16):
            self.synth.all_sounds_off(channel)

    def samples(self, frames: int) -> np.ndarray:
        """The next ``frames`` of audio, rendered now: int16, shape (frames, 2)."""
        return self.synth.get_samples(frames).reshape(-1, 2)

    def close(self) -> None:
        if self._driver:
            self._fs.delete_fluid_audio_driver(self._driver)
            self._driver = None
        self.synth.delete()


def _short(reason: str) -> str:
    """FluidSynth's reason without its boilerplate: 'Failed to open the "default" audio
    device' -> 'cannot open the "default" device'."""
    for long, short in (
        ("Failed to open the", "cannot open the"),
        (" audio device", " device"),
        (
            "Failed to create PulseAudio connection, because pa_simple_new() failed with error: ",
            "no server: ",
        ),
        ("Failed to connect to Jack server.", "no JACK server running"),
    ):
        reason = reason.replace(long, short)
    return reason
