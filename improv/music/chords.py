"""Chord symbols (WJazzD and lead-sheet spellings): root, quality, tones, tensions, scale.

WJazzD writes a root, a quality (``7``, ``j7``, ``-7``, ``m7b5``, ``o7``, ``+``, ``sus7``,
``7alt`` ...), tensions as numbers each *followed* by its accidental (``79b13b`` is
7(b9, b13)) and an optional slash bass. Lead sheets put the accidental *before* the number
(``C7b9#11``, ``C7(b9)``) and spell qualities many ways (``maj7``, ``M7``, ``Δ``, ``ø``,
``°7``, ``min7`` ...). :func:`parse_chord` reads both into one normalised :class:`Chord`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from improv.music.pitch import pc_name, split_pitch_class
from improv.music.scales import Scale


class QualityClass(StrEnum):
    """The coarse chord families the token language carries."""

    MAJOR = "maj"
    DOMINANT = "dom"
    MINOR = "min"
    HALF_DIMINISHED = "hdim"
    DIMINISHED = "dim"
    AUGMENTED = "aug"
    SUSPENDED = "sus"


class ChordSymbolError(ValueError):
    """A chord symbol that cannot be read; the message names the symbol."""

    def __init__(self, symbol: str, reason: str) -> None:
        super().__init__(f"unknown chord symbol {symbol!r}: {reason}")
        self.symbol = symbol
        self.reason = reason


QC = QualityClass
QUALITIES: dict[str, tuple[tuple[int, ...], QualityClass]] = {
    "maj": ((0, 4, 7), QC.MAJOR),
    "6": ((0, 4, 7, 9), QC.MAJOR),
    "maj7": ((0, 4, 7, 11), QC.MAJOR),
    "7": ((0, 4, 7, 10), QC.DOMINANT),
    "7alt": ((0, 4, 10), QC.DOMINANT),
    "aug7": ((0, 4, 8, 10), QC.DOMINANT),  # functions as a dominant (V7#5)
    "m": ((0, 3, 7), QC.MINOR),
    "m6": ((0, 3, 7, 9), QC.MINOR),
    "m7": ((0, 3, 7, 10), QC.MINOR),
    "mmaj7": ((0, 3, 7, 11), QC.MINOR),
    "m7b5": ((0, 3, 6, 10), QC.HALF_DIMINISHED),
    "dim": ((0, 3, 6), QC.DIMINISHED),
    "dim7": ((0, 3, 6, 9), QC.DIMINISHED),
    "aug": ((0, 4, 8), QC.AUGMENTED),
    "augmaj7": ((0, 4, 8, 11), QC.AUGMENTED),
    "sus": ((0, 5, 7), QC.SUSPENDED),
    "sus2": ((0, 2, 7), QC.SUSPENDED),
    "7sus": ((0, 5, 7, 10), QC.SUSPENDED),
}
"""Normalised quality name -> (chord-tone intervals above the root, quality class)."""

_QUALITY_BY_TONES = {tones: name for name, (tones, _) in QUALITIES.items()}
_ALT_TENSIONS = (1, 3, 6, 8)  # b9, #9, #11, b13

_UNICODE = str.maketrans("♭♯−–", "b#--")
_NO_CHORD = frozenset({"NC", "N.C.", "N.C", "N/C", "NOCHORD"})
_HALF_DIM = ("m7b5", "-7b5", "min7b5", "mi7b5", "ø7", "Ø7", "ø", "Ø")
_MINOR_MAJOR = (
    "minmaj", "minMaj", "mMaj", "mmaj", "mMA", "mM", "mΔ", "m^", "mj",
    "-maj", "-Maj", "-MA", "-M", "-Δ", "-^", "-j",
)  # fmt: skip
_MAJOR = ("maj", "Maj", "MAJ", "ma", "Ma", "MA", "M", "j", "Δ", "^")
_MAJOR_SEVENTH_MARKS = frozenset({"j", "Δ", "^"})  # alone they mean maj7, not a triad
_MINOR = ("min", "mi", "m", "-")
_SEVENTH_OF = {
    "": "7", "m": "m7", "maj": "maj7", "mmaj": "mmaj7", "aug": "aug7",
    "augmaj": "augmaj7", "dim": "dim7", "hdim": "m7b5", "sus": "7sus",
}  # fmt: skip
_TRIAD_OF = {
    "": "maj", "m": "m", "maj": "maj", "mmaj": "mmaj7", "aug": "aug",
    "augmaj": "augmaj7", "dim": "dim", "hdim": "m7b5", "sus": "sus", "sus2": "sus2",
}  # fmt: skip
_SIXTH_OF = {"": "6", "maj": "6", "m": "m6"}
_EXTENSION_DEGREES = {"9": ("9",), "11": ("9", "11"), "13": ("9", "13")}
_DEGREE = {"2": 2, "4": 5, "5": 7, "6": 9, "9": 2, "11": 5, "13": 9}
_SHIFT = {"": 0, "b": -1, "-": -1, "#": 1, "+": 1}

# WJazzD: number then accidental (``9b``, ``11#``); lead sheet: accidental then number.
_POSTFIX_TENSION = re.compile(r"(13|11|9)([b#]?)")
_PREFIX_TENSION = re.compile(r"(add)?([b#+-]?)(13|11|9|6|5|4|2)")


@dataclass(frozen=True, slots=True)
class Chord:
    """A parsed chord symbol. Pitch classes are absolute (0 = C).

    ``tones`` are the chord tones in stacking order (root, third, fifth, seventh);
    ``tensions`` the added or altered upper notes (9ths, 11ths, 13ths); ``bass`` the slash
    bass, None when the root is the bass.
    """

    symbol: str
    root: int
    quality: str
    quality_class: QualityClass
    tones: tuple[int, ...]
    tensions: tuple[int, ...]
    bass: int | None = None

    @property
    def intervals(self) -> tuple[int, ...]:
        """Chord tones as semitones above the root."""
        return tuple((t - self.root) % 12 for t in self.tones)

    @property
    def pitch_classes(self) -> frozenset[int]:
        """Chord tones and tensions together."""
        return frozenset(self.tones) | frozenset(self.tensions)

    def contains(self, pitch: int) -> bool:
        """Whether a MIDI pitch (or pitch class) is a chord tone."""
        return pitch % 12 in self.tones

    def transposed(self, semitones: int, *, sharps: bool = False) -> Chord:
        """The same chord moved by ``semitones``, its symbol respelled from the new root."""
        chord = parse_chord(transpose_symbol(self.symbol, semitones, sharps=sharps))
        assert chord is not None
        return chord

    def __str__(self) -> str:
        return self.symbol


def _split_symbol(symbol: str) -> tuple[int, str, int | None]:
    """(root pc, quality text, slash-bass pc or None) of a symbol; raises ChordSymbolError."""
    text = symbol.strip().translate(_UNICODE)
    if not text or text[0] not in "ABCDEFG":
        raise ChordSymbolError(symbol, "expected a root note A-G first")
    root, body = split_pitch_class(text)
    bass: int | None = None
    slash = body.rfind("/")
    if slash >= 0 and body[slash + 1 : slash + 2].isalpha():
        try:
            bass_name = body[slash + 1 :].strip()
            if bass_name[:1] not in "ABCDEFG":
                raise ValueError(bass_name)
            bass, extra = split_pitch_class(bass_name)
        except ValueError:
            raise ChordSymbolError(symbol, f"bad slash bass {body[slash + 1 :]!r}") from None
        if extra:
            raise ChordSymbolError(symbol, f"bad slash bass {body[slash + 1 :]!r}")
        body = body[:slash]
    return root, body.replace("6/9", "69"), bass


def _tensions(text: str, *, postfix: bool) -> list[tuple[str, int]] | None:
    """(degree, shift) pairs of a tension string in one of the two syntaxes, or None."""
    pattern = _POSTFIX_TENSION if postfix else _PREFIX_TENSION
    found: list[tuple[str, int]] = []
    pos = 0
    while pos < len(text):
        match = pattern.match(text, pos)
        if match is None:
            return None
        if postfix:
            degree, accidental = match.groups()
        else:
            _, accidental, degree = match.groups()
            if degree == "5" and not accidental:
                return None  # a bare 5 (power chord) is not a tension
        found.append((degree, _SHIFT[accidental]))
        pos = match.end()
    return found


def _parse_quality(body: str) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """(quality name, tone intervals, tension intervals) of the text after the root."""
    bracketed = "(" in body
    text = "".join(ch for ch in body if ch not in "() ,")
    pos = 0

    def take(*options: str) -> str | None:
        nonlocal pos
        for option in options:
            if text.startswith(option, pos):
                pos += len(option)
                return option
        return None

    family = ""
    major_mark: str | None = None
    alt = False
    if take(*_HALF_DIM):
        family = "hdim"
    elif take(*_MINOR_MAJOR):
        family = "mmaj"
    elif text.startswith("madd", pos):
        pos += 1
        family = "m"
    elif major_mark := take(*_MAJOR):
        family = "maj"
    elif take(*_MINOR):
        family = "m"
    elif take("dim", "o", "°"):
        family = "dim"
    elif take("aug", "+"):
        family = "augmaj" if take(*_MAJOR) else "aug"
    elif take("alt"):
        alt = True
    if family == "" and not alt and (sus := take("sus4", "sus2", "sus")):
        family = "sus2" if sus == "sus2" else "sus"
    extension = take("7", "6", "13", "11", "9")
    if take("alt"):
        alt = True
    if family == "" and (sus := take("sus4", "sus2", "sus")):
        family = "sus2" if sus == "sus2" else "sus"
    tensions: list[int] = []
    implied: tuple[str, ...] = ()  # degrees an extended chord (``C13``) brings along
    fifth: int | None = None
    if text[pos:] in ("+", "aug"):
        fifth, pos = 8, len(text)  # ``C7+`` / ``C7aug``
    rest = text[pos:]

    if extension is None:
        quality = "maj7" if major_mark in _MAJOR_SEVENTH_MARKS else _TRIAD_OF[family]
    elif extension == "6":
        if family not in _SIXTH_OF:
            raise ValueError(f"no sixth chord of this kind ({body!r})")
        quality = _SIXTH_OF[family]
    else:
        if family not in _SEVENTH_OF:
            raise ValueError(f"no seventh chord of this kind ({body!r})")
        quality = _SEVENTH_OF[family]
        implied = _EXTENSION_DEGREES.get(extension, ())
    if alt:
        if quality not in ("7", "maj"):
            raise ValueError("'alt' goes with a dominant seventh only")
        quality = "7alt"
        tensions.extend(_ALT_TENSIONS)

    postfix_first = extension in ("7", "6") and not bracketed and rest[:1].isdigit()
    parsed = _tensions(rest, postfix=postfix_first)
    if parsed is None:
        parsed = _tensions(rest, postfix=not postfix_first)
    if parsed is None:
        raise ValueError(f"cannot read {rest!r}")
    for degree, shift in parsed:
        if degree == "5":
            fifth = 7 + shift
        else:
            tensions.append((_DEGREE[degree] + shift) % 12)
    explicit = {degree for degree, _ in parsed}
    tensions.extend(_DEGREE[d] for d in implied if d not in explicit)  # C13b9: b9, not 9

    tones = QUALITIES[quality][0]
    if fifth is not None:
        tones = tuple(sorted({t for t in tones if t not in (6, 7, 8)} | {fifth}))
        quality = _QUALITY_BY_TONES.get(tones, quality)
    return quality, tones, tuple(sorted(set(tensions) - set(tones)))


@lru_cache(maxsize=4096)
def parse_chord(symbol: str) -> Chord | None:
    """Read a chord symbol; None for no chord (``NC``). Unknown symbols raise ChordSymbolError.

    Cached: a corpus repeats a few hundred symbols tens of thousands of times.
    """
    if symbol.strip().upper().replace(" ", "") in _NO_CHORD:
        return None
    root, body, bass = _split_symbol(symbol)
    try:
        quality, intervals, tension_intervals = _parse_quality(body)
    except ValueError as exc:
        raise ChordSymbolError(symbol, str(exc)) from None
    return Chord(
        symbol=symbol.strip(),
        root=root,
        quality=quality,
        quality_class=QUALITIES[quality][1],
        tones=tuple((root + i) % 12 for i in intervals),
        tensions=tuple((root + i) % 12 for i in tension_intervals),
        bass=bass,
    )


def transpose_symbol(symbol: str, semitones: int, *, sharps: bool = False) -> str:
    """A chord symbol moved by ``semitones``, root and bass respelled (flats by default).

    The quality text is kept as written, so WJazzD symbols stay WJazzD symbols; ``NC``
    stays ``NC``.
    """
    if parse_chord(symbol) is None:
        return symbol.strip()
    root, body, bass = _split_symbol(symbol)
    text = pc_name(root + semitones, sharps=sharps) + body
    if bass is not None:
        text += "/" + pc_name(bass + semitones, sharps=sharps)
    return text


_SCALE_CHOICES: dict[str, tuple[str, ...]] = {
    "maj": ("ionian", "lydian"),
    "6": ("ionian", "lydian"),
    "maj7": ("ionian", "lydian"),
    "7": (
        "mixolydian", "lydian_dominant", "mixolydian_b13", "diminished_half_whole",
        "phrygian_dominant", "altered", "whole_tone",
    ),
    "7alt": ("altered",),
    "aug7": ("whole_tone", "altered"),
    "m": ("dorian", "aeolian", "phrygian", "melodic_minor"),
    "m6": ("dorian", "melodic_minor"),
    "m7": ("dorian", "aeolian", "phrygian"),
    "mmaj7": ("melodic_minor", "harmonic_minor"),
    "m7b5": ("locrian", "locrian_natural2"),
    "dim": ("diminished_whole_half",),
    "dim7": ("diminished_whole_half",),
    "aug": ("whole_tone", "lydian_augmented"),
    "augmaj7": ("lydian_augmented",),
    "sus": ("mixolydian", "dorian", "phrygian"),
    "sus2": ("mixolydian", "ionian"),
    "7sus": ("mixolydian", "dorian", "phrygian"),
}  # fmt: skip


def chord_scale(chord: Chord) -> Scale:
    """A scale to play over a chord: the first of the quality's usual choices holding all
    chord tones and tensions (dominant -> mixolydian, 7(#11) -> lydian dominant, 7(b9) ->
    half-whole diminished, 7alt -> altered, m7 -> dorian, m7b5 -> locrian, maj7(#11) ->
    lydian, dim7 -> whole-half diminished ...), else the one covering most of them.
    """
    wanted = chord.pitch_classes
    candidates = [Scale.named(name, chord.root) for name in _SCALE_CHOICES[chord.quality]]
    for scale in candidates:
        if wanted <= scale.pitch_classes:
            return scale
    return max(
        candidates,
        key=lambda s: (set(chord.tones) <= s.pitch_classes, len(wanted & s.pitch_classes)),
    )
