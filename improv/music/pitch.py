"""Pitches, pitch classes and keys.

A *pitch* is a MIDI note number (60 = C4); a *pitch class* (pc) is 0..11 with 0 = C.
Names accept sharps and flats (``#``, ``b``, ``♯``, ``♭``) so that chord symbols, key
signatures and user input spelled either way all land on the same number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTALS = {"#": 1, "♯": 1, "b": -1, "♭": -1}
_PC_PREFIX = re.compile(r"([A-Ga-g])(##|bb|[#b♯♭]?)")
_PITCH = re.compile(r"([A-Ga-g](?:##|bb|[#b♯♭])?)(-?\d+)")


def split_pitch_class(text: str) -> tuple[int, str]:
    """Read a pitch-class name at the start of ``text``: (pc, rest of the text).

    Used by chord and key parsers, whose root comes first (``Bb-7`` -> (10, "-7")).
    """
    match = _PC_PREFIX.match(text)
    if match is None:
        raise ValueError(f"not a pitch-class name: {text!r}")
    letter, accidentals = match.groups()
    pc = _LETTERS[letter.upper()] + sum(_ACCIDENTALS[a] for a in accidentals)
    return pc % 12, text[match.end() :]


def parse_pitch_class(name: str) -> int:
    """Pitch class of a name such as ``"C"``, ``"Bb"``, ``"F#"``, ``"Cb"`` (= 11)."""
    pc, rest = split_pitch_class(name.strip())
    if rest:
        raise ValueError(f"not a pitch-class name: {name!r}")
    return pc


def pc_name(pc: int, *, sharps: bool = False) -> str:
    """Name of a pitch class; flats by default, as on jazz lead sheets."""
    return (SHARP_NAMES if sharps else FLAT_NAMES)[pc % 12]


def pitch_name(pitch: int, *, sharps: bool = False) -> str:
    """Name of a MIDI pitch with its octave, e.g. 70 -> ``"Bb4"`` (60 = C4)."""
    return f"{pc_name(pitch, sharps=sharps)}{pitch // 12 - 1}"


def parse_pitch(name: str) -> int:
    """MIDI pitch of a name with octave (``"Bb4"`` -> 70, ``"C-1"`` -> 0)."""
    match = _PITCH.fullmatch(name.strip())
    if match is None:
        raise ValueError(f"not a pitch name: {name!r} (expected e.g. Bb4)")
    pitch = parse_pitch_class(match.group(1)) + (int(match.group(2)) + 1) * 12
    # Cb4 is B3 and B#3 is C4: the octave belongs to the letter, not the pitch class.
    letter_pc = _LETTERS[match.group(1)[0].upper()]
    pitch += 12 * ((letter_pc + sum(_ACCIDENTALS[a] for a in match.group(1)[1:])) // 12)
    if not 0 <= pitch <= 127:
        raise ValueError(f"pitch out of MIDI range: {name!r}")
    return pitch


def fold_into_range(pitch: int, lo: int, hi: int) -> int:
    """Move a pitch by whole octaves until it lies in [lo, hi] (the range spans an octave+)."""
    if hi - lo < 11:
        raise ValueError(f"range {lo}..{hi} is narrower than an octave")
    while pitch < lo:
        pitch += 12
    while pitch > hi:
        pitch -= 12
    return pitch


_MODE_WORDS = {
    "": "major",
    "maj": "major",
    "major": "major",
    "ionian": "major",
    "m": "minor",
    "min": "minor",
    "minor": "minor",
    "aeolian": "minor",
    # WJazzD tonalities, mapped as its README does: blues, mixolydian, chromatic -> major.
    "blues": "major",
    "mix": "major",
    "mixolydian": "major",
    "chrom": "major",
    "chromatic": "major",
    "dor": "minor",
    "dorian": "minor",
}
_SHARP_MAJOR_KEYS = frozenset({7, 2, 9, 4, 11, 6})  # G D A E B F#


@dataclass(frozen=True, slots=True)
class Key:
    """A key: tonic pitch class and mode (``"major"`` or ``"minor"``)."""

    tonic: int
    mode: str = "major"

    def __post_init__(self) -> None:
        if not 0 <= self.tonic <= 11:
            raise ValueError(f"key tonic must be a pitch class 0..11: {self.tonic}")
        if self.mode not in ("major", "minor"):
            raise ValueError(f"key mode must be 'major' or 'minor': {self.mode!r}")

    @classmethod
    def parse(cls, text: str) -> Key:
        """Read ``"Eb"``, ``"Cm"``, ``"C-"``, ``"A minor"``, WJazzD's ``"Bb-min"``, ``"D-dor"``."""
        try:
            tonic, rest = split_pitch_class(text.strip())
        except ValueError:
            raise ValueError(f"not a key: {text!r} (expected e.g. Eb, Cm, Bb-min)") from None
        word = rest.strip().lstrip("-_ ").lower()
        if rest.strip() == "-":
            word = "min"
        mode = _MODE_WORDS.get(word)
        if mode is None:
            raise ValueError(f"not a key: {text!r} (unknown mode {rest.strip()!r})")
        return cls(tonic, mode)

    @property
    def is_minor(self) -> bool:
        return self.mode == "minor"

    @property
    def relative_major(self) -> int:
        """Tonic pc of the major key sharing this key's signature."""
        return (self.tonic + 3) % 12 if self.is_minor else self.tonic

    @classmethod
    def from_signature(cls, sharps: int, minor: bool) -> Key:
        """The key of a signature: ``sharps`` (negative: flats) and its mode, as a MIDI
        file's key-signature event holds them."""
        return cls((7 * sharps + (9 if minor else 0)) % 12, "minor" if minor else "major")

    @property
    def signature(self) -> int:
        """Its signature's sharps (negative: flats), spelled as its name is: F# major
        has 6 sharps, Db major 5 flats."""
        return (7 * self.relative_major + 5) % 12 - 5

    @property
    def prefers_sharps(self) -> bool:
        """Whether this key's signature is spelled with sharps (G, D, A, E, B, F# major)."""
        return self.relative_major in _SHARP_MAJOR_KEYS

    def spell(self, pc: int) -> str:
        """Name a pitch class the way this key's signature spells it."""
        return pc_name(pc, sharps=self.prefers_sharps)

    def transpose(self, semitones: int) -> Key:
        return Key((self.tonic + semitones) % 12, self.mode)

    @property
    def name(self) -> str:
        """Short name: ``"Eb"`` for Eb major, ``"Cm"`` for C minor."""
        return self.spell(self.tonic) + ("m" if self.is_minor else "")

    def __str__(self) -> str:
        return self.name
