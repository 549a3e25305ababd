"""Hand-made calls whose good answers are known, shared by the craft tests.

A blues in C, 4/4: C7 for the call's two bars (beats 0-8), F7 for the answer's turn
(beats 8-16, a two-bar trade). The call states a cell, E G A G (3rd, 5th, 6th, 5th of
C7), and ends open on D (the 9th).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from improv.craft.situation import Situation
from improv.music.chords import parse_chord
from improv.music.notes import ChordChange, Note
from improv.music.pitch import Key
from improv.music.time import Metre


def notes(*specs: tuple[int, float, float], velocity: int = 80) -> tuple[Note, ...]:
    """Notes from (pitch, onset, duration) triples."""
    return tuple(Note(p, velocity, o, d) for p, o, d in specs)


def change(onset: float, symbol: str) -> ChordChange:
    return ChordChange(onset, symbol, parse_chord(symbol))


CALL = notes(
    (64, 0.0, 0.5), (67, 0.5, 0.5), (69, 1.0, 0.5), (67, 1.5, 0.5),
    (70, 2.0, 0.5), (69, 2.5, 0.5), (67, 3.0, 0.5), (64, 3.5, 0.5),
    (60, 4.0, 1.0), (62, 5.0, 1.5),
)  # fmt: skip


def situation(call: Sequence[Note] = CALL, mode: str = "trade") -> Situation:
    return Situation(
        call=tuple(call),
        chords=(change(0.0, "C7"), change(8.0, "F7")),
        start=8.0,
        end=16.0,
        metre=Metre(4, 4),
        key=Key(0),
        pitch_range=(48, 84),
        mode=mode,
    )


# The cell sequenced onto F7 (A C D C: 3rd, 5th, 6th, 5th), a breath, a climb to the
# b7, a falling line home to the root on beat 3 with a long note.
DEVELOPED = notes(
    (69, 8.0, 0.5), (72, 8.5, 0.5), (74, 9.0, 0.5), (72, 9.5, 0.5),
    (75, 10.5, 0.5), (74, 11.0, 0.5), (72, 11.5, 0.5),
    (69, 12.0, 1.0), (67, 13.0, 0.5), (64, 13.5, 0.5), (65, 14.0, 1.5),
)  # fmt: skip


def random_answer(seed: int = 0) -> tuple[Note, ...]:
    """Random pitches on random eighth-note positions of the turn."""
    rng = np.random.default_rng(seed)
    onsets = np.sort(rng.choice(np.arange(8.0, 15.5, 0.5), size=11, replace=False))
    return tuple(Note(int(rng.integers(50, 82)), 80, float(o), 0.5) for o in onsets)


TWO_NOTES = notes((69, 8.0, 0.5), (65, 9.0, 1.0))
LITERAL_COPY = tuple(n.shifted(8.0) for n in CALL)
TRANSPOSED_COPY = tuple(Note(n.pitch + 5, n.velocity, n.onset + 8.0, n.duration) for n in CALL)
# the developed answer, but ending half a beat late on B (the #11 of F7)
WRONG_ENDING = (*DEVELOPED[:-1], Note(71, 80, 14.5, 0.5))
SPILLING = tuple(n.shifted(1.5) for n in DEVELOPED)  # its last note ends at 17.0
