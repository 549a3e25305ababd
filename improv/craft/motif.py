"""Motif development: cells of the call, transformed as players do, as seeds for answers.

A *cell* is two to five notes of the call worth developing: a figure the player already
repeated, a group between rests, the call's head or its tail. A *seed* is a cell
transformed and placed at the start of the answer's window; the engine lets the model
continue after the seed's last note, so the answer takes something and changes the rest.

The transforms (:data:`TRANSFORMS`):

- ``sequence``: the cell moved onto the chord in force at the answer's start, its first
  note in the same role (the 3rd stays a 3rd, the 9th a 9th). A real sequence (the
  cell's exact intervals, heard as the same cell) where every note then lies in its
  chord's scale or the key's blue notes and no chord tone of the call on a strong beat
  becomes another note; else a tonal one: each note moved by the cell's own intervals
  and keeping its role, a chord tone onto the new chord's tones, a passing note onto
  its scale's other notes (sequences that turned passing notes into chord tones sat
  inside the changes more than players do: models/README.md).
- ``transpose``: the cell moved exactly by the root motion between the two chords (by
  a chord tone when the chord stays).
- ``invert``: the intervals mirrored, from a note in the same role, each landing in
  the scale of the chord under it (so a mirrored step may grow or shrink a semitone).
- ``retrograde``: the cell played backwards (pitches and rhythm), from a note in the
  role its last note played.
- ``augment`` / ``diminish``: as ``sequence``, rhythm twice as long / half as long
  (``diminish`` only where the halves stay on the grid).
- ``displace``: as ``sequence``, started an eighth, a beat or a beat and a half later.

Everything lands inside the window and the pitch range, monophonic, on the tick grid
(for cells on the grid). Velocities are the cell's; :mod:`improv.craft.dynamics` shapes
them later.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from improv.craft import measures
from improv.craft.situation import Situation
from improv.music.chords import Chord
from improv.music.notes import Note
from improv.music.time import Metre, quantize_beats, to_beats, to_ticks
from improv.music.transforms import is_strong_beat

TRANSFORMS = (
    "sequence",
    "transpose",
    "invert",
    "retrograde",
    "augment",
    "diminish",
    "displace",
)
WEIGHTS = {
    "sequence": 2.0,
    "transpose": 4.0,
    "displace": 2.0,
    "augment": 1.0,
    "diminish": 1.0,
    "invert": 0.5,
    "retrograde": 0.5,
}
"""How often each transform is tried, relatively: sequences and displacements are the
jazz player's everyday development, a cell heard again, the exact sequence (the cell
moved by the root motion, ``transpose``) most plainly; inversion and retrograde are
rarer and harder to hear as the same cell. On the selection set, trying ``transpose``
twice as often as the other sequences raised the motif reuse of the chosen answers
against their calls (models/README.md)."""
MIN_CELL, MAX_CELL = 2, 5
GROUP_REST = 0.5
"""A rest of this many beats (or a note of a beat or longer) ends a group of the call."""


@dataclass(frozen=True)
class Seed:
    """A developed cell: what was done, the notes (absolute beats, inside the window,
    monophonic) and the cell of the call it came from."""

    transform: str
    notes: tuple[Note, ...]
    cell: tuple[Note, ...] = ()


# --------------------------------------------------------------------------- cells


def _monophonic(notes: Sequence[Note]) -> list[Note]:
    """The top line: of notes starting together the highest, sorted by onset."""
    line: dict[float, Note] = {}
    for note in notes:
        held = line.get(note.onset)
        if held is None or note.pitch > held.pitch:
            line[note.onset] = note
    return [line[onset] for onset in sorted(line)]


def _groups(line: Sequence[Note]) -> list[list[Note]]:
    """The line cut after rests of :data:`GROUP_REST` beats and after long notes."""
    groups: list[list[Note]] = [[]]
    for i, note in enumerate(line):
        groups[-1].append(note)
        after = line[i + 1].onset - note.end if i + 1 < len(line) else 0.0
        if after >= GROUP_REST - 1e-9 or note.duration >= 1.0 - 1e-9:
            groups.append([])
    return [g for g in groups if g]


def _repeated(line: Sequence[Note]) -> list[list[Note]]:
    """Figures the player played twice (same intervals, not overlapping), longest first."""
    found = []
    steps = measures.intervals(line)
    for size in range(MAX_CELL, 2, -1):  # notes
        seen: dict[tuple[int, ...], int] = {}
        for i in range(len(steps) - size + 2):
            gram = tuple(steps[i : i + size - 1])
            first = seen.setdefault(gram, i)
            if first != i and i - first >= size - 1:
                found.append(list(line[first : first + size]))
    return found


def cells(call: Sequence[Note], metre: Metre) -> list[tuple[Note, ...]]:
    """Cells of the call worth developing, the most telling first: repeated figures,
    groups between rests (their head and tail when longer than a cell), the call's head
    and tail. Each has 2-5 notes, two pitches or more, spans a bar at most; no two share
    both intervals and rhythm."""
    line = _monophonic(call)
    candidates = _repeated(line)
    for group in _groups(line):
        if len(group) <= MAX_CELL:
            candidates.append(group)
        else:
            candidates += [group[:4], group[-4:]]
    candidates += [line[:4], line[-4:]]
    out: list[tuple[Note, ...]] = []
    seen: set[tuple[tuple[int, ...], tuple[int, ...]]] = set()
    for cell in candidates:
        identity = (tuple(measures.intervals(cell)), tuple(measures.iois(cell)))
        if (
            MIN_CELL <= len(cell) <= MAX_CELL
            and len({n.pitch for n in cell}) > 1
            and measures.span(cell) <= metre.beats_per_bar + 1e-9
            and identity not in seen
        ):
            seen.add(identity)
            out.append(tuple(cell))
    return out


# --------------------------------------------------------------------------- pitches


def _nearest(pitch: int, pitch_classes: frozenset[int] | tuple[int, ...]) -> int:
    """The pitch of one of ``pitch_classes`` nearest to ``pitch`` (ties go down)."""
    for distance in range(12):
        for candidate in (pitch - distance, pitch + distance):
            if 0 <= candidate <= 127 and candidate % 12 in pitch_classes:
                return candidate
    return pitch


def _chord_under(situation: Situation, beats: float) -> Chord | None:
    change = situation.chord_at(beats)
    return change.chord if change is not None else None


def _degree_tone(pitch: int, source: Chord | None, target: Chord) -> int:
    """The pitch class of ``target`` playing the role ``pitch`` played in ``source``:
    the same chord degree (root, 3rd, 5th, 7th), else the same distance from the root in
    the target's scale (a 9th stays a tension, not a chord tone)."""
    if source is not None and source.contains(pitch):
        index = source.tones.index(pitch % 12)
        if index < len(target.tones):
            return target.tones[index]
        return _nearest(target.root + (pitch - source.root), target.tones) % 12
    if source is None:
        return _nearest(pitch, target.tones) % 12  # no role known: the nearest chord tone
    return _tension_fit(target.root + (pitch - source.root), target) % 12


