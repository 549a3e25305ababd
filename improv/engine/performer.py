"""A simulated performer: plays calls from MIDI files into the agent, in real time.

``improv jam --demo`` and ``--performer FILE.mid`` use it, and so do the tests: it sends
note-ons and note-offs through a MIDI output (the in-process loopback or a real port) on
the agent's own clock, with a scheduler of its own, just as a player at a keyboard would.
In trade mode each call starts on its turn's bar line (every other turn: the performer's
slots); in phrase mode the next call starts on the first bar line a beat after the
agent's answer ended.

:func:`read_performance` reads a performer's file as a band would hear it: its tempo,
time signature, key signature, chord markers (its own changes are the form) and pickup
(WJazzD's bar 0; else the notes before the first chord's bar line).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from improv.engine.agent import Agent, JamObserver
from improv.errors import UsageError
from improv.io.midi import MidiOutput
from improv.music.forms import Form
from improv.music.notes import Note, Phrase
from improv.music.pitch import Key
from improv.music.time import Metre
from improv.output.scheduler import Scheduler
from improv.timebase import now

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Call:
    """One call: notes in beats from its first bar line, and where it came from."""

    notes: tuple[Note, ...]
    source: str = ""


@dataclass(frozen=True, slots=True)
class Performance:
    """A performer's file: notes in beats from the form's bar 0 (a pickup is negative)."""

    notes: tuple[Note, ...]
    tempo: float
    metre: Metre
    key: Key
    form: Form | None  # the file's own changes, one chorus; None without chord markers
    source: str


def read_performance(path: Path) -> Performance:
    """Read a performer's MIDI file; a file that cannot be played is a one-line
    :class:`UsageError` (no notes, tempo 0, SMPTE time, not MIDI)."""
    from dataclasses import replace

    from improv.corpus.index import SoloIndex
    from improv.corpus.reader import MidiReadError, read_midi
    from improv.music.forms import form_from_changes

    try:
        solo = read_midi(path, info=SoloIndex().lookup(path) if path.is_file() else None)
    except MidiReadError as exc:
        raise UsageError(f"--performer {exc}") from None
    if not solo.notes:
        raise UsageError(f"--performer {path}: no notes to play")
    metre = solo.metre
    origin = metre.bar_start(solo.first_bar)
    key = Key(solo.key, solo.mode)
    form = None
    if any(c.chord is not None for c in solo.chords):
        chorus = sum(bars for _, bars in _chorus(solo.sections)) or None
        try:
            form = form_from_changes(
                solo.chords, metre, chorus, start_bar=solo.first_bar, name=path.stem
            )
        except ValueError as exc:
            log.warning("--performer %s: its chords make no form (%s)", path, exc)
        else:
            form = replace(form, key=key.tonic, mode=key.mode)
    return Performance(
        tuple(n.shifted(-origin) for n in solo.notes), solo.tempo_bpm, metre, key, form, str(path)
    )


def _chorus(sections: Sequence[tuple[str, int, int]]) -> list[tuple[str, int]]:
    """One chorus of the annotated sections (they repeat from the first)."""
    out: list[tuple[str, int]] = []
    for label, _start, bars in sections:
        if out and label == out[0][0]:
            break
        out.append((label, bars))
    return out


def calls_from_notes(
    notes: Sequence[Note],
    bars: int,
    beats_per_bar: float,
    source: str = "",
    pickup_beats: float = 0.0,
) -> list[Call]:
    """Cut a performance into calls of ``bars`` bars, keeping those with notes (a long
    MIDI file drives the agent call by call). A note in the last ``pickup_beats`` before
    a call's bar line belongs to that call (a negative onset)."""
    span = bars * beats_per_bar
    out: list[Call] = []
    if not notes:
        return out
    last = max(n.onset for n in notes)
    for index in range(max(0, math.floor((last + pickup_beats) / span)) + 1):
        start = index * span
        chosen = [
            Note(n.pitch, n.velocity, n.onset - start, min(n.duration, start + span - n.onset))
            for n in notes
            if start - pickup_beats <= n.onset < start + span - pickup_beats
        ]
        if chosen:
            out.append(Call(tuple(chosen), f"{source}#{index}"))
    return out


class SimulatedPerformer(JamObserver):
    """Plays ``calls`` in turn (cycling) until the agent stops."""

    def __init__(
        self,
        agent: Agent,
        output: MidiOutput,
        calls: Sequence[Call],
        *,
        channel: int = 0,
    ) -> None:
        if not calls:
            raise ValueError("the performer needs at least one call")
        self.agent = agent
        self.calls = list(calls)
        self.channel = channel
        self.scheduler = Scheduler(output, switch_interval_s=None)
        self.played = 0
        self._answered = asyncio.Event()
        self._answer_end = 0.0

    def on_phrase(self, role: str, phrase: Phrase, turn: int) -> None:
        if role == "answer":
            per_bar = phrase.metre.beats_per_bar
            self._answer_end = phrase.start_bar * per_bar + max(phrase.end, 0.0)
            self._answered.set()

    async def run(self) -> None:
        """Play until cancelled; releases everything on the way out."""
        await self.agent.started.wait()
        self.scheduler.start()
        try:
            await self._play_all()
        finally:
            self.scheduler.stop(release=True)

    async def _play_all(self) -> None:
        config = self.agent.config
        per_bar = self.agent.metre.beats_per_bar
        bars = config.bars
        start_bar = bars if config.mode == "trade" and config.first == "improv" else 0
        index = 0
        while True:
            call = self.calls[index % len(self.calls)]
            await self._play(call, start_bar * per_bar)
            index += 1
            if config.mode == "trade":
                start_bar += 2 * bars
            else:
                self._answered.clear()
                await self._answered.wait()
                start_bar = math.ceil((self._answer_end + 1.0) / per_bar - 1e-9)

    async def _play(self, call: Call, at_beat: float) -> None:
        """Schedule one call from ``at_beat``; returns once it has been handed over."""
        clock = self.agent.clock
        swing = self.agent.swing
        while clock.time_at(at_beat) - now() > 0.5:  # hand over shortly before it starts
            await asyncio.sleep(min(0.25, clock.time_at(at_beat) - now() - 0.5))
        for note in call.notes:
            on = clock.time_at(swing.render(at_beat + note.onset))
            off = clock.time_at(swing.render(at_beat + note.end))
            if on < now() or not math.isfinite(on):
                continue
            self.scheduler.schedule_note(
                note.pitch, note.velocity, on, max(off, on + 0.01), self.channel
            )
        self.played += 1
        end = clock.time_at(at_beat + max(n.end for n in call.notes))
        await asyncio.sleep(max(0.0, end - now()))
