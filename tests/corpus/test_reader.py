"""The MIDI reader: formats, resolutions, chord meta types, pickup bar, plain MIDI."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from improv.corpus.index import SoloIndex
from improv.corpus.reader import MidiReadError, read_midi
from improv.corpus.synthetic import generate_solo, make_tune
from improv.corpus.writer import write_solo
from improv.music.time import TICKS_PER_BEAT, Metre
from tests.fixtures.data import midi_file, save

BLUES_LINE = [(0.0, 0.5, 60, 90), (0.5, 0.5, 63, 80), (1.0, 1.0, 65, 100), (4.0, 2.0, 67, 70)]
CHANGES = [(0.0, "C7"), (4.0, "F7"), (8.0, "C7")]


@pytest.mark.parametrize("midi_type", [0, 1])
@pytest.mark.parametrize("chord_meta", ["marker", "text", "cue_marker"])
def test_reads_notes_and_chords_of_type_0_and_1(
    tmp_path: Path, midi_type: int, chord_meta: str
) -> None:
    path = save(
        midi_file(BLUES_LINE, CHANGES, midi_type=midi_type, chord_meta=chord_meta, key="C"),
        tmp_path / "line.mid",
    )
    solo = read_midi(path)
    assert [(n.onset, n.duration, n.pitch, n.velocity) for n in solo.notes] == BLUES_LINE
    assert [(c.onset, c.symbol) for c in solo.chords] == CHANGES
    assert solo.chords[1].chord is not None and solo.chords[1].chord.root == 5
    assert (solo.key, solo.mode, solo.metre) == (0, "major", Metre(4, 4))


@pytest.mark.parametrize("ticks_per_beat", [96, 384, 1000, 1024])
def test_any_resolution_lands_on_the_twelve_tick_grid(tmp_path: Path, ticks_per_beat: int) -> None:
    notes = [
        (0.0, 0.25, 60, 90),
        (1 / 3, 1 / 3, 62, 90),
        (2 / 3, 1 / 3, 64, 90),
        (1.5, 0.5, 65, 90),
    ]
    path = save(midi_file(notes, ticks_per_beat=ticks_per_beat), tmp_path / "grid.mid")
    solo = read_midi(path)
    for note in solo.notes:
        assert (note.onset * TICKS_PER_BEAT).is_integer()
        assert (note.duration * TICKS_PER_BEAT).is_integer()
    assert [round(n.onset * 12) for n in solo.notes] == [0, 4, 8, 18]
    assert [round(n.duration * 12) for n in solo.notes] == [3, 4, 4, 6]


def test_metre_tempo_key_and_name_come_from_meta_events(tmp_path: Path) -> None:
    path = save(
        midi_file(BLUES_LINE, [(0.0, "G-7")], metre=(3, 4), key="Gm", bpm=150.0, name="Waltz"),
        tmp_path / "w.mid",
    )
    solo = read_midi(path)
    assert solo.metre == Metre(3, 4)
    assert solo.tempo_bpm == pytest.approx(150.0, abs=0.01)
    assert (solo.key, solo.mode) == (7, "minor")
    assert solo.title == "Waltz"
    named = save(midi_file(BLUES_LINE, name="Kid Ory - Gut Bucket Blues (1)"), tmp_path / "n.mid")
    assert (read_midi(named).performer, read_midi(named).title) == ("Kid Ory", "Gut Bucket Blues")


def test_key_is_inferred_from_the_chords_without_a_key_signature(tmp_path: Path) -> None:
    changes = [(0.0, "Bb7"), (4.0, "Eb7"), (8.0, "Bb7"), (16.0, "F7"), (20.0, "Eb7"), (24.0, "Bb7")]
    solo = read_midi(save(midi_file(BLUES_LINE, changes), tmp_path / "k.mid"))
    assert (solo.key, solo.mode) == (10, "major")


def test_solos_csv_in_the_parent_folder_gives_title_form_and_pickup(tmp_path: Path) -> None:
    # WJazzD layout: bar 0 is the pickup, bar 1 (tick 4 * 480) starts the form.
    pickup = [(3.0, 0.5, 67, 90), (3.5, 0.5, 69, 90), (4.0, 1.0, 70, 90), (40.0, 1.0, 72, 90)]
    save(midi_file(pickup, [(0.0, "NC"), (4.0, "Bbj7")], key="Bb"), tmp_path / "solos" / "a.mid")
    (tmp_path / "solos.csv").write_text(
        "file,performer,title,instrument,key,form,blues\n"
        'solos/a.mid,Some Player,Some Tune,ts,Bb-maj,"(A1,4), (B1,4)",False\n'
    )
    path = tmp_path / "solos" / "a.mid"
    solo = read_midi(path, info=SoloIndex().lookup(path))
    assert (solo.title, solo.performer, solo.instrument, solo.blues) == (
        "Some Tune",
        "Some Player",
        "ts",
        False,
    )
    assert solo.first_bar == 1
    assert solo.notes[0].onset == 3.0  # the pickup stays in bar 0
    assert solo.sections == (("A1", 1, 4), ("B1", 5, 4), ("A1", 9, 4), ("B1", 13, 4))
    assert solo.chords[0].chord is None  # NC


def test_plain_midi_gets_the_named_form_and_key(tmp_path: Path) -> None:
    notes = [(float(beat), 0.5, 65, 90) for beat in range(0, 96, 2)]  # two choruses
    path = save(midi_file(notes, metre=None, bpm=None), tmp_path / "plain.mid")
    solo = read_midi(path, key="F", form="blues")
    assert (solo.key, solo.blues, solo.first_bar) == (5, True, 0)
    symbols = [(c.onset, c.symbol) for c in solo.chords]
    assert symbols[:3] == [(0.0, "F7"), (16.0, "Bb7"), (24.0, "F7")]
    assert (48.0, "F7") in symbols  # second chorus
    assert solo.sections == (("A", 0, 12), ("A", 12, 12))


def test_plain_midi_without_form_has_no_chords_and_a_key_from_its_notes(tmp_path: Path) -> None:
    scale = [60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60]
    path = save(midi_file([(i, 1.0, p, 80) for i, p in enumerate(scale)]), tmp_path / "p.mid")
    solo = read_midi(path)
    assert solo.chords == ()
    assert (solo.key, solo.mode, solo.blues) == (0, "major", False)


def test_overlaps_are_trimmed_restruck_notes_kept_and_drums_ignored(tmp_path: Path) -> None:
    legato = [(0.0, 0.55, 60, 90), (0.5, 0.5, 62, 90), (1.0, 3.0, 64, 90), (2.0, 1.0, 67, 90)]
    path = save(midi_file(legato), tmp_path / "legato.mid")
    solo = read_midi(path)
    assert [n.duration for n in solo.notes[:2]] == [0.5, 0.5]  # 0.05 beats of legato trimmed
    assert solo.notes[2].duration == 3.0  # a real overlap (a held note) stays
    drums = save(midi_file(legato, channel=9), tmp_path / "drums.mid")
    assert read_midi(drums).notes == ()


def test_unknown_marker_is_skipped_with_a_warning_and_text_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = save(midi_file(BLUES_LINE, [(0.0, "C7"), (2.0, "Qzz")]), tmp_path / "odd.mid")
    with caplog.at_level(logging.WARNING):
        solo = read_midi(path)
    assert [c.symbol for c in solo.chords] == ["C7"]
    assert "Qzz" in caplog.text and "odd.mid" in caplog.text
    text = save(
        midi_file(BLUES_LINE, [(0.0, "C7"), (1.0, "made with a sequencer")], chord_meta="text"),
        tmp_path / "text.mid",
    )
    assert [c.symbol for c in read_midi(text).chords] == ["C7"]


def test_corrupt_file_raises_an_error_naming_it(tmp_path: Path) -> None:
    good = save(midi_file(BLUES_LINE, CHANGES), tmp_path / "good.mid")
    broken = tmp_path / "broken.mid"
    broken.write_bytes(good.read_bytes()[:40])
    with pytest.raises(MidiReadError, match=r"broken\.mid"):
        read_midi(broken)


@pytest.mark.parametrize(("midi_type", "chord_meta"), [(0, "marker"), (1, "cue_marker")])
def test_writer_and_reader_round_trip_a_generated_solo(
    tmp_path: Path, midi_type: int, chord_meta: str
) -> None:
    import random

    solo = generate_solo(make_tune(0, random.Random(3)), seed=11)
    path = write_solo(solo, tmp_path / "s.mid", midi_type=midi_type, chord_meta=chord_meta)
    back = read_midi(path)
    assert back.notes == solo.notes
    assert [(c.onset, c.symbol) for c in back.chords] == [(c.onset, c.symbol) for c in solo.chords]
    assert (back.key, back.mode, back.metre) == (solo.key, solo.mode, solo.metre)
