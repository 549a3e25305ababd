"""Blues forms as data, forms read from chord markers, and a blues detector.

A :class:`Form` is one chorus: per bar, the chord changes as (beat in bar, symbol). The
symbols are WJazzD-syntax chord symbols written in the form's ``key``; :meth:`Form.in_key`
respells them in another key. Positions wrap around the chorus, so the chord at bar 13
of a 12-bar blues is the chord at bar 1 (bars count from 0 in code).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from improv.music.chords import Chord, QualityClass, parse_chord, transpose_symbol
from improv.music.notes import ChordChange
from improv.music.pitch import Key
from improv.music.time import Metre, to_beats, to_ticks

Bar = tuple[tuple[float, str], ...]
"""The chord changes inside one bar: (beat from the bar line, symbol), sorted by beat."""


@dataclass(frozen=True, slots=True)
class Form:
    """One chorus of a tune's changes. An empty bar continues the chord before it."""

    name: str
    metre: Metre
    bars: tuple[Bar, ...]
    key: int = 0
    mode: str = "major"

    def __post_init__(self) -> None:
        if not self.bars:
            raise ValueError(f"form {self.name!r} has no bars")
        if not any(self.bars):
            raise ValueError(f"form {self.name!r} has no chords")
        for index, bar in enumerate(self.bars):
            beats = [beat for beat, _ in bar]
            if beats != sorted(set(beats)) or any(
                not 0 <= b < self.metre.beats_per_bar for b in beats
            ):
                raise ValueError(f"form {self.name!r}, bar {index}: bad beats {beats}")
            for _, symbol in bar:
                parse_chord(symbol)  # a ChordSymbolError names the bad symbol

    @classmethod
    def parse(
        cls, name: str, text: str, metre: Metre | None = None, key: int = 0, mode: str = "major"
    ) -> Form:
        """Read ``"| C7 | F7 | C7 | G-7 C7 |"``: chords in a bar split it evenly."""
        metre = metre or Metre()
        bars: list[Bar] = []
        for cell in text.strip().strip("|").split("|"):
            symbols = cell.split()
            step = metre.beats_per_bar / max(1, len(symbols))
            bars.append(tuple((quantize(i * step), s) for i, s in enumerate(symbols)))
        return cls(name, metre, tuple(bars), key % 12, mode)

    @property
    def n_bars(self) -> int:
        return len(self.bars)

    @property
    def beats(self) -> float:
        """Length of one chorus in beats."""
        return self.n_bars * self.metre.beats_per_bar

    @property
    def key_name(self) -> str:
        return Key(self.key, self.mode).name

    def in_key(self, tonic: int) -> Form:
        """This form moved to another tonic (pitch class), spelled as that key is."""
        tonic %= 12
        shift = tonic - self.key
        if shift == 0:
            return self  # keep the spelling as written (F#o7 in C, not Gbo7)
        sharps = Key(tonic, self.mode).prefers_sharps
        bars = tuple(
            tuple((beat, transpose_symbol(s, shift, sharps=sharps)) for beat, s in bar)
            for bar in self.bars
        )
        return Form(self.name, self.metre, bars, tonic, self.mode)

    def in_metre(self, metre: Metre) -> Form:
        """The same bars in another metre, each chord at the same share of its bar (as
        :meth:`parse` spreads a bar's chords); chords that would share a tick merge."""
        if metre == self.metre:
            return self
        scale = metre.beats_per_bar / self.metre.beats_per_bar
        bars: list[Bar] = []
        for bar in self.bars:
            placed: dict[float, str] = {}
            for beat, symbol in bar:
                placed[quantize(beat * scale)] = symbol  # the later chord wins a tick
            bars.append(tuple(sorted(placed.items())))
        return Form(self.name, metre, tuple(bars), self.key, self.mode)

    def transposed(self, semitones: int) -> Form:
        return self.in_key(self.key + semitones)

    def symbol_at(self, bar: int, beat: float = 0.0) -> str:
        """The symbol in force at (bar, beat); bars wrap around the chorus, beats past the
        bar line carry into the next bars."""
        ticks = to_ticks(bar * self.metre.beats_per_bar + beat)
        bar, tick = divmod(ticks, self.metre.ticks_per_bar)
        for back in range(self.n_bars + 1):
            changes = self.bars[(bar - back) % self.n_bars]
            if back == 0:
                changes = tuple(c for c in changes if to_ticks(c[0]) <= tick)
            if changes:
                return changes[-1][1]
        raise AssertionError("unreachable: a form has at least one chord")

    def chord_at(self, bar: int, beat: float = 0.0) -> Chord | None:
        """The chord in force at (bar, beat), None under ``NC``."""
        return parse_chord(self.symbol_at(bar, beat))

    def chord_at_beats(self, position: float) -> Chord | None:
        """The chord in force a number of beats after the start of the first chorus."""
        return self.chord_at(0, position)

    def changes(self, choruses: int = 1, start_bar: int = 0) -> tuple[ChordChange, ...]:
        """The chord changes of ``choruses`` choruses, the first starting at ``start_bar``
        (onsets in beats from bar 0). A chord repeated across bars is one change."""
        result: list[ChordChange] = []
        bar_beats = self.metre.beats_per_bar
        for index in range(choruses * self.n_bars):
            entries = self.bars[index % self.n_bars]
            if index == 0 and (not entries or entries[0][0] > 0):
                entries = ((0.0, self.symbol_at(0)), *entries)
            for beat, symbol in entries:
                if result and result[-1].symbol == symbol:
                    continue
                onset = (start_bar + index) * bar_beats + beat
                result.append(ChordChange(onset, symbol, parse_chord(symbol)))
        return tuple(result)

    def __str__(self) -> str:
        cells = [" ".join(s for _, s in bar) or "%" for bar in self.bars]
        return "| " + " | ".join(cells) + " |"