def _near_register(pc: int, register: float) -> int:
    """The pitch of pitch class ``pc`` closest to ``register``."""
    base = round(register) - 6
    return base + (pc - base) % 12


def _scale_fit(pitch: int, chord: Chord | None) -> int:
    """The nearest pitch of the chord's scale (the pitch itself under no chord)."""
    if chord is None:
        return pitch
    return _nearest(pitch, measures.scale_of(chord) | frozenset(chord.tones))


def _tension_fit(pitch: int, chord: Chord | None) -> int:
    """The nearest pitch of the chord's scale that is not a chord tone (a passing note
    stays a passing note), else of its scale."""
    if chord is None:
        return pitch
    tensions = measures.scale_of(chord) - frozenset(chord.tones)
    return _nearest(pitch, tensions) if tensions else _scale_fit(pitch, chord)


def _follow(
    cell: Sequence[Note],
    first: int,
    onsets: Sequence[float],
    situation: Situation,
    steps: Sequence[int],
) -> list[int]:
    """Pitches from ``first`` moving by ``steps``; a note that was a chord tone in the
    call lands on a chord tone of the chord under its new onset, the others on its
    scale's other notes: each note keeps its role."""
    pitches = [first]
    for i, step in enumerate(steps, start=1):
        wanted = pitches[-1] + step
        chord = _chord_under(situation, onsets[i])
        was_tone = (old := _chord_under(situation, cell[i].onset)) is not None and old.contains(
            cell[i].pitch
        )
        if chord is not None and was_tone:
            pitches.append(_nearest(wanted, chord.tones))
        else:
            pitches.append(_tension_fit(wanted, chord))
    return pitches


def _fits(pitch: int, chord: Chord | None, blue: frozenset[int]) -> bool:
    """Whether a pitch lies in the chord's scale or among the key's blue notes."""
    if chord is None:
        return True
    pc = pitch % 12
    return pc in measures.scale_of(chord) or pc in blue or chord.contains(pitch)


