"""Dynamics: velocities that follow the call and the line, and a last note that lands.

A model's velocities come from eight bins and tend to sit flat and loud; a player's
follow the line (MUSICIANSHIP.md, "Dynamics"). :func:`shape_dynamics` replaces them:

- **Level and spread from the call**: its median velocity is the answer's centre, its
  interquartile range (kept between 14 and 28) the size of every move, so a soft call
  gets a soft answer and a wild one a livelier answer.
- **Arc**: up with the climb (the note's height in the answer's range) and over the
  phrase (rising to the highest note, or to 30 % of the way when that comes earlier,
  then easing off), so the loudest note is rarely the first.
- **Accents** on strong beats (beats 1 and 3), lighter on the other beats, on off-beat
  anticipations held over the next beat, and on melodic high points; **ghosts** for
  short off-beat passing notes (a step in, a step out, not a chord tone).
- **Handover**: the answer's first beat leans (30 %) toward the call's last beat.
- Never 127 (capped at 124), never flat (the arc moves every note), at least 1.

Durations stay the model's except the last note's, held to at least a beat (twice the
median note) where the window leaves room before its last quarter beat. Deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from statistics import median

from improv.craft import measures
from improv.craft.situation import Situation
from improv.music.notes import Note

DEFAULT_VELOCITY = 80.0
"""The centre when there is no call to follow."""
MIN_SPREAD, MAX_SPREAD = 14.0, 28.0
CEILING = 124
"""No shaped note goes above this: 127 is for a climax the player asks for, not a habit."""
LAST_NOTE_ROOM = 0.25
"""Beats the held last note leaves before the window ends (a breath for the next turn)."""


def _off_beat(beats: float) -> bool:
    return abs(beats - round(beats)) > 1e-6


def _is_ghost(notes: Sequence[Note], i: int, situation: Situation) -> bool:
    """A short off-beat passing note: by step from the last note and to the next, not a
    tone of the chord under it."""
    if not 0 < i < len(notes) - 1:
        return False
    note = notes[i]
    if note.duration > 0.5 + 1e-9 or not _off_beat(note.onset):
        return False
    into = note.pitch - notes[i - 1].pitch
    out = notes[i + 1].pitch - note.pitch
    if not (0 < abs(into) <= 2 and 0 < abs(out) <= 2):
        return False
    change = situation.chord_at(note.onset)
    return change is None or change.chord is None or not change.chord.contains(note.pitch)


def _accent(notes: Sequence[Note], i: int, situation: Situation) -> float:
    """Accent of note ``i`` in units of the spread."""
    note, metre = notes[i], situation.metre
    position = metre.beat_in_bar(note.onset)
    half = metre.beats_per_bar / 2 if metre.numerator % 2 == 0 else metre.beats_per_bar
    accent = 0.0
    if abs(position % half) < 1e-6:
        accent += 0.35
    elif not _off_beat(position):
        accent += 0.15
    elif note.duration >= 0.75 - 1e-9:  # an anticipation held over the beat
        accent += 0.3
    higher_than = [notes[j].pitch for j in (i - 1, i + 1) if 0 <= j < len(notes)]
    if higher_than and all(note.pitch > p for p in higher_than):
        accent += 0.25
    if _is_ghost(notes, i, situation):
        accent -= 0.6
    return accent


def _call_level(situation: Situation) -> tuple[float, float, float]:
    """(centre, spread, last beat's median velocity) from the call."""
    call = situation.call
    if not call:
        return DEFAULT_VELOCITY, 16.0, DEFAULT_VELOCITY
    centre, spread = measures.velocity_stats(call)
    spread = min(MAX_SPREAD, max(MIN_SPREAD, spread))
    last = call[-1].onset
    tail = median(n.velocity for n in call if n.onset >= last - 1.0)
    # room for the moves inside 1..CEILING, however loud or soft the call
    return min(CEILING - spread, max(spread + 1, centre)), spread, float(tail)


def _held_last(notes: list[Note], situation: Situation) -> None:
    """Hold the last note to a beat or twice the median note, where the window allows."""
    last = notes[-1]
    wanted = max(1.0, 2.0 * median(n.duration for n in notes))
    room = situation.end - LAST_NOTE_ROOM - last.onset
    if room > last.duration:
        notes[-1] = replace(last, duration=max(last.duration, min(wanted, room)))


def shape_dynamics(answer: Sequence[Note], situation: Situation) -> list[Note]:
    """The answer with velocities shaped (module docstring), sorted by onset."""
    notes = sorted(answer, key=lambda n: (n.onset, n.pitch))
    if not notes:
        return []
    centre, spread, handover = _call_level(situation)
    pitches = [n.pitch for n in notes]
    low, high = min(pitches), max(pitches)
    count = len(notes)
    peak = max(pitches.index(high) / (count - 1), 0.3) if count > 1 else 0.5
    velocities = []
    for i, note in enumerate(notes):
        climb = (note.pitch - low) / (high - low) if high > low else 0.5
        t = i / (count - 1) if count > 1 else 0.5
        arc = t / peak if t <= peak else 1.0 - 0.6 * (t - peak) / (1.0 - peak)
        level = centre + spread * (0.55 * climb + 0.45 * arc - 0.5)
        level += spread * _accent(notes, i, situation)
        if note.onset < notes[0].onset + 1.0:
            level = 0.7 * level + 0.3 * handover
        velocities.append(level)
    rounded = [max(1, min(CEILING, round(v))) for v in velocities]
    if count > 2 and rounded[0] >= max(rounded[1:]):  # the peak comes later
        rounded[0] = max(1, max(rounded[1:]) - round(0.25 * spread))
    if count > 1 and len(set(rounded)) == 1:  # never flat: the highest note leans out
        top = pitches.index(high)
        rounded[top] += 3 if rounded[top] <= CEILING - 3 else -3
    shaped = [replace(n, velocity=v) for n, v in zip(notes, rounded, strict=True)]
    _held_last(shaped, situation)
    return shaped
