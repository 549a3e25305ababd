"""Phrases and call/response pairs: how a solo breathes, in units a model can answer.

A soloist phrases with rests and with the form: a line usually stops for breath, and a
new section or chorus usually starts a new thought. So a solo is cut at rests first;
a long run that crosses a section (or chorus) boundary is cut there; and whatever is
still longer than :data:`MAX_PHRASE_BARS` is cut at its longest internal rest, so no
phrase spans more than a few bars. Fixed windows would cut through the middle of lines.

A call/response pair is two consecutive phrases of one soloist, the later one starting
soon after the earlier ends: in a solo, the next phrase answers the last one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

from improv.music.notes import ChordChange, Note, Phrase, Solo, chord_in_force
from improv.music.time import Metre, quantize_beats, to_beats, to_ticks

REST_BEATS = 1.0
"""A rest this long (or longer) between notes ends a phrase."""
MAX_PHRASE_BARS = 8
"""No phrase spans more bars than this; longer runs are cut at their longest rest."""
SECTION_SPLIT_BARS = 4
"""A run longer than this that crosses a section boundary is cut at the boundary."""
BOUNDARY_WINDOW_BEATS = 1.0
"""How far before/after a section boundary a cut may fall (lines start with pickups)."""
MAX_PAIR_GAP_BARS = 2.0
"""The longest silence (bars) between a call and the phrase that answers it."""


def _rests(notes: Sequence[Note]) -> list[float]:
    """``rests[k]``: silence before note k since everything earlier ended (k >= 1)."""
    rests = [0.0]
    end = notes[0].end if notes else 0.0
    for note in notes[1:]:
        rests.append(note.onset - end)
        end = max(end, note.end)
    return rests


def _span(notes: Sequence[Note]) -> float:
    return max(n.end for n in notes) - notes[0].onset


def _cut_at_boundaries(
    notes: list[Note], boundaries: Sequence[float], min_span: float
) -> list[list[Note]]:
    """Cut a long run at every section boundary strictly inside it."""
    if len(notes) < 2 or _span(notes) <= min_span:
        return [notes]
    rests = _rests(notes)
    for boundary in boundaries:
        if not notes[0].onset < boundary < notes[-1].onset + 1e-9:
            continue
        window = [
            k
            for k in range(1, len(notes))
            if abs(notes[k].onset - boundary) <= BOUNDARY_WINDOW_BEATS
        ]
        if window:
            cut = max(window, key=lambda k: (rests[k], -abs(notes[k].onset - boundary)))
        else:
            cut = next(k for k in range(1, len(notes)) if notes[k].onset >= boundary - 1e-9)
        return [notes[:cut], *_cut_at_boundaries(notes[cut:], boundaries, min_span)]
    return [notes]


def _cut_long(notes: list[Note], max_span: float) -> list[list[Note]]:
    """Cut a run longer than ``max_span`` at its longest rest (nearest the middle on ties)."""
    if len(notes) < 2 or _span(notes) <= max_span:
        return [notes]
    rests = _rests(notes)
    middle = (notes[0].onset + notes[-1].end) / 2
    cut = max(range(1, len(notes)), key=lambda k: (rests[k], -abs(notes[k].onset - middle)))
    return _cut_long(notes[:cut], max_span) + _cut_long(notes[cut:], max_span)


def chords_between(
    changes: Sequence[ChordChange], start: float, end: float
) -> tuple[ChordChange, ...]:
    """Changes in force over [start, end), moved so that ``start`` is 0.

    The chord already sounding at ``start`` is included at 0, so a phrase always knows
    its harmony from its first beat.
    """
    moved: list[ChordChange] = []
    current = chord_in_force(changes, start)
    if current is not None:
        moved.append(ChordChange(0.0, current.symbol, current.chord))
    for change in changes:
        if start < change.onset < end:
            moved.append(ChordChange(change.onset - start, change.symbol, change.chord))
    return tuple(moved)


def make_phrase(notes: Sequence[Note], changes: Sequence[ChordChange], metre: Metre) -> Phrase:
    """A phrase of solo notes, re-referenced to the bar line of its first note's bar.

    Its chords run to the end of its last bar, so an answer knows what comes next.
    """
    start_bar = metre.bar_of(notes[0].onset)
    start = metre.bar_start(start_bar)
    end_bar = (to_ticks(max(n.end for n in notes)) - 1) // metre.ticks_per_bar
    chords = chords_between(changes, start, metre.bar_start(end_bar + 1))
    shift = to_ticks(start)
    moved = tuple(
        replace(n, onset=to_beats(to_ticks(n.onset) - shift), duration=quantize_beats(n.duration))
        for n in notes
    )
    return Phrase(moved, chords, metre, start_bar)


def section_boundaries(solo: Solo) -> list[float]:
    """Positions (beats) where annotated sections, hence choruses, begin."""
    return sorted({solo.metre.bar_start(start) for _, start, _ in solo.sections})


def segment(
    solo: Solo,
    *,
    rest: float = REST_BEATS,
    max_bars: int = MAX_PHRASE_BARS,
    section_split_bars: int = SECTION_SPLIT_BARS,
) -> list[Phrase]:
    """Phrases of a solo, in order: cut at rests, section boundaries and length limits."""
    notes = sorted(solo.notes, key=lambda n: (n.onset, n.pitch))
    if not notes:
        return []
    rests = _rests(notes)
    bar = solo.metre.beats_per_bar
    boundaries = section_boundaries(solo)
    runs: list[list[Note]] = []
    start = 0
    for k in range(1, len(notes) + 1):
        if k == len(notes) or rests[k] >= rest - 1e-9:
            runs.append(notes[start:k])
            start = k
    return [
        make_phrase(piece, solo.chords, solo.metre)
        for run in runs
        for part in _cut_at_boundaries(run, boundaries, section_split_bars * bar)
        for piece in _cut_long(part, max_bars * bar)
    ]


def phrase_onset(phrase: Phrase) -> float:
    """Where a phrase's first note falls in its solo (beats from bar 0)."""
    return phrase.metre.bar_start(phrase.start_bar) + phrase.onset


def phrase_end(phrase: Phrase) -> float:
    """Where a phrase's last note ends in its solo (beats from bar 0)."""
    return phrase.metre.bar_start(phrase.start_bar) + phrase.end


@dataclass(frozen=True, slots=True)
class CallResponse:
    """Two consecutive phrases of one soloist: ``response`` answers ``call``.

    Each phrase keeps its own bar reference and chords; ``gap`` is the silence between
    them in beats.
    """

    call: Phrase
    response: Phrase
    gap: float


def call_response_pairs(
    phrases: Sequence[Phrase],
    *,
    max_gap_bars: float = MAX_PAIR_GAP_BARS,
    min_notes: int = 2,
) -> list[CallResponse]:
    """Pairs of consecutive phrases (of one solo) less than ``max_gap_bars`` apart.

    Phrases of fewer than ``min_notes`` notes neither call nor answer: a lone note is
    more often an ornament or a fragment than a musical statement.
    """
    pairs: list[CallResponse] = []
    for call, response in pairwise(phrases):
        if len(call.notes) < min_notes or len(response.notes) < min_notes:
            continue
        gap = phrase_onset(response) - phrase_end(call)
        if gap <= max_gap_bars * call.metre.beats_per_bar + 1e-9:
            pairs.append(CallResponse(call, response, max(0.0, gap)))
    return pairs