def _real(
    cell: Sequence[Note], first: int, onsets: Sequence[float], situation: Situation
) -> list[int] | None:
    """The cell's exact intervals from ``first`` (a real sequence), when every note then
    lies in the scale of the chord under it or among the key's blue notes, and a chord
    tone of the call landing on a strong beat is still one; else None."""
    pitches = [first + n.pitch - cell[0].pitch for n in cell]
    blue = measures.blues_scale(situation.key)
    for old, pitch, onset in zip(cell, pitches, onsets, strict=True):
        chord = _chord_under(situation, onset)
        if not _fits(pitch, chord, blue):
            return None
        if chord is not None and is_strong_beat(situation.metre, onset):
            was = _chord_under(situation, old.onset)
            if was is not None and was.contains(old.pitch) and not chord.contains(pitch):
                return None
    return pitches


def _register(situation: Situation) -> float:
    """Where the answer starts: the call's last note (the handover), else mid-range."""
    if situation.call:
        return float(situation.call[-1].pitch)
    low, high = situation.pitch_range
    return (low + high) / 2


def _anchor(cell: Sequence[Note], situation: Situation, start: float) -> int:
    """The seed's first pitch: the cell's first note's role on the chord at ``start``."""
    target = _chord_under(situation, start)
    source = _chord_under(situation, cell[0].onset)
    if target is None:
        return cell[0].pitch
    return _near_register(_degree_tone(cell[0].pitch, source, target), _register(situation))


def _into_range(pitches: list[int], situation: Situation) -> list[int]:
    """Moved by octaves into the pitch range, whole when it fits, else note by note."""
    low, high = situation.pitch_range
    while max(pitches) > high and min(pitches) - 12 >= low:
        pitches = [p - 12 for p in pitches]
    while min(pitches) < low and max(pitches) + 12 <= high:
        pitches = [p + 12 for p in pitches]
    out = []
    for p in pitches:
        while p > high and p - 12 >= 0:
            p -= 12
        while p < low and p + 12 <= 127:
            p += 12
        out.append(p)
    return out


# --------------------------------------------------------------------------- rhythm


def _offsets(cell: Sequence[Note], scale: float) -> tuple[list[float], list[float]]:
    """Onsets from the cell's first note and durations, times ``scale``."""
    first = cell[0].onset
    return [(n.onset - first) * scale for n in cell], [n.duration * scale for n in cell]


def _start(cell: Sequence[Note], situation: Situation, delay: float = 0.0) -> float:
    """The first position at or after the window's start with the cell's place in the
    beat (an off-beat cell stays off the beat), plus ``delay``."""
    phase = cell[0].onset % 1.0
    start = situation.start
    return quantize_beats(start + (phase - start % 1.0) % 1.0 + delay)


def _on_grid(values: Sequence[float]) -> bool:
    return all(abs(to_beats(to_ticks(v)) - v) < 1e-9 for v in values)


def _build(
    cell: Sequence[Note],
    situation: Situation,
    pitches: Sequence[int],
    onsets: Sequence[float],
    durations: Sequence[float],
) -> tuple[Note, ...]:
    """Notes inside the window, monophonic (each ends by the next onset)."""
    notes = []
    fitted = _into_range(list(pitches), situation)
    for i, (pitch, onset, duration) in enumerate(zip(fitted, onsets, durations, strict=True)):
        if onset >= situation.end - 1e-9:
            break
        limit = onsets[i + 1] if i + 1 < len(onsets) else situation.end
        length = min(duration, limit - onset, situation.end - onset)
        if length <= 0:
            break
        notes.append(Note(pitch, cell[i].velocity, onset, length))
    return tuple(notes)


# --------------------------------------------------------------------------- transforms


Transform = Callable[[Sequence[Note], Situation, np.random.Generator], tuple[Note, ...] | None]


def _sequenced(
    cell: Sequence[Note], situation: Situation, scale: float = 1.0, delay: float = 0.0
) -> tuple[Note, ...] | None:
    offsets, durations = _offsets(cell, scale)
    if not _on_grid(offsets + durations):
        return None
    start = _start(cell, situation, delay)
    onsets = [start + o for o in offsets]
    first = _anchor(cell, situation, start)
    pitches = _real(cell, first, onsets, situation) or _follow(
        cell, first, onsets, situation, measures.intervals(cell)
    )
    return _build(cell, situation, pitches, onsets, durations)


def _sequence(
    cell: Sequence[Note], s: Situation, rng: np.random.Generator
) -> tuple[Note, ...] | None:
    return _sequenced(cell, s)


def _augment(
    cell: Sequence[Note], s: Situation, rng: np.random.Generator
) -> tuple[Note, ...] | None:
    return _sequenced(cell, s, scale=2.0)