def quantize(beats: float) -> float:
    return to_beats(to_ticks(beats))


_FORMS_IN_C = {
    "blues": ("| C7 | C7 | C7 | C7 | F7 | F7 | C7 | C7 | G7 | F7 | C7 | G7 |", "major"),
    "quick-change": ("| C7 | F7 | C7 | C7 | F7 | F7 | C7 | C7 | G7 | F7 | C7 | G7 |", "major"),
    "jazz-blues": (
        "| C7 | F7 | C7 | G-7 C7 | F7 | F#o7 | C7 | A7 | D-7 | G7 | C7 A7 | D-7 G7 |",
        "major",
    ),
    "minor-blues": (
        "| C-7 | C-7 | C-7 | C-7 | F-7 | F-7 | C-7 | C-7 | Ab7 | G7 | C-7 | Dm7b5 G7 |",
        "minor",
    ),
    "8-bar": ("| C7 | G7 | F7 | F7 | C7 | G7 | C7 | G7 |", "major"),
}
FORM_NAMES: tuple[str, ...] = tuple(_FORMS_IN_C)
"""Names :func:`get_form` knows: basic 12-bar, quick change, jazz blues, minor, 8-bar."""

_FORM_ALIASES = {
    "basic": "blues",
    "12-bar": "blues",
    "quick": "quick-change",
    "jazz": "jazz-blues",
    "minor": "minor-blues",
    "eight-bar": "8-bar",
}


def get_form(name: str, key: int | str | Key = 0, metre: Metre | None = None) -> Form:
    """A named blues form (see :data:`FORM_NAMES`) in a key (pc, ``"Bb"`` or a Key)."""
    canonical = name.strip().lower().replace("_", "-").replace(" ", "-")
    canonical = _FORM_ALIASES.get(canonical, canonical)
    if canonical not in _FORMS_IN_C:
        raise ValueError(f"unknown form {name!r} (known: {', '.join(FORM_NAMES)})")
    if isinstance(key, str):
        key = Key.parse(key)
    tonic = key.tonic if isinstance(key, Key) else key
    text, mode = _FORMS_IN_C[canonical]
    return Form.parse(canonical, text, metre, 0, mode).in_key(tonic)


