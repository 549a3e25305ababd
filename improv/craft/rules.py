"""A rule-based blues improviser: test data for the corpus, last-resort answers for the engine.

The rules are the ones blues players teach: short motifs from the blues scale and the
chord tones, chord tones on strong beats, swung rhythm cells (eighths, triplets,
quarters, rests), phrases that breathe, and the AAB shape of a 12-bar chorus (a
statement, its repeat over the IV chord, a different answer). An answer to a call
echoes it: its rhythm and contour come back, varied or sequenced, fitted to the chords
under it, in the call's register, density and dynamics.

Everything is driven by one ``random.Random(seed)``, so the same seed gives the same
notes on every machine; nothing reads the clock.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from improv.music.chords import Chord, chord_scale
from improv.music.notes import ChordChange, Note, Phrase, chord_in_force
from improv.music.pitch import Key, fold_into_range
from improv.music.scales import Scale
from improv.music.time import TICKS_PER_BEAT, Metre, to_beats, to_ticks
from improv.music.transforms import echo, is_strong_beat

Cell = tuple[tuple[int, int], ...]
"""A rhythm cell: (onset, duration) pairs in ticks inside one beat."""

EARLY_DOWNBEAT_BEATS = 0.125
"""A call starting at most this far before a bar line starts on it, played early: a
downbeat a hair early (a performer's lean, or a tick of clock jitter) must not put the
echo almost a whole bar late. A 16th-note pickup (0.25) stays a pickup."""

_SIXTH = TICKS_PER_BEAT // 2
_THIRD = TICKS_PER_BEAT // 3
# Swing lives in the grid as straight eighths (rendered swung) and as triplet figures.
CELLS: dict[str, Cell] = {
    "rest": (),
    "quarter": ((0, TICKS_PER_BEAT),),
    "eighths": ((0, _SIXTH), (_SIXTH, _SIXTH)),
    "swung": ((0, 2 * _THIRD), (2 * _THIRD, _THIRD)),
    "triplet": ((0, _THIRD), (_THIRD, _THIRD), (2 * _THIRD, _THIRD)),
    "push": ((_SIXTH, _SIXTH),),
    "stab": ((0, _SIXTH),),
}


def _cell_weights(density: float) -> list[float]:
    """Weights of :data:`CELLS` (in order) for a density in [0, 1]: busier means fewer rests."""
    d = min(1.0, max(0.0, density))
    return [1.2 * (1 - d), 1.0, 1.2 + 2.0 * d, 1.0 + d, 0.3 + 0.9 * d, 0.6, 0.5]


@dataclass(frozen=True, slots=True)
class Voice:
    """How the generated player sounds: register, dynamics and how busy it is."""

    low: int = 55
    high: int = 79
    velocity: int = 90
    density: float = 0.55


VOICES: dict[str, Voice] = {
    "ts": Voice(52, 76, 92, 0.55),
    "as": Voice(58, 82, 88, 0.6),
    "tp": Voice(58, 82, 96, 0.5),
    "tb": Voice(46, 70, 90, 0.45),
}


@lru_cache(maxsize=2048)
def _pitches(low: int, high: int, pitch_classes: frozenset[int]) -> tuple[int, ...]:
    """The pitches of ``pitch_classes`` in ``[low, high]``, never outside MIDI's 0..127."""
    return tuple(p for p in range(max(0, low), min(127, high) + 1) if p % 12 in pitch_classes)


@lru_cache(maxsize=1024)
def _colours(chord: Chord | None, tonic: int, blues: bool) -> tuple[frozenset[int], frozenset[int]]:
    """(chord tones, all fitting pitch classes) for a chord; blues adds the key's blues scale."""
    blues_scale = Scale.named("blues", tonic).pitch_classes
    if chord is None:
        return blues_scale, blues_scale
    tones = frozenset(chord.tones)
    scale = blues_scale if blues else chord_scale(chord).pitch_classes
    return tones, scale | tones


def _nearest(pool: Sequence[int], pitch: int) -> int:
    """Index of the pool pitch nearest ``pitch`` (ties go down)."""
    best = 0
    for i, candidate in enumerate(pool):
        if abs(candidate - pitch) < abs(pool[best] - pitch):
            best = i
    return best


def _on_grid(note: Note) -> Note:
    """The note with onset and duration as exact grid values (sums of beats drift)."""
    return replace(
        note, onset=to_beats(to_ticks(note.onset)), duration=to_beats(to_ticks(note.duration))
    )


def _snap(pool: Sequence[int], pitch: int, upward: bool) -> int:
    """The nearest pool pitch on the side the line is moving to (else the nearest)."""
    ahead = [p for p in pool if (p >= pitch if upward else p <= pitch)]
    if not ahead:
        return pool[_nearest(pool, pitch)] if pool else pitch
    return min(ahead, key=lambda p: abs(p - pitch))


class BluesGenerator:
    """Seeded phrase maker. One instance, one random stream: same seed, same music."""

    def __init__(self, seed: int = 0, key: Key | None = None, *, blues: bool = True) -> None:
        self.rng = random.Random(seed)
        self.key = key or Key(0)
        self.blues = blues

    # -- building blocks ------------------------------------------------------------

    def rhythm(self, beats: int, density: float) -> list[tuple[int, int]]:
        """(onset, duration) ticks over ``beats`` beats from 0; the first beat always sounds."""
        names = list(CELLS)
        weights = _cell_weights(density)
        events: list[tuple[int, int]] = []
        beat = 0
        while beat < beats:
            name = self.rng.choices(names, weights)[0]
            if beat == 0 and name == "rest":
                name = "eighths"
            if name == "quarter" and beat + 1 < beats and self.rng.random() < 0.2:
                events.append((beat * TICKS_PER_BEAT, 2 * TICKS_PER_BEAT))  # a half note
                beat += 2
                continue
            events.extend((beat * TICKS_PER_BEAT + on, d) for on, d in CELLS[name])
            beat += 1
        return events

    def _chord(self, chords: Sequence[ChordChange], beats: float) -> Chord | None:
        change = chord_in_force(chords, beats)
        return change.chord if change is not None else None

    def melody(
        self,
        times: Sequence[tuple[int, int]],
        chords: Sequence[ChordChange],
        metre: Metre,
        voice: Voice,
        start_pitch: int | None = None,
    ) -> list[int]:
        """Pitches for onsets (ticks from the chords' reference): a stepwise arch over the
        blues scale and chord tones, chord tones on strong beats, ending on a chord tone."""
        pitch = (
            start_pitch
            if start_pitch is not None
            else self.rng.randint(voice.low + 4, voice.high - 6)
        )
        rising = self.rng.random() < 0.6
        pitches: list[int] = []
        for i, (tick, _) in enumerate(times):
            position = to_beats(tick)
            tones, fitting = _colours(self._chord(chords, position), self.key.tonic, self.blues)
            pool = _pitches(voice.low, voice.high, fitting)
            index = _nearest(pool, pitch)
            if i > 0:
                if i == len(times) // 2:
                    rising = not rising  # the arch turns
                step = self.rng.choices((1, 2, 3, 0, -1), (5, 3, 1, 1, 2))[0]
                if step == 0 and pitches[-2:] == [pitch, pitch]:
                    step = 1  # a note struck three times is enough
                index += step if rising else -step
                top = len(pool) - 1
                if index < 0 or index > top:  # bounce off the register's edge
                    rising = index < 0
                    index = -index if index < 0 else 2 * top - index
                index = min(top, max(0, index))
            pitch = pool[index]
            if i == len(times) - 1 or (
                is_strong_beat(metre, position) and self.rng.random() < 0.75
            ):
                pitch = _snap(_pitches(voice.low, voice.high, tones), pitch, rising)
            pitches.append(pitch)
        return pitches

    def velocities(
        self, times: Sequence[tuple[int, int]], pitches: Sequence[int], voice: Voice
    ) -> list[int]:
        """Accents on the beat, ghosted off-beats now and then, louder towards the top."""
        middle = (voice.low + voice.high) / 2
        result = []
        for (tick, _), pitch in zip(times, pitches, strict=True):
            velocity = voice.velocity + self.rng.randint(-5, 5) + round((pitch - middle) * 0.6)
            if tick % TICKS_PER_BEAT == 0:
                velocity += 6
            elif self.rng.random() < 0.15:
                velocity -= 20
            result.append(max(20, min(127, velocity)))
        return result

    def _notes(
        self,
        times: Sequence[tuple[int, int]],
        pitches: Sequence[int],
        velocities: Sequence[int],
        offset: int,
        limit: int,
    ) -> list[Note]:
        """Notes from ticks (shifted by ``offset``), none sounding past ``limit``."""
        notes: list[Note] = []
        for (tick, duration), pitch, velocity in zip(times, pitches, velocities, strict=True):
            start = tick + offset
            end = min(start + duration, limit)
            if start >= 0 and end > start:
                notes.append(Note(pitch, velocity, to_beats(start), to_beats(end - start)))
        return notes

    def _ending(self, times: list[tuple[int, int]], room: int) -> list[tuple[int, int]]:
        """The phrase's last note held (a quarter to a half note), as players land."""
        if not times:
            return times
        tick, duration = times[-1]
        held = max(duration, self.rng.choice((1, 1, 2)) * TICKS_PER_BEAT)
        times[-1] = (tick, min(held, max(duration, room - tick)))
        return times

    # -- phrases and choruses -------------------------------------------------------

    def phrase(
        self,
        chords: Sequence[ChordChange],
        metre: Metre,
        *,
        start: float,
        beats: int,
        voice: Voice,
        density: float | None = None,
        start_pitch: int | None = None,
    ) -> list[Note]:
        """One motif-based phrase: ``beats`` beats of rhythm from ``start`` (beats), pitched
        over ``chords`` (same reference), its last note held."""
        offset = to_ticks(start)
        times = self._ending(
            self.rhythm(beats, voice.density if density is None else density),
            (beats + 1) * TICKS_PER_BEAT,
        )
        absolute = [(t + offset, d) for t, d in times]
        pitches = self.melody(absolute, chords, metre, voice, start_pitch)
        velocities = self.velocities(absolute, pitches, voice)
        return self._notes(
            times, pitches, velocities, offset, offset + (beats + 2) * TICKS_PER_BEAT
        )

    def refit(
        self, notes: Sequence[Note], chords: Sequence[ChordChange], metre: Metre, voice: Voice
    ) -> list[Note]:
        """Notes moved to the nearest fitting pitch under the chords (chord tones on strong
        beats), kept in the voice's register: the repeat of an AAB over new changes."""
        fitted = []
        for note in notes:
            tones, fitting = _colours(self._chord(chords, note.onset), self.key.tonic, self.blues)
            targets = tones if is_strong_beat(metre, note.onset) else fitting
            pool = _pitches(voice.low, voice.high, targets)
            if pool:  # an empty register (a voice outside MIDI's range) keeps the pitch
                note = replace(note, pitch=pool[_nearest(pool, note.pitch)])
            fitted.append(note)
        return fitted

    def vary(
        self,
        notes: list[Note],
        chords: Sequence[ChordChange],
        metre: Metre,
        voice: Voice,
        limit: float,
    ) -> list[Note]:
        """Keep the first part of a phrase and improvise a new ending from where it breaks off."""
        if len(notes) < 4:
            return notes
        keep = notes[: self.rng.randint(len(notes) // 2, len(notes) - 1)]
        start = keep[-1].end
        beats = max(1, int(limit - start) - 1)
        tail = self.phrase(
            chords, metre, start=start, beats=min(beats, 3), voice=voice, start_pitch=keep[-1].pitch
        )
        return keep + [n for n in tail if n.end <= limit]

    def chorus(
        self,
        chords: Sequence[ChordChange],
        metre: Metre,
        *,
        start_bar: int,
        bars: int,
        voice: Voice,
        density: float,
    ) -> list[Note]:
        """One chorus in 4-bar segments. A 12-bar blues is AAB (statement, repeat over the
        IV chord, new answer); other forms alternate statement and variation."""
        bar = metre.beats_per_bar
        segments = max(1, bars // 4)
        shape = "AAB" if bars == 12 else "".join("AB"[i % 2] for i in range(segments))
        notes: list[Note] = []
        motif: list[Note] = []
        motif_start = 0.0
        for index, role in enumerate(shape):
            seg_start = (start_bar + 4 * index) * bar
            seg_end = seg_start + 4 * bar if index < len(shape) - 1 else (start_bar + bars) * bar
            if index > 0 and role == "A" and shape == "AAB" and motif:
                moved = [n.shifted(seg_start - motif_start) for n in motif]
                if self.rng.random() < 0.3:
                    moved = [
                        replace(n, pitch=fold_into_range(n.pitch + 5, voice.low, voice.high))
                        for n in moved
                    ]
                phrase = self.refit(moved, chords, metre, voice)
                if self.rng.random() < 0.4:
                    phrase = self.vary(phrase, chords, metre, voice, seg_end - 1.0)
            elif role == "B" and shape != "AAB" and motif:
                moved = [n.shifted(seg_start - motif_start) for n in motif]
                phrase = self.vary(
                    self.refit(moved, chords, metre, voice), chords, metre, voice, seg_end - 1.0
                )
            else:
                pickup = self.rng.choice((0.0, 0.0, 0.5, 1.0, 1.5, -0.5, -1.0))
                start = max(0.0, seg_start + pickup)
                if notes:
                    start = max(start, notes[-1].end + 1.0)
                longest = int(seg_end - 1.5 - start)
                beats = min(longest, self.rng.randint(4, 8) + (2 if role == "B" else 0))
                if beats < 1:
                    continue
                phrase = self.phrase(
                    chords, metre, start=start, beats=beats, voice=voice, density=density
                )
                phrase = [n for n in phrase if n.end <= seg_end - 0.5]
                if role == "A":
                    motif, motif_start = phrase, seg_start
            if notes:
                phrase = [n for n in phrase if n.onset >= notes[-1].end]
            notes.extend(self.land(phrase, chords, voice, seg_end - 0.5))
        return [_on_grid(n) for n in notes]

    def land(
        self, notes: list[Note], chords: Sequence[ChordChange], voice: Voice, limit: float
    ) -> list[Note]:
        """End on a chord tone, held for a beat when there is room before ``limit``."""
        if not notes:
            return notes
        last = notes[-1]
        tones, _ = _colours(self._chord(chords, last.onset), self.key.tonic, self.blues)
        pool = _pitches(voice.low, voice.high, tones) or (last.pitch,)
        duration = min(max(last.duration, 1.0), limit - last.onset)
        notes[-1] = replace(
            last, pitch=pool[_nearest(pool, last.pitch)], duration=max(last.duration, duration)
        )
        return notes


def _density(call: Phrase) -> float:
    """A call's busyness in [0, 1]: half a note per beat is sparse, 2.5 is bebop-dense."""
    span = max(1.0, call.duration)
    return min(1.0, max(0.0, (len(call.notes) / span - 0.5) / 2.0))


def _guess_key(call: Phrase, chords: Sequence[ChordChange]) -> Key:
    """Without a key, the first chord's root serves as the blues' tonic."""
    for change in (*chords, *call.chords):
        if change.chord is not None:
            return Key(change.chord.root)
    return Key(0)


def answer(
    call: Phrase,
    chords: Sequence[ChordChange] = (),
    bars: int = 2,
    *,
    key: Key | None = None,
    seed: int = 0,
    blues: bool = True,
    start_bar: int = 0,
) -> Phrase:
    """A rule-based answer to ``call``, lasting at most ``bars`` bars.

    ``chords`` are the changes under the answer, in beats from its own bar 0 (the result's
    reference, placed at ``start_bar``). The answer echoes the call (as is, sequenced up or
    down, or with a new ending) or, now and then, makes a fresh phrase; it starts at the
    call's place in the bar (a call a hair before a bar line is on it), keeps the call's
    register, density and dynamics, fits the chords under it and lands on a chord tone.
    Cheap: tens of microseconds per note.
    """
    metre = call.metre
    limit = bars * metre.beats_per_bar
    generator = BluesGenerator(seed, key or _guess_key(call, chords), blues=blues)
    if not call.notes:  # nothing to echo: a phrase of its own in a middle register
        voice = Voice()
        beats = max(1, int(limit) - 2)
        notes = generator.phrase(chords, metre, start=0.0, beats=beats, voice=voice)
    else:
        notes, voice = _echo_call(generator, call, chords, limit)
    notes = [
        replace(n, duration=min(n.duration, limit - n.onset)) for n in notes if n.onset < limit
    ]
    notes = generator.land(notes, chords, voice, limit)
    return Phrase.of((_on_grid(n) for n in notes), chords, metre, start_bar)


def _echo_call(
    generator: BluesGenerator, call: Phrase, chords: Sequence[ChordChange], limit: float
) -> tuple[list[Note], Voice]:
    """The answer's notes before trimming and landing, and the voice it is played in."""
    metre = call.metre
    pitches = [n.pitch for n in call.notes]
    centre = (min(pitches) + max(pitches)) // 2
    span = min(127, max(14, max(pitches) - min(pitches) + 4))  # a register MIDI can play
    low = max(0, min(127 - span, centre - span // 2))
    voice = Voice(
        low,
        low + span,
        round(sum(n.velocity for n in call.notes) / len(call.notes)),
        _density(call),
    )
    start = metre.beat_in_bar(call.onset)
    if start > metre.beats_per_bar - EARLY_DOWNBEAT_BEATS:
        start = 0.0
    delay = start - call.onset
    strategy = generator.rng.choices(("echo", "sequence", "vary", "fresh"), (3, 2, 3, 1))[0]
    if strategy == "fresh":
        beats = max(1, min(int(limit - start) - 1, round(call.duration)))
        notes = generator.phrase(chords, metre, start=start, beats=beats, voice=voice)
    else:
        semitones = generator.rng.choice((-5, -3, -2, 2, 3, 5)) if strategy == "sequence" else 0
        moved = echo(call, delay, semitones=semitones, lo=voice.low, hi=voice.high).notes
        notes = generator.refit(moved, chords, metre, voice)
        if strategy == "vary":
            notes = generator.vary(notes, chords, metre, voice, limit)
    return notes, voice
