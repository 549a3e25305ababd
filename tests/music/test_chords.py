"""Chord symbols: WJazzD syntax, lead-sheet spellings, errors, scales, transposition."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from improv.music.chords import (
    QUALITIES,
    Chord,
    ChordSymbolError,
    QualityClass,
    chord_scale,
    parse_chord,
    transpose_symbol,
)

WJAZZD = Path(__file__).parents[2] / "data" / "wjazzd"

# A fixed sample of the corpus's symbols, covering every syntax feature it uses.
WJAZZD_SAMPLE = [
    "A",
    "A#79b",
    "A+7",
    "A+79#",
    "A-",
    "A-/G",
    "A-6",
    "A-7",
    "A-7/D",
    "A-79",
    "A-7911",
    "A/C",
    "A69",
    "A7913b",
    "A79b13",
    "A7alt",
    "Ab+j7/C",
    "Ab-6/Eb",
    "Ab7911#",
    "Abm7b5",
    "Abo",
    "Abo7",
    "Absus",
    "Absus7",
    "Bb-7913",
    "Bb79#13",
    "Bb79b13b",
    "Bbsus79",
    "Bj7/A#",
    "C#sus79",
    "C-69",
    "C-j7911#",
    "C-j7913",
    "Cb7",
    "Cbj7",
    "Cj7911#",
    "Csus7913",
    "D79#11#",
    "Db+/C",
    "Db-69/Db",
    "Db-69/Ab",
    "Dbj7911#/C",
    "E6911#",
    "Ebj79#11#",
    "Ej79#",
    "Eo7",
    "Esus7/A",
    "F#-",
    "F#m7b5",
    "F+7911#",
    "F+j7",
    "F-j7",
    "F79b13b",
    "Fb-7",
    "G+79",
    "G-79b",
    "G79b/B",
    "Gsus/A",
    "Gbsus7913",
    "NC",
]

Q = QualityClass
# symbol -> (root, quality, quality class, chord tones, tensions, bass)
EXPECTED: dict[str, tuple[int, str, QualityClass, tuple[int, ...], tuple[int, ...], int | None]] = {
    "C": (0, "maj", Q.MAJOR, (0, 4, 7), (), None),
    "A-7/D": (9, "m7", Q.MINOR, (9, 0, 4, 7), (), 2),
    "A#79b": (10, "7", Q.DOMINANT, (10, 2, 5, 8), (11,), None),
    "A79b13": (9, "7", Q.DOMINANT, (9, 1, 4, 7), (10, 6), None),
    "F79b13b": (5, "7", Q.DOMINANT, (5, 9, 0, 3), (6, 1), None),
    "A7913b": (9, "7", Q.DOMINANT, (9, 1, 4, 7), (11, 5), None),
    "Cj7911#": (0, "maj7", Q.MAJOR, (0, 4, 7, 11), (2, 6), None),
    "Abm7b5": (8, "m7b5", Q.HALF_DIMINISHED, (8, 11, 2, 6), (), None),
    "Eo7": (4, "dim7", Q.DIMINISHED, (4, 7, 10, 1), (), None),
    "Abo": (8, "dim", Q.DIMINISHED, (8, 11, 2), (), None),
    "Ab+j7/C": (8, "augmaj7", Q.AUGMENTED, (8, 0, 4, 7), (), 0),
    "A+7": (9, "aug7", Q.DOMINANT, (9, 1, 5, 7), (), None),
    "Absus7": (8, "7sus", Q.SUSPENDED, (8, 1, 3, 6), (), None),
    "Absus": (8, "sus", Q.SUSPENDED, (8, 1, 3), (), None),
    "A7alt": (9, "7alt", Q.DOMINANT, (9, 1, 7), (10, 0, 3, 5), None),
    "C-69": (0, "m6", Q.MINOR, (0, 3, 7, 9), (2,), None),
    "F-j7": (5, "mmaj7", Q.MINOR, (5, 8, 0, 4), (), None),
    "E6911#": (4, "6", Q.MAJOR, (4, 8, 11, 1), (6, 10), None),
    "Cb7": (11, "7", Q.DOMINANT, (11, 3, 6, 9), (), None),
    "Fb-7": (4, "m7", Q.MINOR, (4, 7, 11, 2), (), None),
    "D79#11#": (2, "7", Q.DOMINANT, (2, 6, 9, 0), (5, 8), None),
    "Bj7/A#": (11, "maj7", Q.MAJOR, (11, 3, 6, 10), (), 10),
}


@pytest.mark.parametrize("symbol", WJAZZD_SAMPLE)
def test_wjazzd_sample_parses(symbol: str) -> None:
    chord = parse_chord(symbol)
    if symbol == "NC":
        assert chord is None
        return
    assert chord is not None
    assert chord.symbol == symbol
    assert chord.root == chord.tones[0]
    assert chord.quality in QUALITIES
    assert not set(chord.tensions) & set(chord.tones)
    assert set(chord.tones) <= chord_scale(chord).pitch_classes


@pytest.mark.parametrize("symbol", sorted(EXPECTED))
def test_wjazzd_expected(symbol: str) -> None:
    chord = parse_chord(symbol)
    assert chord is not None
    root, quality, qclass, tones, tensions, bass = EXPECTED[symbol]
    assert (chord.root, chord.quality, chord.quality_class) == (root, quality, qclass)
    assert chord.tones == tones
    assert chord.tensions == tensions
    assert chord.bass == bass


def _corpus_symbols() -> set[str]:
    import mido

    symbols: set[str] = set()
    for path in sorted((WJAZZD / "solos").glob("*.mid")):
        for track in mido.MidiFile(path).tracks:
            symbols.update(m.text for m in track if m.type == "marker")
    return symbols


@pytest.mark.wjazzd
@pytest.mark.skipif(not WJAZZD.is_dir(), reason="data/wjazzd not present")
def test_every_wjazzd_symbol_parses() -> None:
    symbols = _corpus_symbols()
    assert len(symbols) == 416
    for symbol in symbols:
        chord = parse_chord(symbol)
        assert (chord is None) == (symbol == "NC"), symbol
        if chord is not None:
            assert set(chord.tones) <= chord_scale(chord).pitch_classes, symbol


LEAD_SHEET = {
    "C7": ("7", (0, 4, 7, 10), ()),
    "Cmaj7": ("maj7", (0, 4, 7, 11), ()),
    "CM7": ("maj7", (0, 4, 7, 11), ()),
    "CΔ7": ("maj7", (0, 4, 7, 11), ()),
    "CΔ": ("maj7", (0, 4, 7, 11), ()),
    "Cmaj": ("maj", (0, 4, 7), ()),
    "Cm7": ("m7", (0, 3, 7, 10), ()),
    "Cmin7": ("m7", (0, 3, 7, 10), ()),
    "Cmi7": ("m7", (0, 3, 7, 10), ()),
    "C-7": ("m7", (0, 3, 7, 10), ()),
    "Cø": ("m7b5", (0, 3, 6, 10), ()),
    "Cø7": ("m7b5", (0, 3, 6, 10), ()),
    "Cm7(b5)": ("m7b5", (0, 3, 6, 10), ()),
    "Cdim": ("dim", (0, 3, 6), ()),
    "Cdim7": ("dim7", (0, 3, 6, 9), ()),
    "C°7": ("dim7", (0, 3, 6, 9), ()),
    "Caug": ("aug", (0, 4, 8), ()),
    "C+": ("aug", (0, 4, 8), ()),
    "C7#5": ("aug7", (0, 4, 8, 10), ()),
    "C7+": ("aug7", (0, 4, 8, 10), ()),
    "Cmaj7#5": ("augmaj7", (0, 4, 8, 11), ()),
    "Cm(maj7)": ("mmaj7", (0, 3, 7, 11), ()),
    "CmM7": ("mmaj7", (0, 3, 7, 11), ()),
    "C7(b9)": ("7", (0, 4, 7, 10), (1,)),
    "C7b9#11": ("7", (0, 4, 7, 10), (1, 6)),
    "C7(b9,#11)": ("7", (0, 4, 7, 10), (1, 6)),
    "C7(9,b13)": ("7", (0, 4, 7, 10), (2, 8)),
    "C7♭9": ("7", (0, 4, 7, 10), (1,)),
    "C7b5": ("7", (0, 4, 6, 10), ()),
    "Cm6": ("m6", (0, 3, 7, 9), ()),
    "C6/9": ("6", (0, 4, 7, 9), (2,)),
    "Cm6/9": ("m6", (0, 3, 7, 9), (2,)),
    "Csus4": ("sus", (0, 5, 7), ()),
    "Csus2": ("sus2", (0, 2, 7), ()),
    "C7sus4": ("7sus", (0, 5, 7, 10), ()),
    "C9sus4": ("7sus", (0, 5, 7, 10), (2,)),
    "C9": ("7", (0, 4, 7, 10), (2,)),
    "C11": ("7", (0, 4, 7, 10), (2, 5)),
    "C13": ("7", (0, 4, 7, 10), (2, 9)),
    "C13b9": ("7", (0, 4, 7, 10), (1, 9)),
    "Cmaj9": ("maj7", (0, 4, 7, 11), (2,)),
    "Cm9": ("m7", (0, 3, 7, 10), (2,)),
    "Cm11": ("m7", (0, 3, 7, 10), (2, 5)),
    "Calt": ("7alt", (0, 4, 10), (1, 3, 6, 8)),
    "Cadd9": ("maj", (0, 4, 7), (2,)),
    "Cmadd9": ("m", (0, 3, 7), (2,)),
}


@pytest.mark.parametrize("symbol", sorted(LEAD_SHEET))
def test_lead_sheet_spellings(symbol: str) -> None:
    chord = parse_chord(symbol)
    assert chord is not None
    assert (chord.quality, chord.intervals, chord.tensions) == LEAD_SHEET[symbol]


def test_lead_sheet_root_and_tension_spelling() -> None:
    chord = parse_chord("Bb7#9")
    assert chord is not None
    assert (chord.root, chord.quality, chord.tensions) == (10, "7", (1,))


@pytest.mark.parametrize("symbol", ["NC", "N.C.", " NC "])
def test_no_chord(symbol: str) -> None:
    assert parse_chord(symbol) is None


@pytest.mark.parametrize("symbol", ["H7", "Cxyz", "C7/H", "", "c7", "Cdim6", "C7sus2", "C5"])
def test_unknown_symbol_names_it(symbol: str) -> None:
    with pytest.raises(ChordSymbolError) as info:
        parse_chord(symbol)
    assert repr(symbol) in str(info.value)
    assert info.value.symbol == symbol
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("symbol", "scale"),
    [
        ("C7", "mixolydian"),
        ("C79", "mixolydian"),
        ("C7911#", "lydian_dominant"),
        ("C79b", "diminished_half_whole"),
        ("C79b13b", "phrygian_dominant"),
        ("C7alt", "altered"),
        ("C-7", "dorian"),
        ("Cm7b5", "locrian"),
        ("Cj7", "ionian"),
        ("Cj7911#", "lydian"),
        ("Co7", "diminished_whole_half"),
        ("Co", "diminished_whole_half"),
        ("C+7", "whole_tone"),
        ("C-j7", "melodic_minor"),
        ("Csus7", "mixolydian"),
    ],
)
def test_chord_scale(symbol: str, scale: str) -> None:
    chord = parse_chord(symbol)
    assert chord is not None
    assert chord_scale(chord).name == scale
    assert chord_scale(chord).root == chord.root


def test_parse_is_cached() -> None:
    assert parse_chord("Eb79b") is parse_chord("Eb79b")


def test_transpose_symbol_keeps_syntax() -> None:
    assert transpose_symbol("Bb-7/Eb", 2) == "C-7/F"
    assert transpose_symbol("F#79b", 1) == "G79b"
    assert transpose_symbol("C7", 6, sharps=True) == "F#7"
    assert transpose_symbol("NC", 5) == "NC"


@given(
    symbol=st.sampled_from([s for s in WJAZZD_SAMPLE if s != "NC"] + sorted(LEAD_SHEET)),
    semitones=st.integers(-24, 24),
)
def test_transposed_chord_moves_every_pitch_class(symbol: str, semitones: int) -> None:
    chord = parse_chord(symbol)
    assert isinstance(chord, Chord)
    moved = chord.transposed(semitones)
    assert moved.quality == chord.quality
    assert moved.tones == tuple((t + semitones) % 12 for t in chord.tones)
    assert moved.tensions == tuple((t + semitones) % 12 for t in chord.tensions)
    assert moved.bass == (None if chord.bass is None else (chord.bass + semitones) % 12)
