"""The drums (General MIDI channel 10): swing ride, hi-hat on 2 and 4, feathered bass
drum, snare comping, fills into each chorus and each trade slot's change.

The ride plays "ding, ding-a ding, ding-a": every beat, and the swung off-beat eighth
before beats 3 and 1 (the jam's swing ratio places it). The hi-hat closes with the
foot on 2 and 4; the bass drum is feathered on all four, felt more than heard; the
snare drops a few soft comping notes on off-beats (fewer in ``sparse`` mode and none in
the handover bar). The last bar of a chorus ends with a fill on beats 3 and 4 (snare
and toms) and the next chorus starts with a crash and a kick; the last bar of a slot
gets a short pickup fill on beat 4 and a kick on the next bar 1, leaving space rather
than filling it. Below :data:`BRUSHES_BELOW` BPM the drummer takes brushes: taps on the
snare in the ride's pattern over a sweep, on the GM brush kit.
"""

from __future__ import annotations

import random

from improv.craft.band.part import BarContext, level, velocity
from improv.music.notes import Note

KICK, SIDE_STICK, SNARE, HIHAT_PEDAL, CRASH, RIDE = 35, 37, 38, 44, 49, 51
BRUSH_TAP, BRUSH_SWIRL = 38, 40
TOMS = (50, 48, 47, 45, 43, 41)  # high to low
BRUSHES_BELOW = 100.0
"""BPM: slower than this, brushes (a ballad or a slow blues); sticks above."""
JAZZ_KIT, BRUSH_KIT = 32, 40  # GM2 drum-kit programs (0-based), on channel 10


class SwingDrums:
    """A jazz drummer: ride, hi-hat, feathered kick, snare comping and fills."""

    name = "drums"

    def __init__(self) -> None:
        self._crash_next = False  # the last bar filled into a chorus: crash on bar 1
        self._kick_next = False  # the last bar filled into a slot: kick on bar 1

    def program(self, tempo: float) -> int | None:
        return BRUSH_KIT if brushes(tempo) else JAZZ_KIT

    def reset(self) -> None:
        self._crash_next = self._kick_next = False

    def plan(self, bar: BarContext) -> list[Note]:
        rng = bar.rng(self.name)
        scale = level(bar.listening, bar.mode)
        beats = int(bar.beats + 1e-9)
        fill_from = _fill_start(bar)
        notes: list[Note] = []

        def hit(pitch: int, position: float, base: float, length: float = 0.25) -> None:
            onset = bar.at(position)
            notes.append(Note(pitch, velocity(base, scale, rng, 4.0), onset, length))

        if self._crash_next:
            hit(CRASH, 0.0, 92, 1.5)
            hit(KICK, 0.0, 80)
        elif self._kick_next:
            hit(KICK, 0.0, 68)
        self._crash_next, self._kick_next = bar.chorus_ends, bar.slot_ends and not bar.chorus_ends
        with_brushes = brushes(bar.tempo)
        ride = BRUSH_TAP if with_brushes else RIDE
        soft = 0.75 if with_brushes else 1.0
        for beat in range(1, beats, 2):
            hit(HIHAT_PEDAL, beat, 52)  # the foot keeps 2 and 4, fills too
        for beat in range(beats):
            if beat >= fill_from:
                break
            if not (beat == 0 and self._crash_landed(notes)):
                hit(ride, beat, (66 if beat % 2 else 58) * soft)
            if beat % 2 and beat + 0.5 < fill_from:
                hit(ride, beat + 0.5, 46 * soft)  # the skip note: "ding-a"
            hit(KICK, beat, 30 if bar.mode == "full" else 24, 0.2)  # feathered
            if with_brushes and beat % 2 == 0:
                hit(BRUSH_SWIRL, beat, 34, 1.8)  # the left hand's sweep
        if not bar.slot_ends and not bar.chorus_ends:
            notes += self._comp(bar, rng, scale, beats)
        if fill_from < beats:
            notes += self._fill(bar, rng, scale, fill_from, beats)
        return notes

    @staticmethod
    def _crash_landed(notes: list[Note]) -> bool:
        return any(n.pitch == CRASH for n in notes)

    def _comp(self, bar: BarContext, rng: random.Random, scale: float, beats: int) -> list[Note]:
        """A few soft snare notes on off-beats (a triplet's last third, or the swung
        eighth), more with a busy soloist in ``full`` mode."""
        chances = 1 if bar.mode == "sparse" else 2 + (bar.listening.energy > 0.6)
        notes = []
        for _ in range(chances):
            if rng.random() < (0.3 if bar.mode == "sparse" else 0.55):
                beat = rng.randrange(beats)
                position = beat + (0.5 if rng.random() < 0.6 else 2 / 3)
                pitch = SIDE_STICK if bar.tempo < 90 and not brushes(bar.tempo) else SNARE
                # the eighth swings; the triplet's last third is where it is
                onset = bar.at(position) if position % 1 == 0.5 else bar.bar_start + position
                notes.append(Note(pitch, velocity(44, scale, rng, 8.0), onset, 0.2))
        return notes

    def _fill(
        self, bar: BarContext, rng: random.Random, scale: float, start: int, beats: int
    ) -> list[Note]:
        """Triplets over the last beats: snare, then down the toms, louder as it goes."""
        notes = []
        count = (beats - start) * 3
        into_chorus = bar.chorus_ends
        toms = TOMS if into_chorus else TOMS[::2]
        for index in range(count):
            position = start + index / 3.0
            if not into_chorus and index % 3 == 1 and rng.random() < 0.6:
                continue  # a lighter pickup: some triplet middles left out
            if index < count // 2:
                pitch = SNARE
            else:  # down the toms
                pitch = toms[min(len(toms) - 1, (index - count // 2) * len(toms) // count)]
            base = (58 if into_chorus else 48) + 30 * index / count
            notes.append(
                Note(pitch, velocity(base, scale, rng, 5.0), bar.bar_start + position, 0.2)
            )
        return notes


def brushes(tempo: float) -> bool:
    """Brushes at slow tempi, sticks otherwise."""
    return tempo < BRUSHES_BELOW


def _fill_start(bar: BarContext) -> int:
    """The beat the fill starts on: beat 3 into a chorus, beat 4 into a new slot."""
    beats = int(bar.beats + 1e-9)
    if bar.chorus_ends:
        return max(1, beats - 2)
    if bar.slot_ends:
        return max(1, beats - 1)
    return beats
