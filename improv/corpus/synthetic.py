"""A generated corpus in the WJazzD layout: the project's own data, no download needed.

``write_generated_corpus`` writes ``solos/*.mid`` plus a ``solos.csv`` like WJazzD's:
type 0 files at 480 ticks per beat with chord ``marker`` events and a pickup bar, but
also (on purpose, so the reader's other paths get used) some type 1 files and some
with chords in ``text`` or ``cue_marker`` events. Most tunes are blues forms; some are
not (a 32-bar AABA song form, a 16-bar minor tune in 3/4), and two solos share each tune,
as takes do in WJazzD, so a split by tune has something to keep together.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from improv.corpus.index import INDEX_NAME
from improv.corpus.writer import write_solo
from improv.craft.rules import VOICES, BluesGenerator
from improv.music.forms import FORM_NAMES, Form, get_form
from improv.music.notes import ChordChange, Note, Solo
from improv.music.pitch import Key
from improv.music.time import Metre

_SONG_A = "| Cj7 | A-7 | D-7 | G7 | Cj7 | A-7 | D-7 G7 | Cj7 |"
_SONG_B = "| E7 | E7 | A7 | A7 | D7 | D7 | G7 | G7 |"
_MINOR_TUNE = (
    "| C-7 | C-7 | F-7 | F-7 | Dm7b5 | G7 | C-7 | C-7 "
    "| Eb7 | Ab7 | Dbj7 | Dbj7 | Dm7b5 | G7 | C-7 | Dm7b5 G7 |"
)
_TITLES = (
    "Seed Blues",
    "Twelve for Ada",
    "Grid Walk",
    "Shuffle Theory",
    "Blue Motif",
    "Minor Errand",
    "Turnaround Tale",
    "Swing Ratio",
    "Call and Answer",
    "Low Register",
)
_KEYS = ("F", "Bb", "Eb", "C", "G", "Ab")
CSV_COLUMNS = (
    "file",
    "melid",
    "performer",
    "title",
    "solopart",
    "instrument",
    "key",
    "form",
    "harmony_template",
    "signature",
    "style",
    "rhythmfeel",
    "avgtempo",
    "recordingyear",
    "notes",
    "blues",
)


@dataclass(frozen=True, slots=True)
class Tune:
    """One chorus of changes and what solos.csv says about it."""

    title: str
    form: Form
    sections: tuple[tuple[str, int], ...]
    blues: bool

    @property
    def key(self) -> Key:
        return Key(self.form.key, self.form.mode)


def make_tune(index: int, rng: random.Random) -> Tune:
    """Tune ``index``: two in three are blues forms (cycling through them), the rest songs."""
    tonic = Key.parse(rng.choice(_KEYS)).tonic
    title = _TITLES[index % len(_TITLES)]
    if index >= len(_TITLES):
        title += f" No. {index // len(_TITLES) + 1}"
    if index % 3 != 2:
        name = FORM_NAMES[(index - index // 3) % len(FORM_NAMES)]
        form = get_form(name, tonic)
        return Tune(title, form, (("A1", form.n_bars),), True)
    if (index // 3) % 2 == 0:
        text = " ".join((_SONG_A, _SONG_A, _SONG_B, _SONG_A)).replace("| |", "|")
        form = Form.parse("song", text).in_key(tonic)
        return Tune(title, form, (("A1", 8), ("A2", 8), ("B1", 8), ("A3", 8)), False)
    form = Form.parse("minor tune", _MINOR_TUNE, Metre(3, 4), mode="minor").in_key(tonic)
    return Tune(title, form, (("A1", 8), ("B1", 8)), False)


def generate_solo(
    tune: Tune,
    *,
    seed: int,
    instrument: str = "ts",
    choruses: int = 2,
    tempo_bpm: float = 160.0,
    performer: str = "",
) -> Solo:
    """A solo over ``choruses`` choruses of a tune, WJazzD-style: bar 0 is the pickup bar
    (NC), the form starts at bar 1, and the player gets busier chorus by chorus."""
    voice = VOICES.get(instrument, VOICES["ts"])
    generator = BluesGenerator(seed, tune.key, blues=tune.blues)
    metre = tune.form.metre
    chords = (ChordChange(0.0, "NC", None), *tune.form.changes(choruses, start_bar=1))
    notes: list[Note] = []
    for chorus in range(choruses):
        notes += generator.chorus(
            chords,
            metre,
            start_bar=1 + chorus * tune.form.n_bars,
            bars=tune.form.n_bars,
            voice=voice,
            density=min(1.0, voice.density + 0.15 * chorus),
        )
    sections = tuple(
        (label, 1 + chorus * tune.form.n_bars + sum(b for _, b in tune.sections[:i]), bars)
        for chorus in range(choruses)
        for i, (label, bars) in enumerate(tune.sections)
    )
    return Solo(
        notes=tuple(notes),
        chords=chords,
        metre=metre,
        key=tune.key.tonic,
        mode=tune.key.mode,
        tempo_bpm=tempo_bpm,
        title=tune.title,
        performer=performer,
        instrument=instrument,
        blues=tune.blues,
        sections=sections,
        first_bar=1,
    )


def _file_layout(index: int) -> tuple[int, str]:
    """(MIDI type, chord meta type) of solo ``index``: mostly WJazzD's (0, marker)."""
    midi_type = 1 if index % 4 == 3 else 0
    if index % 5 == 2:
        return midi_type, "text"
    if index % 7 == 4:
        return midi_type, "cue_marker"
    return midi_type, "marker"


