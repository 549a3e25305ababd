"""A performer's MIDI file is played as written: its tempo, metre, key, chords and
pickup, unless the command line says otherwise; an unplayable file is one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import mido
import pytest

from improv.cli import main
from improv.commands.jam import _file_settings
from improv.engine.config import JamConfig
from improv.engine.performer import calls_from_notes, read_performance
from improv.engine.session import performance_form
from improv.music.notes import Note

TPB = 480


def _file(path: Path, *, tempo: int = 400_000, smpte: bool = False) -> Path:
    """150 BPM, 3/4, Bb major, chords from bar 1, a pickup half a beat before it."""
    midi = mido.MidiFile(type=0, ticks_per_beat=TPB)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    events: list[tuple[int, mido.Message | mido.MetaMessage]] = [
        (0, mido.MetaMessage("set_tempo", tempo=tempo)),
        (0, mido.MetaMessage("time_signature", numerator=3, denominator=4)),
        (0, mido.MetaMessage("key_signature", key="Bb")),
    ]
    for bar, symbol in ((1, "Bb7"), (2, "Eb7"), (3, "Bb7"), (4, "F7")):
        events.append((bar * 3 * TPB, mido.MetaMessage("marker", text=symbol)))
    for index, start in enumerate([3 * TPB - TPB // 2] + [3 * TPB + i * TPB for i in range(8)]):
        pitch = 58 + (index * 2) % 12
        events.append((start, mido.Message("note_on", note=pitch, velocity=90)))
        events.append((start + TPB // 2, mido.Message("note_off", note=pitch)))
    tick = 0
    for at, message in sorted(events, key=lambda e: e[0]):
        track.append(message.copy(time=at - tick))
        tick = at
    midi.save(path)
    if smpte:
        data = bytearray(path.read_bytes())
        data[12:14] = bytes((0xE7, 40))  # 25 frames per second, 40 ticks per frame
        path.write_bytes(bytes(data))
    return path


def test_the_file_says_tempo_metre_key_chords_and_pickup(tmp_path: Path) -> None:
    performance = read_performance(_file(tmp_path / "take.mid"))
    assert performance.tempo == pytest.approx(150.0)
    assert str(performance.metre) == "3/4" and performance.key.name == "Bb"
    assert performance.form is not None
    assert [bar[0][1] for bar in performance.form.bars] == ["Bb7", "Eb7", "Bb7", "F7"]
    assert performance.notes[0].onset == pytest.approx(-0.5)  # the pickup into bar 0
    assert performance.notes[1].onset == pytest.approx(0.0)


def test_the_command_line_wins_over_the_file(tmp_path: Path) -> None:
    performance = read_performance(_file(tmp_path / "take.mid"))
    given = {"tempo": None, "metre": None, "key": None}
    assert _file_settings(given, performance) == {"tempo": 150.0, "metre": "3/4", "key": "Bb"}
    assert _file_settings({**given, "tempo": 200.0}, performance)["tempo"] == 200.0
    form = performance_form(JamConfig(key="C", metre="3/4"), performance, form_given=False)
    assert [bar[0][1] for bar in form.bars] == ["C7", "F7", "C7", "G7"]  # --key C
    given = performance_form(JamConfig(metre="3/4"), performance, form_given=True)
    assert given.n_bars == 12  # --form blues


def test_a_pickup_belongs_to_the_call_it_leads_into() -> None:
    notes = [Note(60, 90, -0.5, 0.4), Note(62, 90, 1.0, 0.4), Note(64, 90, 7.6, 0.3)]
    calls = calls_from_notes(notes, 1, 4.0, "take", pickup_beats=0.5)
    onsets = [[round(n.onset, 6) for n in c.notes] for c in calls]
    assert onsets == [[-0.5, 1.0], [-0.4]]


def test_the_jam_plays_at_the_files_tempo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _file(tmp_path / "take.mid")
    code = main(
        [
            *("jam", "--performer", str(path), "--bars", "2", "--choruses", "1"),
            *("--model", "rules", "--seed", "1", "--json"),
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["tempo"] == pytest.approx(150.0)
    assert summary["notes_in"] > 0


@pytest.mark.parametrize("bad", ["tempo0", "smpte"])
def test_an_unplayable_file_is_one_line_and_exit_2(
    bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / f"{bad}.mid"
    _file(path, tempo=0 if bad == "tempo0" else 400_000, smpte=bad == "smpte")
    assert main(["jam", "--performer", str(path), "--model", "rules"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(path) in err.replace("\n", "")
    assert ("tempo 0" if bad == "tempo0" else "SMPTE") in " ".join(err.split())
