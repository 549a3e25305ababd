"""``improv render``: a jam's record through the real FluidSynth and the system's GM SoundFont.

The audio must sound where notes sound, be silent where none do, and start each note
within one FluidSynth block (64 frames) of its MIDI time once the instrument's own
attack (measured from a block boundary, the same way) is taken off. Bad input (no
SoundFont, a corrupt one, a file that is not MIDI) is one line and exit 2.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from improv.cli import main
from improv.errors import UsageError
from improv.io.midi.files import Track, write_jam
from improv.io.synth import IMPROV, PERFORMER, Synth, SynthUnavailable, find_soundfont
from improv.io.synth.render import FLUID_BLOCK, render_midi
from improv.music.notes import Note

try:
    SOUNDFONT = find_soundfont()
except SynthUnavailable:  # pragma: no cover - the set-up installs one
    SOUNDFONT = None
needs_soundfont = pytest.mark.skipif(SOUNDFONT is None, reason="no GM SoundFont installed")

BPM = 120.0  # a beat is half a second
DITHER = 3  # FluidSynth's 16-bit output dithers silence to +-1
PERFORMER_NOTES = (Note(60, 100, 2.0, 0.5), Note(64, 90, 10.0, 0.5))  # at 1.0 s and 5.0 s
IMPROV_NOTES = (Note(67, 100, 5.3, 0.5),)  # at 2.65 s, between two blocks


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as wav:
        frames = wav.readframes(wav.getnframes())
        level = np.abs(np.frombuffer(frames, np.int16).reshape(-1, 2)).max(axis=1)
        return level, wav.getframerate()


def _attack(part_channel: int, pitch: int, velocity: int) -> int:
    """Frames from a note-on on a block boundary to its first audible sample."""
    synth = Synth(SOUNDFONT)  # type: ignore[arg-type]
    try:
        synth.samples(FLUID_BLOCK * 100)
        synth.play(bytes((0x90 | part_channel, pitch, velocity)))
        level = np.abs(synth.samples(4096)).max(axis=1)
    finally:
        synth.close()
    return int(np.flatnonzero(level > DITHER)[0])


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, int, float]:
    folder = tmp_path_factory.mktemp("render")
    midi = write_jam(
        folder / "jam.mid",
        [
            Track("performer", PERFORMER_NOTES, channel=PERFORMER.channel),
            Track("improv", IMPROV_NOTES, channel=IMPROV.channel),
        ],
        bpm=BPM,
    )
    done = render_midi(midi, folder / "jam.wav", SOUNDFONT)  # type: ignore[arg-type]
    level, rate = _read_wav(done.path)
    return level, rate, done.seconds


@needs_soundfont
def test_sound_where_notes_sound_and_silence_where_none(
    rendered: tuple[np.ndarray, int, float],
) -> None:
    level, rate, seconds = rendered
    assert len(level) == pytest.approx(seconds * rate, abs=FLUID_BLOCK)
    assert seconds == pytest.approx(5.25 + 2.0, abs=0.01)  # the last note-off and the tail

    def loudest(start: float, end: float) -> int:
        return int(level[int(start * rate) : int(end * rate)].max())

    assert loudest(0.0, 0.99) <= DITHER  # before the first note
    assert loudest(4.2, 4.99) <= DITHER  # between the answer's release and the next call
    for start in (1.0, 2.65, 5.0):
        assert loudest(start + 0.01, start + 0.25) > 1000


@needs_soundfont
@pytest.mark.parametrize(
    ("seconds", "channel", "note"),
    [(1.0, 0, PERFORMER_NOTES[0]), (2.65, 1, IMPROV_NOTES[0]), (5.0, 0, PERFORMER_NOTES[1])],
)
def test_onsets_within_one_block_of_the_midi_times(
    rendered: tuple[np.ndarray, int, float], seconds: float, channel: int, note: Note
) -> None:
    level, rate, _ = rendered
    due = round(seconds * rate)
    window = level[due - 4 * FLUID_BLOCK : due + 20 * FLUID_BLOCK]
    onset = due - 4 * FLUID_BLOCK + int(np.flatnonzero(window > DITHER)[0])
    lag = onset - due - _attack(channel, note.pitch, note.velocity)
    assert abs(lag) < FLUID_BLOCK  # played at the nearest block boundary


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], *words: str) -> None:
    assert main(argv) == 2
    text = " ".join(capsys.readouterr().err.split())
    assert text.startswith("error:") and "Traceback" not in text, text
    for word in words:
        assert word in text


@needs_soundfont
def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    midi = write_jam(tmp_path / "jam.mid", [Track("performer", PERFORMER_NOTES)], bpm=BPM)
    corrupt = tmp_path / "corrupt.sf2"
    corrupt.write_bytes(b"RIFF\x00\x10\x00\x00sfbkLIST" + bytes(64))
    not_midi = tmp_path / "notes.mid"
    not_midi.write_text("not a MIDI file\n")
    out = str(tmp_path / "out.wav")
    render = ["render", str(midi), "--out", out, "--soundfont"]
    _one_line_error(capsys, [*render, str(corrupt)], "SoundFont", str(corrupt))
    _one_line_error(capsys, [*render, str(midi)], "not a SoundFont")
    _one_line_error(capsys, ["render", str(not_midi), "--out", out], "cannot read MIDI file")
    assert not Path(out).exists()


def test_a_missing_soundfont_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMPROV_SOUNDFONT", "/nonexistent/gm.sf2")
    with pytest.raises(UsageError, match=r"IMPROV_SOUNDFONT /nonexistent/gm\.sf2: no such file"):
        find_soundfont()
    monkeypatch.delenv("IMPROV_SOUNDFONT")
    monkeypatch.setattr("improv.io.synth.SOUNDFONT_SEARCH", ())
    with pytest.raises(SynthUnavailable, match="no General MIDI SoundFont found"):
        find_soundfont()
