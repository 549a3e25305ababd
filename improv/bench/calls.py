"""The calls the harness plays: generated blues phrases (seeded), or cut from MIDI files.

A call must leave the agent room to take its turn wherever its own bar lines fall:
in trade mode its onsets stop three beats before the end of its bars, so that even
when the agent's bar lines sit up to a bar away from the harness's (an agent on its
own clock) every note lands inside the agent's call or within its half-beat grace
(``improv.engine.turns``); in phrase mode the call ends a beat early so its silence
gap falls inside its bars.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from improv.errors import UsageError
from improv.music.notes import Note
from improv.music.pitch import Key
from improv.music.time import Metre

MIDI_SUFFIXES = (".mid", ".midi")


def call_limits(mode: str, bars: int, metre: Metre) -> tuple[float, float]:
    """(latest onset, latest end) of a call's notes, in beats from its first bar line."""
    total = bars * metre.beats_per_bar
    if mode == "trade":
        return total - 3.0, total - 0.25
    return total - 2.0, total - 1.0


def fit_call(notes: Sequence[Note], mode: str, bars: int, metre: Metre) -> list[Note]:
    """The notes that may be played as a call (see :func:`call_limits`), ends clipped."""
    last_onset, last_end = call_limits(mode, bars, metre)
    fitted: list[Note] = []
    for note in sorted(notes, key=lambda n: (n.onset, n.pitch)):
        if not 0.0 <= note.onset < last_onset:
            continue
        end = min(note.end, last_end)
        if end - note.onset >= 1e-3:
            fitted.append(replace(note, duration=end - note.onset))
    return fitted


class GeneratedCalls:
    """Blues phrases from the rule-based generator, over the form's chords at each bar."""

    def __init__(
        self, seed: int, mode: str, bars: int, metre: Metre, key: str = "F", form: str = "blues"
    ) -> None:
        from improv.craft.rules import BluesGenerator, Voice
        from improv.music.forms import get_form
        from improv.music.pitch import Key

        self.mode, self.bars, self.metre = mode, bars, metre
        tonality = Key.parse(key)
        self._form = get_form(form, tonality, metre)
        self._generator = BluesGenerator(seed, tonality)
        self._voice = Voice()

    def call(self, bar: int) -> list[Note]:
        """A call starting at form bar ``bar`` (onsets from its bar line)."""
        per_bar = self.metre.beats_per_bar
        start = (bar % self._form.n_bars) * per_bar
        chords = self._form.changes(choruses=2)
        last_onset, _ = call_limits(self.mode, self.bars, self.metre)
        for _attempt in range(8):
            notes = self._generator.phrase(
                chords, self.metre, start=start, beats=int(last_onset), voice=self._voice
            )
            call = fit_call([n.shifted(-start) for n in notes], self.mode, self.bars, self.metre)
            if call:
                return call
        raise AssertionError("the blues generator gave no notes")  # its first beat sounds


class FileCalls:
    """Calls cut from MIDI files: each file in ``bars``-bar pieces from its form's first
    bar (a pickup counts for the piece it leads into), empty ones skipped; moved to
    ``key`` when given."""

    def __init__(
        self, paths: Sequence[Path], mode: str, bars: int, metre: Metre, key: str | None = None
    ) -> None:
        from improv.engine.performer import read_performance
        from improv.engine.session import in_key

        self.calls: list[list[Note]] = []
        length = bars * metre.beats_per_bar
        for path in paths:
            performance = read_performance(path)
            notes = performance.notes
            if key is not None:  # moved to the key played, as improv jam --performer does
                notes = tuple(in_key(notes, performance.key, Key.parse(key)))
            pieces = int(max(n.onset for n in notes) // length) + 1
            for piece in range(pieces):
                start = piece * length
                chosen = [n.shifted(-start) for n in notes if start <= n.onset < start + length]
                call = fit_call(chosen, mode, bars, metre)
                if call:
                    self.calls.append(call)
        if not self.calls:
            names = ", ".join(str(p) for p in paths)
            raise UsageError(f"--calls: no playable notes in {names}")
        self._next = 0

    def call(self, bar: int) -> list[Note]:
        call = self.calls[self._next % len(self.calls)]
        self._next += 1
        return call


@dataclass(frozen=True, slots=True)
class CallsPlan:
    """What the calls are played at: a single calls file's own tempo, key, metre and
    chord markers (its changes are the form), as ``improv jam --performer`` reads them,
    where no option says otherwise."""

    tempo: float
    key: str
    metre: Metre
    form: str  # the form's name ("changes" for a file's own)
    changes: Path | None = None  # the file whose own chord markers are the form

    def as_dict(self) -> dict[str, object]:
        """The plan in the ``--json`` summary."""
        return {
            "tempo": self.tempo,
            "key": self.key,
            "metre": str(self.metre),
            "form": self.form,
            "changes": str(self.changes) if self.changes else None,
        }

    def describe(self) -> str:
        """One line for the output: which tempo, key, metre and form were used."""
        form = f"{self.form} (the file's own changes)" if self.changes else self.form
        return f"calls at {self.tempo:g} BPM in {self.key}, {self.metre}, form {form}"


def plan_calls(
    paths: Sequence[Path],
    *,
    tempo: float | None = None,
    key: str | None = None,
    metre: Metre | None = None,
    form: str | None = None,
) -> CallsPlan:
    """The plan for ``paths`` (several files, or none: the options and the defaults);
    the options win over the file, and the file's changes are the form unless ``form``
    or another metre is given (as :func:`improv.engine.session.performance_form`)."""
    from improv.engine.performer import read_performance

    if len(paths) != 1:
        return CallsPlan(tempo or 120.0, key or "F", metre or Metre(), form or "blues")
    performance = read_performance(paths[0])
    played = metre or performance.metre
    own = performance.form is not None and form is None and played == performance.metre
    return CallsPlan(
        tempo=tempo if tempo is not None else round(performance.tempo, 3),
        key=key or performance.key.name,
        metre=played,
        form=performance.form.name if own and performance.form else (form or "blues"),
        changes=paths[0] if own else None,
    )


def midi_files(source: Path) -> list[Path]:
    """A MIDI file, or the MIDI files in a folder (and its ``calls/``), sorted."""
    if source.is_file():
        return [source]
    if source.is_dir():
        found = [
            p
            for folder in (source, source / "calls")
            if folder.is_dir()
            for p in sorted(folder.iterdir())
            if p.suffix.lower() in MIDI_SUFFIXES
        ]
        if found:
            return found
        raise UsageError(f"--calls: no MIDI files in {source}")
    raise UsageError(f"--calls: no such file or folder: {source}")


def examples_folder() -> Path:
    """The repository's ``examples/`` (``--calls examples``)."""
    return Path(__file__).resolve().parents[2] / "examples"