def _diminish(
    cell: Sequence[Note], s: Situation, rng: np.random.Generator
) -> tuple[Note, ...] | None:
    return _sequenced(cell, s, scale=0.5)


def _displace(
    cell: Sequence[Note], s: Situation, rng: np.random.Generator
) -> tuple[Note, ...] | None:
    return _sequenced(cell, s, delay=float(rng.choice([0.5, 1.0, 1.5])))


def _transpose(
    cell: Sequence[Note], s: Situation, rng: np.random.Generator
) -> tuple[Note, ...] | None:
    start = _start(cell, s)
    source, target = _chord_under(s, cell[0].onset), _chord_under(s, start)
    shift = 0
    if source is not None and target is not None:
        shift = (target.root - source.root + 6) % 12 - 6
    if shift == 0 and target is not None:  # the chord stays: move to another chord tone
        others = [p for p in range(cell[0].pitch - 6, cell[0].pitch + 7) if target.contains(p)]
        others = [p for p in others if p != cell[0].pitch] or [cell[0].pitch + 12]
        shift = int(rng.choice(others)) - cell[0].pitch
    offsets, durations = _offsets(cell, 1.0)
    base = cell[0].pitch + shift
    octave = round((_register(s) - base) / 12) * 12
    pitches = [n.pitch + shift + octave for n in cell]
    return _build(cell, s, pitches, [start + o for o in offsets], durations)


def _invert(
    cell: Sequence[Note], s: Situation, rng: np.random.Generator
) -> tuple[Note, ...] | None:
    offsets, durations = _offsets(cell, 1.0)
    start = _start(cell, s)
    onsets = [start + o for o in offsets]
    pitches = [_anchor(cell, s, start)]
    for i, step in enumerate(measures.intervals(cell), start=1):
        pitches.append(_scale_fit(pitches[-1] - step, _chord_under(s, onsets[i])))
    return _build(cell, s, pitches, onsets, durations)


def _retrograde(
    cell: Sequence[Note], s: Situation, rng: np.random.Generator
) -> tuple[Note, ...] | None:
    first, end = cell[0].onset, max(n.end for n in cell)
    backwards = sorted(
        (Note(n.pitch, n.velocity, first + (end - n.end), n.duration) for n in cell),
        key=lambda n: n.onset,
    )
    offsets, durations = _offsets(backwards, 1.0)
    start = _start(cell, s)
    onsets = [start + o for o in offsets]
    target = _chord_under(s, start)
    base = backwards[0].pitch
    role = base if target is None else _degree_tone(base, _chord_under(s, cell[-1].onset), target)
    anchor = _near_register(role % 12, _register(s))
    pitches = [anchor] + [
        _scale_fit(anchor + n.pitch - base, _chord_under(s, onsets[i]))
        for i, n in enumerate(backwards[1:], start=1)
    ]
    return _build(backwards, s, pitches, onsets, durations)


_TRANSFORMS: dict[str, Transform] = {
    "sequence": _sequence,
    "transpose": _transpose,
    "invert": _invert,
    "retrograde": _retrograde,
    "augment": _augment,
    "diminish": _diminish,
    "displace": _displace,
}
assert tuple(_TRANSFORMS) == TRANSFORMS


def develop(
    cell: Sequence[Note], transform: str, situation: Situation, rng: np.random.Generator
) -> Seed | None:
    """One cell developed by one transform, or None where it does not fit (a rhythm off
    the grid, fewer than two notes left in the window)."""
    notes = _TRANSFORMS[transform](cell, situation, rng)
    if notes is None or len(notes) < MIN_CELL:
        return None
    return Seed(transform, notes, tuple(cell))


def seeds(situation: Situation, rng: np.random.Generator, count: int) -> list[Seed]:
    """Up to ``count`` seeds: cells of the call (the more telling more often; cells of
    three notes or more where the call has them, one interval being chance) developed by
    transforms (as often as :data:`WEIGHTS` says) in a random order, each (cell,
    transform) once."""
    found = cells(situation.call, situation.metre)
    found = [c for c in found if len(c) > MIN_CELL] or found  # one interval is chance
    if not found or count <= 0 or situation.length <= 0:
        return []
    pairs = [(i, t) for i in range(len(found)) for t in TRANSFORMS]
    weights = np.array([WEIGHTS[t] / (i + 1) for i, t in pairs])
    keys = rng.random(len(pairs)) ** (1.0 / weights)  # a weighted random order
    out: list[Seed] = []
    for k in np.argsort(-keys):
        index, transform = pairs[int(k)]
        seed = develop(found[index], transform, situation, rng)
        if seed is not None:
            out.append(seed)
            if len(out) == count:
                break
    return out
