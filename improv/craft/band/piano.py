"""Piano comping: rootless voicings, led smoothly, in short syncopated stabs, out of the
soloist's way.

Voicings are the rootless A and B forms (Bill Evans, Wynton Kelly): on a dominant
3-13-b7-9 or b7-9-3-13, on a minor seventh b3-5-b7-9 or b7-9-b3-5, on a major seventh
3-5-7-9 or 7-9-3-5, so the 3rd and 7th are always there and the bass has the root.
Of both forms in every octave that fits the comping register, the one whose voices
move least from the last voicing wins, its top kept below the soloist's lowest notes.

Rhythm: the Charleston (beat 1, the "and" of 2), its reverse, stabs on off-beats and
anticipations (the "and" of 4 pushing the next bar's chord, whose downbeat then stays
silent). An off-beat stab sounds the chord of the beat it anticipates. With a busy
soloist, in ``sparse`` mode, and in the bar before a trade's handover the pianist plays
less, or lays out.
"""

from __future__ import annotations

import random

from improv.craft.band.part import BarContext, level, velocity
from improv.music.chords import Chord, QualityClass
from improv.music.notes import Note

COMP_RANGE = (48, 76)
"""C3 to E5: where comping voicings sit (no lower: they would muddy the bass)."""
FLOOR = 45  # a voicing may go down to A2 to stay under a low soloist

# Rootless A forms as intervals above the root, bottom to top; B is the A form turned
# over at its middle (the upper two voices taken down an octave).
_A_FORMS: dict[str, tuple[int, ...]] = {
    "7": (4, 9, 10, 14),  # 3 13 b7 9
    "7alt": (4, 8, 10, 15),  # 3 b13 b7 #9
    "aug7": (4, 8, 10, 14),
    "7sus": (5, 7, 10, 14),  # 4 5 b7 9
    "m7": (3, 7, 10, 14),  # b3 5 b7 9
    "m6": (3, 7, 9, 14),
    "m": (3, 7, 10, 14),
    "mmaj7": (3, 7, 11, 14),
    "m7b5": (3, 6, 10, 14),  # b3 b5 b7 9 (locrian #2)
    "dim7": (3, 6, 9, 12),
    "dim": (3, 6, 9, 12),
    "maj7": (4, 7, 11, 14),  # 3 5 7 9
    "6": (4, 7, 9, 14),
    "maj": (4, 7, 9, 14),
    "augmaj7": (4, 8, 11, 14),
    "aug": (4, 8, 10, 14),
    "sus": (5, 7, 10, 14),
    "sus2": (2, 7, 10, 14),
}

# Comping rhythms in 4/4: (position, length) in straight beats; 4.0-x pushes the next bar.
_RHYTHMS: dict[str, tuple[tuple[float, float], ...]] = {
    "charleston": ((0.0, 1.2), (1.5, 0.4)),
    "reverse": ((0.5, 0.4), (2.0, 0.9)),
    "two-and": ((1.5, 0.5), (3.0, 0.6)),
    "anticipate": ((0.0, 0.5), (2.5, 0.4), (3.5, 1.2)),
    "and-of-4": ((1.0, 0.5), (3.5, 1.2)),
    "held": ((0.0, 2.5),),
    "one-stab": ((1.5, 0.4),),
}
_BUSY = ("charleston", "two-and", "anticipate", "and-of-4", "reverse")
_LIGHT = ("held", "one-stab", "charleston")


def rootless(chord: Chord, form: str = "A") -> tuple[int, ...]:
    """The pitch classes of a rootless voicing, bottom to top (form ``A`` or ``B``)."""
    shape = _A_FORMS.get(chord.quality)
    if shape is None:
        tones = [(t - chord.root) % 12 for t in chord.tones[1:]]
        shape = (*tuple(sorted(tones)), 14)
    if form == "B":
        shape = shape[2:] + tuple(s + 12 for s in shape[:2])
    return tuple((chord.root + s) % 12 for s in shape)


def voicings(chord: Chord, low: int, high: int) -> list[tuple[int, ...]]:
    """Both forms in every octave whose notes lie in ``[low, high]``, closed position."""
    out = []
    for form in ("A", "B"):
        pcs = rootless(chord, form)
        for bottom in range(low, low + 12):
            if bottom % 12 != pcs[0]:
                continue
            notes = [bottom]
            for pc in pcs[1:]:
                notes.append(notes[-1] + (pc - notes[-1]) % 12 or 12)
            while notes[-1] <= high:
                out.append(tuple(notes))
                notes = [n + 12 for n in notes]
    return out


