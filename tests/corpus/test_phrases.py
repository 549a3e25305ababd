"""Phrase segmentation (rests, sections, length) and call/response pairs."""

from __future__ import annotations

from improv.corpus.phrases import (
    MAX_PHRASE_BARS,
    call_response_pairs,
    phrase_end,
    phrase_onset,
    segment,
)
from improv.music.chords import parse_chord
from improv.music.notes import ChordChange, Note, Solo
from improv.music.time import Metre


def _solo(notes: list[Note], sections: tuple[tuple[str, int, int], ...] = ()) -> Solo:
    chords = tuple(
        ChordChange(bar * 4.0, symbol, parse_chord(symbol))
        for bar, symbol in enumerate(["C7", "F7", "C7", "C7", "F7", "F7", "C7", "C7"] * 4)
    )
    return Solo(tuple(notes), chords, Metre(4, 4), key=0, sections=sections)


def _eighths(start: float, count: int, pitch: int = 60) -> list[Note]:
    return [Note(pitch + i % 5, 90, start + 0.5 * i, 0.5) for i in range(count)]


def test_rests_of_a_beat_or_more_end_phrases() -> None:
    notes = _eighths(0.0, 8) + _eighths(5.0, 4) + _eighths(7.5, 4)  # rests 1.0 and 0.5 beats
    phrases = segment(_solo(notes))
    assert [len(p.notes) for p in phrases] == [8, 8]
    assert sum(len(p.notes) for p in phrases) == len(notes)


def test_phrase_notes_and_chords_are_relative_to_its_first_bar() -> None:
    notes = _eighths(0.0, 4) + _eighths(6.5, 3)  # the second ends on the bar line
    second = segment(_solo(notes))[1]
    assert second.start_bar == 1
    assert second.notes[0].onset == 2.5
    assert phrase_onset(second) == 6.5
    assert [(c.onset, c.symbol) for c in second.chords] == [(0.0, "F7")]


def test_chords_under_a_phrase_run_to_the_end_of_its_last_bar() -> None:
    phrase = segment(_solo(_eighths(2.0, 8)))[0]  # beats 2..6: bars 0 and 1
    assert [(c.onset, c.symbol) for c in phrase.chords] == [(0.0, "C7"), (4.0, "F7")]


def test_a_long_run_is_cut_at_a_section_boundary() -> None:
    notes = _eighths(0.0, 48)  # 24 beats without a rest, across the boundary at bar 4
    sections = (("A1", 0, 4), ("A2", 4, 4))
    phrases = segment(_solo(notes, sections))
    assert [p.start_bar for p in phrases] == [0, 4]
    unsplit = segment(_solo(notes))
    assert len(unsplit) == 1


def test_no_phrase_spans_more_than_eight_bars() -> None:
    notes = _eighths(0.0, 2 * 4 * 20)  # 20 bars of unbroken eighths, no sections
    notes[100] = Note(notes[100].pitch, 90, notes[100].onset, 0.25)  # a tiny breath
    phrases = segment(_solo(notes))
    assert len(phrases) >= 3
    assert all(p.duration <= MAX_PHRASE_BARS * 4 for p in phrases)
    assert sum(len(p.notes) for p in phrases) == len(notes)


def test_pairs_are_consecutive_phrases_close_enough_in_time() -> None:
    notes = _eighths(0.0, 4) + _eighths(4.0, 4) + _eighths(40.0, 4) + _eighths(44.0, 4)
    phrases = segment(_solo(notes))
    assert len(phrases) == 4
    pairs = call_response_pairs(phrases)
    assert [(p.call, p.response) for p in pairs] == [
        (phrases[0], phrases[1]),
        (phrases[2], phrases[3]),
    ]
    assert pairs[0].gap == phrase_onset(phrases[1]) - phrase_end(phrases[0]) == 2.0
    assert all(p.call.chords and p.response.chords for p in pairs)


def test_one_note_phrases_do_not_pair() -> None:
    notes = [Note(60, 90, 0.0, 0.5), *_eighths(2.0, 4)]
    assert call_response_pairs(segment(_solo(notes))) == []