def form_from_changes(
    changes: Sequence[ChordChange],
    metre: Metre,
    bars: int | None = None,
    *,
    start_bar: int = 0,
    name: str = "changes",
) -> Form:
    """A form read off chord markers: bar ``start_bar`` of the changes becomes the form's
    bar 0; ``bars`` bars (default: up to the bar of the last change). Every bar starts with
    the chord in force at its bar line, so each bar reads on its own."""
    ordered = sorted(changes, key=lambda c: c.onset)
    if not ordered:
        raise ValueError("no chord changes to build a form from")
    ticks = [to_ticks(c.onset) for c in ordered]
    bar_ticks = metre.ticks_per_bar
    if bars is None:
        bars = max(1, ticks[-1] // bar_ticks + 1 - start_bar)
    result: list[Bar] = []
    for index in range(bars):
        lo = (start_bar + index) * bar_ticks
        first = bisect_right(ticks, lo) - 1  # the change in force at the bar line
        entries: list[tuple[float, str]] = []
        for i in range(max(first, 0), bisect_left(ticks, lo + bar_ticks)):
            beat, symbol = to_beats(max(0, ticks[i] - lo)), ordered[i].symbol
            if entries and entries[-1][0] == beat:
                entries.pop()  # two markers at one position: the later one holds
            if not entries or entries[-1][1] != symbol:
                entries.append((beat, symbol))
        result.append(tuple(entries))
    return Form(name, metre, tuple(result))


@dataclass(frozen=True, slots=True)
class BluesMatch:
    """How a form fits a blues: template length, tonic, first full chorus, share matched."""

    bars: int
    tonic: int
    offset: int
    score: float
    choruses: int


@dataclass(frozen=True, slots=True)
class _Template:
    allowed: tuple[frozenset[int], ...]  # per bar: roots (semitones above the tonic)
    landmarks: tuple[tuple[tuple[int, ...], int], ...]  # (bars, root): must be there
    min_score: float


def _template(
    allowed: Sequence[set[int]],
    landmarks: Sequence[tuple[tuple[int, ...], int]],
    min_score: float,
    stretch: int = 1,
) -> _Template:
    """A template; ``stretch`` 2 is the same form at half the harmonic rhythm (24 bars)."""
    bars = tuple(frozenset(a) for a in allowed for _ in range(stretch))
    marks = tuple(
        (tuple(b * stretch + k for b in bs for k in range(stretch)), root) for bs, root in landmarks
    )
    return _Template(bars, marks, min_score)


# Roots (above the tonic) a blues may have in each bar: the basic, quick-change, jazz,
# bebop ("Bird") and minor variants, with their common turnarounds and substitutions.
_TWELVE = (
    {0}, {0, 5}, {0}, {0, 7}, {5}, {5, 6}, {0, 4}, {0, 3, 4, 9}, {2, 5, 7, 8}, {5, 7}, {0, 4},
    {0, 1, 2, 7, 9},
)  # fmt: skip
_EIGHT = ({0}, {0, 5, 7}, {0, 5}, {5, 6, 9}, {0, 2}, {0, 7, 9}, {0, 5}, {0, 2, 7})
_TWELVE_MARKS = (((0,), 0), ((4,), 5))  # I in bar 1, IV in bar 5
_TEMPLATES = (
    _template(_TWELVE, _TWELVE_MARKS, 0.8),
    _template(_TWELVE, _TWELVE_MARKS, 0.8, stretch=2),
    # AABA standards share the 8-bar blues' I-IV moves, so it must fit almost exactly.
    _template(_EIGHT, (((0,), 0), ((1, 2, 3), 5)), 0.95),
)
_MIN_COVERAGE = 0.7  # the matched choruses span most of the form, not one stretch of it


def _is_blues_colour(chord: Chord) -> bool:
    """The IV of a blues is a dominant seventh, a minor chord or a plain triad, not maj7/6
    (the I may be a maj7 in bebop blues)."""
    return chord.quality_class in (QualityClass.DOMINANT, QualityClass.MINOR) or (
        chord.quality == "maj"
    )


def _mask(pcs: Iterable[int]) -> int:
    """A set of pitch classes as a 12-bit mask (fast set tests inside the search)."""
    return sum(1 << (pc % 12) for pc in set(pcs))


def _rotate(mask: int, semitones: int) -> int:
    semitones %= 12
    return ((mask << semitones) | (mask >> (12 - semitones))) & 0xFFF


def _bar_roots(form: Form) -> tuple[list[int], list[int]]:
    """Per bar, as masks: the roots of all its chords, and those of its blues-coloured ones."""
    roots: list[int] = []
    coloured: list[int] = []
    for index, bar in enumerate(form.bars):
        symbols = [form.symbol_at(index), *(s for _, s in bar)]
        chords = [c for c in map(parse_chord, symbols) if c is not None]
        roots.append(_mask(c.root for c in chords))
        coloured.append(_mask(c.root for c in chords if _is_blues_colour(c)))
    return roots, coloured


def match_blues(form: Form, *, strictness: float = 0.0) -> BluesMatch | None:
    """The best reading of a form (one chorus or many, perhaps after pickup bars, the last
    perhaps cut short) as a 12-bar, 24-bar (12 at half speed) or 8-bar blues, or None.

    A reading needs the I and IV landmarks (IV as a dominant, minor or plain triad) in
    most choruses, at least 80 % (8-bar: 95 %) of the bars compared on a blues root, plus
    ``strictness``, and choruses spanning 70 % of the form.
    """
    roots, coloured = _bar_roots(form)
    n = len(roots)
    for template in _TEMPLATES:
        length = len(template.allowed)
        allowed = [_mask(a) for a in template.allowed]
        best: BluesMatch | None = None
        for tonic in range(12):
            keyed = [_rotate(m, tonic) for m in allowed]
            marks = [
                (bars, 1 << ((root + tonic) % 12), root == 5) for bars, root in template.landmarks
            ]
            for offset in range(min(length, n)):
                # choruses from ``offset``; a last one counts when half of it is there
                starts = [s for s in range(offset, n, length) if n - s >= length / 2]
                compared = sum(min(length, n - s) for s in starts)
                if not starts or compared < _MIN_COVERAGE * n:
                    continue
                matched = sum(
                    bool(roots[j] & keyed[(j - offset) % length])
                    for j in range(offset, min(n, starts[-1] + length))
                )
                landmarks = sum(
                    all(
                        any((coloured if iv else roots)[s + b] & bit for b in bars if s + b < n)
                        for bars, bit, iv in marks
                    )
                    for s in starts
                )
                score = matched / compared
                if 2 * landmarks > len(starts) and (best is None or score > best.score):
                    best = BluesMatch(length, tonic, offset, score, len(starts))
        if best is not None and best.score >= template.min_score + strictness:
            return best
    return None


def is_blues(form: Form, *, strictness: float = 0.0) -> bool:
    """Whether a form (e.g. one read from a file's chord markers) looks like a blues."""
    return match_blues(form, strictness=strictness) is not None