def _csv_row(solo: Solo, tune: Tune, file: str, index: int) -> dict[str, str]:
    key = Key(solo.key, solo.mode)
    return {
        "file": file,
        "melid": str(index + 1),
        "performer": solo.performer,
        "title": solo.title,
        "solopart": "1",
        "instrument": solo.instrument,
        "key": f"{key.spell(key.tonic)}-{'min' if key.is_minor else 'maj'}",
        "form": ", ".join(f"({label},{bars})" for label, bars in tune.sections),
        "harmony_template": "Blues" if tune.blues else "",
        "signature": str(solo.metre),
        "style": "GENERATED",
        "rhythmfeel": "SWING",
        "avgtempo": f"{solo.tempo_bpm:.1f}",
        "recordingyear": "",
        "notes": str(len(solo.notes)),
        "blues": str(tune.blues),
    }


def write_generated_corpus(
    folder: Path | str, n_solos: int = 12, seed: int = 0, *, choruses: int = 2
) -> list[Path]:
    """Write ``n_solos`` generated solos (two per tune) and their ``solos.csv``.

    Deterministic: the same arguments write the same files. Returns the MIDI paths.
    """
    if n_solos < 1:
        raise ValueError(f"number of solos must be at least 1: {n_solos}")
    root = Path(folder)
    rng = random.Random(seed)
    tunes = [make_tune(i, rng) for i in range((n_solos + 1) // 2)]
    instruments: Sequence[str] = tuple(VOICES)
    paths: list[Path] = []
    rows: list[dict[str, str]] = []
    for index in range(n_solos):
        tune = tunes[index % len(tunes)]
        instrument = instruments[index % len(instruments)]
        solo = generate_solo(
            tune,
            seed=rng.randrange(2**32),
            instrument=instrument,
            choruses=choruses if tune.form.n_bars <= 16 else 1,
            tempo_bpm=float(rng.randrange(100, 230, 4)),
            performer=f"Rule Player {index % 5 + 1}",
        )
        name = f"solos/Gen{index:03d}_{tune.title.replace(' ', '').replace('.', '')}.mid"
        midi_type, chord_meta = _file_layout(index)
        paths.append(write_solo(solo, root / name, midi_type=midi_type, chord_meta=chord_meta))
        rows.append(_csv_row(solo, tune, name, index))
    with (root / INDEX_NAME).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return paths