def lead(
    chord: Chord, previous: tuple[int, ...] | None, ceiling: int, floor: int = COMP_RANGE[0]
) -> tuple[int, ...]:
    """The voicing of ``chord`` that moves least from ``previous`` (staying near the
    middle of the register) with its top at most ``ceiling`` (the floor lowered when
    nothing fits)."""
    options = voicings(chord, floor, ceiling) or voicings(chord, FLOOR, ceiling + 12)
    centre = (floor + ceiling) / 2.0
    if previous is None:
        return min(options, key=lambda v: abs(sum(v) / len(v) - centre))

    def moved(v: tuple[int, ...]) -> float:
        return sum(abs(a - b) for a, b in zip(sorted(v), sorted(previous), strict=False))

    # the least motion, with a pull toward the middle so the hand does not drift off
    return min(options, key=lambda v: moved(v) + 1.5 * abs(sum(v) / len(v) - centre))


class CompingPiano:
    """A comping pianist: rootless voicings, led smoothly, in syncopated stabs."""

    name = "piano"

    def __init__(self) -> None:
        self._voicing: tuple[int, ...] | None = None
        self._pushed = False  # the last bar anticipated this bar's chord: its beat 1 rests

    def program(self, tempo: float) -> int | None:
        return 0  # GM acoustic grand

    def reset(self) -> None:
        self._voicing = None
        self._pushed = False

    def plan(self, bar: BarContext) -> list[Note]:
        rng = bar.rng(self.name)
        hits = self._rhythm(bar, rng)
        skip_one, self._pushed = self._pushed, False
        ceiling = self._ceiling(bar)
        scale = level(bar.listening, bar.mode) * (0.85 if bar.slot_ends else 1.0)
        notes: list[Note] = []
        for position, length in hits:
            if skip_one and position == 0.0:
                continue
            chord = bar.chord(position + 0.5 if position % 1 else position)
            if chord is None:
                continue
            self._voicing = lead(chord, self._voicing, ceiling)
            if position + length > bar.beats:
                self._pushed = True
            base = 60 + (6 if position % 1 else 0)  # off-beat stabs speak a little more
            onset = bar.at(position)
            end = bar.at(min(position + length, bar.beats)) + max(
                0.0, position + length - bar.beats
            )
            top = len(self._voicing) - 1
            for index, pitch in enumerate(self._voicing):
                lift = 5.0 if index == top else 0.0
                notes.append(
                    Note(
                        pitch, velocity(base + lift, scale, rng, 3.0), onset, max(0.1, end - onset)
                    )
                )
        return notes

    @staticmethod
    def _ceiling(bar: BarContext) -> int:
        """The top of the comping register: under the soloist's lowest notes."""
        low = bar.listening.low
        if low is None:
            return COMP_RANGE[1]
        return max(FLOOR + 15, min(COMP_RANGE[1], low - 1))

    def _rhythm(self, bar: BarContext, rng: random.Random) -> list[tuple[float, float]]:
        """This bar's stabs; each chord change in the bar gets one if none falls near it."""
        beats = bar.beats
        busy_soloist = bar.listening.density > 2.0
        if bar.slot_ends:
            pattern = [(0.0, 0.6)] if rng.random() < 0.5 else []  # space at the handover
        elif beats != 4.0:
            pattern = [(0.0, 0.8)] + ([(beats - 0.5, 0.4)] if rng.random() < 0.5 else [])
        elif bar.mode == "sparse" or busy_soloist:
            pattern = [] if rng.random() < 0.25 else list(_RHYTHMS[rng.choice(_LIGHT)])
        else:
            pattern = list(_RHYTHMS[rng.choice(_BUSY)])
        if bar.chorus_ends or bar.slot_ends:  # no push across a handover
            pattern = [(p, min(length, beats - p)) for p, length in pattern]
        for change in _changes(bar):
            if not any(
                abs(p - change) <= 0.5 or (p < change < p + length) for p, length in pattern
            ):
                pattern.append((change, 0.8))
        return sorted(pattern)


def _changes(bar: BarContext) -> list[float]:
    """Positions in the bar (after its start) where the chord changes, on the beat."""
    out = []
    previous = bar.chord(0.0)
    for beat in range(1, int(bar.beats + 1e-9)):
        chord = bar.chord(float(beat))
        if chord is not None and (previous is None or chord.symbol != previous.symbol):
            out.append(float(beat))
        previous = chord
    return out


def has_third_and_seventh(chord: Chord, voicing: tuple[int, ...]) -> bool:
    """Whether a voicing holds the chord's 3rd (or 4th, suspended) and its 7th."""
    pcs = {p % 12 for p in voicing}
    intervals = chord.intervals
    third = intervals[1] if len(intervals) > 1 else None
    seventh = intervals[3] if len(intervals) > 3 else None
    wanted = {(chord.root + i) % 12 for i in (third, seventh) if i is not None}
    return wanted <= pcs or (chord.quality_class is QualityClass.SUSPENDED and seventh is None)
