"""The walking bass: quarter notes that walk the changes (or half notes, two-feel).

Each bar line and each chord change is a *target*: a chord tone (the root four times in
five, the root always at a chorus's first bar), in the octave nearest the line so far.
The bass decides the next bar's target while it plays this one, so that the last beat
before a target is an *approach*: a half step below or above, the target's fifth, or a
scale step. The beats between walk by scale (or chord) steps toward the approach, never
repeating a pitch. Lengths are legato with the odd shorter note; velocity leans on beat
1, lifts a little on 2 and 4, and follows the band's level.
"""

from __future__ import annotations

import itertools
import random

from improv.craft.band.part import BarContext, level, velocity
from improv.music.chords import Chord, chord_scale, parse_chord
from improv.music.notes import Note

BASS_RANGE = (28, 55)
"""E1 (the open E string) to G3: where a walking line lives."""


def _fallback() -> Chord:
    """The chord a bar under ``NC`` walks (a C7: any chord beats a silent bass)."""
    chord = parse_chord("C7")
    assert chord is not None
    return chord


_FALLBACK = _fallback()


class WalkingBass:
    """A walking bass line, bar by bar; ``two_feel`` plays half notes (or ``sparse`` mode)."""

    name = "bass"

    def __init__(
        self, *, low: int = BASS_RANGE[0], high: int = BASS_RANGE[1], two_feel: bool = False
    ) -> None:
        self.low, self.high = low, high
        self.two_feel = two_feel
        self._last: int | None = None  # the last pitch played
        self._target: int | None = None  # the pitch promised for the next bar's beat 1

    def program(self, tempo: float) -> int | None:
        return 32  # GM acoustic bass

    def reset(self) -> None:
        self._last = self._target = None

    def plan(self, bar: BarContext) -> list[Note]:
        rng = bar.rng(self.name)
        step = 2 if (self.two_feel or bar.mode == "sparse") and bar.beats >= 4 else 1
        positions = [float(p) for p in range(0, int(bar.beats + 1e-9), step)] or [0.0]
        chords = [bar.chord(p) or _FALLBACK for p in positions]
        # targets: the bar line and every chord change, then the next bar's first beat
        first = self._first_target(chords[0], bar, rng)
        targets: dict[int, int] = {0: first}
        previous = first
        for index in range(1, len(positions)):
            if chords[index].symbol != chords[index - 1].symbol:
                previous = targets[index] = self._chord_tone(chords[index], previous, rng)
        following = bar.chord(bar.beats) or chords[-1]
        self._target = self._chord_tone(
            following, previous, rng, root=bar.chorus_ends or rng.random() < 0.8
        )
        targets[len(positions)] = self._target
        pitches = self._walk(positions, chords, targets, following, rng)
        self._last = pitches[-1]
        scale = level(bar.listening, bar.mode) * (0.88 if bar.slot_ends else 1.0)
        notes = []
        for position, pitch in zip(positions, pitches, strict=True):
            length = min(step, bar.beats - position)
            legato = rng.uniform(0.82, 0.95) if rng.random() < 0.85 else rng.uniform(0.55, 0.7)
            accent = 8.0 if position == 0 else (3.0 if int(position) % 2 else 0.0)
            onset = bar.at(position)
            end = bar.at(position + length * legato)
            notes.append(
                Note(pitch, velocity(74 + accent, scale, rng), onset, max(0.05, end - onset))
            )
        return notes

    # --- the line ------------------------------------------------------------------------

    def _first_target(self, chord: Chord, bar: BarContext, rng: random.Random) -> int:
        """The promised target when it still fits the chord (a form change may have
        moved it), else a fresh chord tone near the last note."""
        if self._target is not None and chord.contains(self._target):
            return self._target
        return self._chord_tone(chord, self._last, rng, root=bar.chorus_starts or None)

    def _chord_tone(
        self, chord: Chord, near: int | None, rng: random.Random, root: bool | None = None
    ) -> int:
        """A chord tone (the root unless ``root`` is False; by chance when None) in the
        octave nearest ``near``, never ``near`` itself when another will do."""
        if root is None:
            root = rng.random() < 0.8
        tones = list(chord.tones[:3])
        pc = chord.root if root or len(tones) < 2 else rng.choice(tones[1:])
        if chord.bass is not None and root:
            pc = chord.bass
        return self._nearest(pc, near, avoid=near)

    def _nearest(self, pc: int, near: int | None, avoid: int | None = None) -> int:
        """The pitch of class ``pc`` nearest ``near``, pulled a little toward the low
        middle of the range (a line that only follows its nearest note drifts away)."""
        home = (self.low + self.high) // 2 - 5
        centre = home if near is None else 0.7 * near + 0.3 * home
        options = [p for p in range(self.low, self.high + 1) if p % 12 == pc % 12]
        options.sort(key=lambda p: (p == avoid, abs(p - centre)))
        return options[0]

    def _walk(
        self,
        positions: list[float],
        chords: list[Chord],
        targets: dict[int, int],
        following: Chord,
        rng: random.Random,
    ) -> list[int]:
        """Fill the beats between targets: steps toward an approach into each target."""
        pitches: list[int] = []
        marks = sorted(targets)
        for start, stop in itertools.pairwise(marks):
            pitches.append(targets[start])
            count = stop - start  # notes in this stretch, the target included
            if count == 1:
                continue
            goal_chord = chords[stop] if stop < len(chords) else following
            approach = self._approach(targets[stop], pitches[-1], goal_chord, rng)
            for index in range(1, count - 1):
                left = count - 1 - index  # beats until the approach note
                pitches.append(self._step(pitches[-1], approach, left, chords[start + index], rng))
            pitches.append(approach if approach != pitches[-1] else self._neighbour(approach))
        return pitches

    def _approach(self, target: int, current: int, chord: Chord, rng: random.Random) -> int:
        """A note that leads into ``target``: chromatic, its fifth, or a scale step."""
        scale = sorted(chord_scale(chord).pitch_classes)
        below = max((p for p in range(target - 3, target) if p % 12 in scale), default=target - 2)
        above = min(
            (p for p in range(target + 1, target + 4) if p % 12 in scale), default=target + 2
        )
        fifth = target + 7 if abs(target + 7 - current) < abs(target - 5 - current) else target - 5
        options = [
            (target - 1, 0.35),
            (target + 1, 0.25),
            (fifth, 0.15),
            (below, 0.15),
            (above, 0.1),
        ]
        usable = [(p, w) for p, w in options if self.low <= p <= self.high and p != current]
        if not usable:
            return self._neighbour(target)
        pitches, weights = zip(*usable, strict=True)
        return rng.choices(pitches, weights)[0]

    def _step(self, current: int, goal: int, left: int, chord: Chord, rng: random.Random) -> int:
        """The next walking note from ``current``: a scale step toward ``goal`` (reached
        in ``left`` more steps), a chord-tone skip when the goal is far."""
        scale = chord_scale(chord).pitch_classes
        wanted = current + (goal - current) / (left + 1)
        if abs(goal - current) <= 2 * left and rng.random() < 0.35:
            direction = 1 if wanted < current else -1  # wander away and come back
            wanted = current + direction * 2
        pool = [
            p
            for p in range(max(self.low, current - 7), min(self.high, current + 7) + 1)
            if p != current and p != goal and (p % 12 in scale)
        ]
        if abs(goal - current) > 5 * left:
            pool = [p for p in pool if chord.contains(p)] or pool
        if not pool:
            return self._neighbour(current)
        return min(pool, key=lambda p: (abs(p - wanted), rng.random()))

    def _neighbour(self, pitch: int) -> int:
        """A half step away, inside the range."""
        return pitch - 1 if pitch - 1 >= self.low else pitch + 1
