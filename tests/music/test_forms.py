"""Blues forms: data, transposition, chord at (bar, beat), changes, forms from markers,
and the blues detector."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from improv.music.chords import ChordSymbolError, parse_chord
from improv.music.forms import (
    FORM_NAMES,
    Form,
    form_from_changes,
    get_form,
    is_blues,
    match_blues,
)
from improv.music.notes import ChordChange
from improv.music.pitch import Key
from improv.music.time import Metre

WJAZZD = Path(__file__).parents[2] / "data" / "wjazzd"


def _symbols(form: Form) -> list[str]:
    return [" ".join(s for _, s in bar) for bar in form.bars]


def test_jazz_blues_in_f() -> None:
    form = get_form("jazz-blues", "F")
    assert _symbols(form) == [
        "F7", "Bb7", "F7", "C-7 F7", "Bb7", "Bo7", "F7", "D7", "G-7", "C7", "F7 D7", "G-7 C7",
    ]  # fmt: skip
    assert form.n_bars == 12
    assert form.beats == 48
    assert form.key_name == "F"


@pytest.mark.parametrize("name", FORM_NAMES)
@pytest.mark.parametrize("tonic", range(12))
def test_every_form_is_a_blues_in_its_key(name: str, tonic: int) -> None:
    form = get_form(name, tonic)
    match = match_blues(form)
    assert match is not None
    assert match.tonic == tonic
    assert match.bars == form.n_bars
    first = form.chord_at(0)
    assert first is not None and first.root == tonic


def test_form_names_and_aliases() -> None:
    assert set(FORM_NAMES) == {"blues", "quick-change", "jazz-blues", "minor-blues", "8-bar"}
    assert get_form("Quick Change", 0).chord_at(1) == parse_chord("F7")
    assert get_form("basic", 0).chord_at(1) == parse_chord("C7")
    assert get_form("minor", Key.parse("Cm")).chord_at(4) == parse_chord("F-7")
    assert get_form("8-bar", 0).n_bars == 8
    with pytest.raises(ValueError, match="unknown form 'rhythm'"):
        get_form("rhythm")


def test_chord_at_beats_and_wraparound() -> None:
    form = get_form("jazz-blues", 0)
    assert form.chord_at(3, 0) == parse_chord("G-7")
    assert form.chord_at(3, 1.5) == parse_chord("G-7")
    assert form.chord_at(3, 2) == parse_chord("C7")
    assert form.chord_at(3, 3.9) == parse_chord("C7")
    assert form.chord_at(3, 4) == parse_chord("F7")  # beats carry into the next bar
    assert form.chord_at(12) == form.chord_at(0)
    assert form.chord_at(12 * 5 + 5) == parse_chord("F#o7")
    assert form.chord_at(-1, 2) == parse_chord("G7")
    assert form.chord_at_beats(4 * 10 + 2) == parse_chord("A7")


def test_empty_bar_continues_the_chord() -> None:
    form = Form.parse("t", "| C7 | | F7 G7 | |")
    assert form.chord_at(1, 3) == parse_chord("C7")
    assert form.chord_at(3, 0) == parse_chord("G7")
    assert form.symbol_at(4) == "C7"
    assert str(form) == "| C7 | % | F7 G7 | % |"


def test_form_parse_splits_bars_evenly_and_in_other_metres() -> None:
    form = Form.parse("waltz", "| C-7 F7 G7 | Bb |", Metre(3, 4))
    assert form.bars[0] == ((0.0, "C-7"), (1.0, "F7"), (2.0, "G7"))
    assert form.chord_at(1, 2.5) == parse_chord("Bb")


@pytest.mark.parametrize("semitones", [-13, -1, 0, 5, 11, 24])
def test_transposition_moves_every_chord(semitones: int) -> None:
    form = get_form("jazz-blues", 0)
    moved = form.transposed(semitones)
    assert moved.key == semitones % 12
    for bar in range(12):
        for beat in (0.0, 2.0):
            a, b = form.chord_at(bar, beat), moved.chord_at(bar, beat)
            assert a is not None and b is not None
            assert b.root == (a.root + semitones) % 12
            assert b.quality == a.quality


def test_in_key_spells_as_the_key_does() -> None:
    assert get_form("blues", "E").chord_at(4).symbol == "A7"  # type: ignore[union-attr]
    assert get_form("blues", "F#").chord_at(8).symbol == "C#7"  # type: ignore[union-attr]
    assert get_form("blues", "Gb").chord_at(8).symbol == "C#7"  # type: ignore[union-attr]
    assert get_form("blues", "Db").chord_at(8).symbol == "Ab7"  # type: ignore[union-attr]


def test_changes_over_choruses() -> None:
    form = get_form("blues", 0)
    changes = form.changes(2)
    assert [(c.onset, c.symbol) for c in changes[:5]] == [
        (0.0, "C7"), (16.0, "F7"), (24.0, "C7"), (32.0, "G7"), (36.0, "F7"),
    ]  # fmt: skip
    assert changes[-1].onset == 48 + 44
    assert all(a.symbol != b.symbol for a, b in itertools.pairwise(changes))
    assert all(c.chord == parse_chord(c.symbol) for c in changes)
    shifted = form.changes(1, start_bar=1)
    assert shifted[0].onset == 4.0


@given(st.sampled_from(FORM_NAMES), st.integers(0, 11), st.integers(0, 3))
def test_form_from_its_own_changes_round_trips(name: str, tonic: int, pickup: int) -> None:
    form = get_form(name, tonic)
    changes = form.changes(2, start_bar=pickup)
    rebuilt = form_from_changes(changes, form.metre, start_bar=pickup)
    assert rebuilt.n_bars == 2 * form.n_bars
    for bar in range(rebuilt.n_bars):
        for beat in (0.0, 1.0, 2.0, 3.5):
            assert rebuilt.chord_at(bar, beat) == form.chord_at(bar, beat)
    one = form_from_changes(changes, form.metre, form.n_bars, start_bar=pickup)
    assert one.n_bars == form.n_bars
    assert is_blues(one)


def test_form_from_changes_bars_start_with_the_chord_in_force() -> None:
    changes = [
        ChordChange(4.0, "Eb7", parse_chord("Eb7")),
        ChordChange(8.0, "Ab7", parse_chord("Ab7")),
        ChordChange(14.0, "Eb7", parse_chord("Eb7")),
        ChordChange(14.0, "Bb7", parse_chord("Bb7")),  # two markers at once: the later holds
        ChordChange(22.0, "NC", None),
    ]
    form = form_from_changes(changes, Metre())
    assert form.bars == (
        (),
        ((0.0, "Eb7"),),
        ((0.0, "Ab7"),),
        ((0.0, "Ab7"), (2.0, "Bb7")),
        ((0.0, "Bb7"),),
        ((0.0, "Bb7"), (2.0, "NC")),
    )
    assert form.chord_at(5, 3) is None
    assert form.chord_at(6) is None  # wraps to the empty pickup bar, which continues NC
    with pytest.raises(ValueError, match="no chord changes"):
        form_from_changes([], Metre())


def test_bad_forms_are_refused() -> None:
    with pytest.raises(ChordSymbolError, match="'Q7'"):
        Form.parse("bad", "| C7 | Q7 |")
    with pytest.raises(ValueError, match="no chords"):
        Form.parse("empty", "| | |")
    with pytest.raises(ValueError, match="bad beats"):
        Form("x", Metre(), (((0.0, "C7"), (4.0, "F7")),))


def test_blues_detector_with_pickup_and_short_last_chorus() -> None:
    form = get_form("quick-change", "Bb")
    text = "| NC | " + " | ".join(_symbols(form) * 3)[: -len(" | Bb7 | F7")] + " |"
    long = Form.parse("solo", text)
    match = match_blues(long)
    assert match is not None
    assert (match.bars, match.tonic, match.offset) == (12, 10, 1)


@pytest.mark.parametrize(
    "changes",
    [
        # rhythm changes A sections and a bridge
        "| Bb G-7 | C-7 F7 | Bb G-7 | C-7 F7 | Bb Bb7 | Eb Eo7 | Bb F7 | Bb | " * 2
        + "| D7 | D7 | G7 | G7 | C7 | C7 | F7 | F7 |",
        # a modal vamp
        "| D-7 | D-7 | D-7 | D-7 | D-7 | D-7 | D-7 | D-7 | Eb-7 | Eb-7 | D-7 | D-7 |",
        # a ii-V-I standard
        "| D-7 | G7 | Cj7 | Cj7 | C-7 | F7 | Bbj7 | Bbj7 | Eb-7 | Ab7 | Dbj7 | Dbj7 |",
    ],
)
def test_non_blues_are_not_blues(changes: str) -> None:
    assert not is_blues(Form.parse("tune", changes.replace("| |", "|")))


def test_half_speed_blues() -> None:
    doubled = [s for symbol in _symbols(get_form("blues", 3)) for s in (symbol, symbol)]
    slow = Form.parse("slow", " | ".join(doubled))
    assert slow.n_bars == 24
    match = match_blues(slow)
    assert match is not None and match.bars == 24 and match.tonic == 3


@pytest.mark.wjazzd
@pytest.mark.skipif(not WJAZZD.is_dir(), reason="data/wjazzd not present")
def test_detector_agrees_with_wjazzd_annotations() -> None:
    import csv

    import mido

    agree = total = false_positives = 0
    with open(WJAZZD / "solos.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        ticks, changes, metre = 0, [], Metre()
        for message in mido.MidiFile(WJAZZD / row["file"]).tracks[0]:
            ticks += message.time
            if message.type == "marker":
                changes.append(ChordChange(ticks / 480, message.text, parse_chord(message.text)))
            elif message.type == "time_signature":
                metre = Metre(message.numerator, message.denominator)
        detected = bool(changes) and is_blues(form_from_changes(changes, metre))
        truth = row["blues"] == "True"
        total += 1
        agree += detected == truth
        false_positives += detected and not truth
    assert agree / total > 0.9
    assert false_positives <= 5
