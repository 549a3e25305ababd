"""``improv plot``: a jam's record as a piano roll, calls and answers in two colours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from improv.cli import main
from improv.io.midi.files import Track, write_jam
from improv.music.chords import parse_chord
from improv.music.notes import ChordChange, Note
from improv.pianoroll import BAR_INCHES, COLOURS, DPI, ROW_INCHES, chorus_bars

BLUES = ("C7", "F7", "C7", "C7", "F7", "F7", "C7", "C7", "G7", "F7", "C7", "G7")


def _jam(path: Path, choruses: int = 2) -> Path:
    """Two choruses of a 12-bar blues, trading fours: calls loud, answers loud."""
    calls, answers = [], []
    for turn in range(3 * choruses):
        notes = [Note(60 + (i * 5) % 14, 127, turn * 16 + i, 0.9) for i in range(12)]
        (calls if turn % 2 == 0 else answers).extend(notes)
    chords = [
        ChordChange((12 * chorus + bar) * 4.0, symbol, parse_chord(symbol))
        for chorus in range(choruses)
        for bar, symbol in enumerate(BLUES)
    ]
    tracks = [Track("performer", calls, channel=0), Track("improv", answers, channel=1)]
    return write_jam(path, tracks, bpm=140.0, chords=chords)


def _rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])


def test_plot_draws_calls_and_answers_a_chorus_to_a_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    midi = _jam(tmp_path / "jam.mid")
    out = tmp_path / "pictures" / "jam.png"
    out.parent.mkdir()
    assert main(["plot", str(midi), "--out", str(out)]) == 0
    assert "piano roll written" in capsys.readouterr().err
    with Image.open(out) as image:
        assert image.format == "PNG"
        width, height = image.size
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    assert width == round((BAR_INCHES * 12 + 1.5) * DPI)  # 12 bars a row
    assert height == round((1.1 + ROW_INCHES * 2) * DPI)  # two choruses, two rows
    for colour in COLOURS[:2]:  # full velocity: the voice's own colour
        near = np.abs(pixels - _rgb(colour)).max(axis=1) <= 8
        assert near.sum() > 2000, colour
    assert not list(tmp_path.glob("pictures/.*.tmp"))


def test_plot_defaults_beside_the_midi_file(tmp_path: Path) -> None:
    midi = _jam(tmp_path / "take.mid", choruses=1)
    assert main(["plot", str(midi)]) == 0
    assert (tmp_path / "take.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "notes.mid"
    text.write_text("not MIDI\n")
    empty = write_jam(tmp_path / "empty.mid", [], bpm=120.0)
    for midi, words in ((text, "cannot read MIDI file"), (empty, "no notes to plot")):
        assert main(["plot", str(midi), "--out", str(tmp_path / "x.png")]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert err.startswith("error:") and words in err, err
    assert main(["plot", str(tmp_path / "missing.mid")]) == 2
    assert "no such file" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "x.png").exists()


def test_the_form_length_is_read_from_the_changes() -> None:
    def changes(symbols: list[str]) -> list[ChordChange]:
        return [ChordChange(4.0 * bar, s, None) for bar, s in enumerate(symbols)]

    assert chorus_bars(changes(list(BLUES) * 3), 4.0) == 12
    eight = ["C7", "A7", "D7", "G7", "C7", "F7", "C7", "G7"]
    assert chorus_bars(changes(eight * 2), 4.0) == 8
    assert chorus_bars(changes(["C7", "F7"]), 4.0) == 12  # too short to tell: a blues


def test_a_band_plays_behind_in_grey_and_drums_are_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from improv.pianoroll import BACKGROUND

    bass = [Note(64 + i % 3, 127, float(i), 0.9) for i in range(48)]  # in the voices' range
    drums = [Note(42 + i % 9, 127, float(i), 0.5) for i in range(48)]
    conversation = [
        Track("performer", [Note(60, 127, 0.0, 4.0)], channel=0),
        Track("improv", [Note(72, 127, 16.0, 4.0), Note(70, 127, 44.0, 4.0)], channel=1),
    ]  # as long as the band: the pictures are the same size

    def greys(tracks: list[Track], name: str) -> int:
        (tmp_path / name).mkdir()  # one file name: one title
        midi = write_jam(tmp_path / name / "jam.mid", tracks, bpm=140.0)
        out = tmp_path / name / "jam.png"
        assert main(["plot", str(midi), "--out", str(out)]) == 0
        with Image.open(out) as image:
            pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
        faint = (pixels[:, 0] >= 150) & (pixels[:, 0] <= 225)  # the band's grey, faded
        return int((faint & (np.ptp(pixels, axis=1) <= 3)).sum())

    alone = greys(conversation, "alone")
    assert greys([*conversation, Track("drums", drums, channel=9)], "drums") == alone
    assert greys([*conversation, Track("bass", bass, channel=2)], "bass") > alone + 2000
    assert _rgb(BACKGROUND).std() == 0  # a neutral grey: no voice's colour
    only_drums = write_jam(tmp_path / "d.mid", [Track("drums", drums, channel=9)], bpm=120)
    assert main(["plot", str(only_drums), "--out", str(tmp_path / "d.png")]) == 2
    assert "no notes to plot" in " ".join(capsys.readouterr().err.split())
