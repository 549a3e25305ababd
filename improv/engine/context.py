"""The rolling context: what both players played, where, over which chords.

Live MIDI arrives as note-ons and note-offs at monotonic times; the agent converts them
to jam positions (beats) and hands them here. The context keeps the last bars of both
players as grid notes (for phrases, requests and observers) and passes every event on at
once (``sink``), so the responders advance their models' state on their own workers
while the performer plays: when a call ends, nothing is left to encode.

While an answer is being drafted and played, the responders' state runs ahead with
tokens of their own; events are held back then, and at the answer's end the responders
rewind and hear what really happened, answer and performer interleaved in time order.

The models' token stream gives every note a grid tick of its own: a burst of notes
closer together than that (thousands in a second) would push the stream ahead of the
jam by a tick a note, and the models would stay silent until the jam caught up (3,000
notes: a minute). So a note starting less than a tick after the role's last one is
coalesced into it: left out of the context (the models and the call never see it),
counted in :attr:`Context.coalesced` and logged.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from improv.music.chords import Chord, parse_chord
from improv.music.forms import Form
from improv.music.notes import ChordChange, Note, Phrase
from improv.music.time import Metre, quantize_beats, to_beats

log = logging.getLogger(__name__)

CALL = "call"
ANSWER = "answer"


@dataclass(frozen=True, slots=True)
class ContextEvent:
    """One thing that happened in the music, for the responders' rolling state.

    ``kind``: ``"on"`` / ``"off"`` (a note; ``velocity`` on note-ons), ``"start"`` /
    ``"end"`` (a phrase of ``role`` begins or ends), ``"key"`` (the key changes: its
    tonic in ``pitch``), ``"metre"`` (bars of ``metre`` from the bar line at ``at``,
    where the jam position jumps to ``to``, a bar line of it: no time passes between).
    ``at`` is the jam position (beats).
    """

    kind: str
    at: float
    role: str = CALL
    pitch: int = 0
    velocity: int = 0
    metre: Metre | None = None
    to: float = 0.0


_TICK = to_beats(1)

EventSink = Callable[[Sequence[ContextEvent]], None]
RewindSink = Callable[[Sequence[ContextEvent]], None]


class ChordTimeline:
    """The chord in force at any jam position: the form, repeated, changing at choruses.

    Segments are (from beat, form, origin): from ``from beat`` on, the form is read at
    ``position - origin``. A new form starts a chorus (its origin is where it starts); a
    new key keeps the old origin, so the form goes on from the same bar.
    """

    def __init__(self, form: Form) -> None:
        self._segments: list[tuple[float, Form, float]] = [(-math.inf, form, 0.0)]

    def set_form(
        self,
        form: Form,
        from_beat: float,
        *,
        keep_origin: bool = False,
        origin: float | None = None,
    ) -> None:
        """``form`` from ``from_beat``: read from there (a new chorus), from the old
        origin (``keep_origin``: the same bar goes on) or from ``origin``."""
        if origin is None:
            origin = self._segment(from_beat)[2] if keep_origin else from_beat
        self._segments = [s for s in self._segments if s[0] < from_beat]
        self._segments.append((from_beat, form, origin))

    def _segment(self, beats: float) -> tuple[float, Form, float]:
        chosen = self._segments[0]
        for segment in self._segments:
            if segment[0] <= beats + 1e-9:
                chosen = segment
        return chosen

    def form_at(self, beats: float) -> Form:
        return self._segment(beats)[1]

    def symbol_at(self, beats: float) -> str:
        _, form, origin = self._segment(beats)
        return form.symbol_at(0, beats - origin) if beats >= origin else form.symbol_at(0)

    def chord_at(self, beats: float) -> Chord | None:
        return parse_chord(self.symbol_at(beats))

    def changes(self, start: float, end: float) -> tuple[ChordChange, ...]:
        """The changes over ``[start, end)``, the first at ``start`` (checked every
        sixteenth: forms change chords on beats or half beats)."""
        out: list[ChordChange] = []
        step = to_beats(3)
        position = start
        while position < end - 1e-9:
            symbol = self.symbol_at(position)
            if not out or out[-1].symbol != symbol:
                out.append(ChordChange(position, symbol, parse_chord(symbol)))
            position = round(position + step, 6)
        return tuple(out)

    def chorus_start(self, beats: float) -> float:
        """The line of the chorus holding ``beats``."""
        _, form, origin = self._segment(beats)
        return origin + form.beats * math.floor((beats - origin) / form.beats + 1e-9)

    def next_chorus(self, beats: float) -> float:
        """The first chorus line at or after ``beats``."""
        start = self.chorus_start(beats)
        return start if start >= beats - 1e-9 else start + self.form_at(beats).beats


MAX_NOTES = 4096
"""Notes kept at most: 32 bars of sextuplet sixteenths, twice over."""


class Context:
    """Both players' recent notes on the grid, and the responders' rolling input."""

    def __init__(
        self,
        chords: ChordTimeline,
        metre: Metre,
        *,
        keep_bars: int = 32,
        sink: EventSink | None = None,
        rewind: RewindSink | None = None,
    ) -> None:
        self.chords = chords
        self.metre = metre
        self._keep_bars = keep_bars
        self._keep_beats = keep_bars * metre.beats_per_bar
        self._sink = sink
        self._rewind = rewind
        # by time (keep_bars), and by number: a flood of notes at one time stays bounded
        self.notes: deque[tuple[str, Note]] = deque(maxlen=MAX_NOTES)
        self._open: dict[tuple[str, int], tuple[float, int]] = {}
        self._held: list[ContextEvent] | None = None  # events held back during an answer
        self._last_onset: dict[str, float] = {}  # per role: the latest note-on kept
        self.coalesced = 0  # notes left out: less than a tick after the one before

    # --- events -----------------------------------------------------------------------

    def note_on(self, role: str, pitch: int, velocity: int, at: float) -> bool:
        """A note starts; False when it is coalesced into the one before (left out)."""
        at = quantize_beats(at)
        last = self._last_onset.get(role)
        if last is not None and abs(at - last) < _TICK - 1e-9:  # (time may jump back)
            self._coalesce(role)
            return False
        self._last_onset[role] = at
        if (role, pitch) in self._open:  # struck again without a note-off: end it here
            self.note_off(role, pitch, at)
        self._open[(role, pitch)] = (at, velocity)
        self._emit(ContextEvent("on", at, role, pitch, velocity))
        return True

    def _coalesce(self, role: str) -> None:
        self.coalesced += 1
        if self.coalesced == 1 or self.coalesced % 1000 == 0:
            log.warning(
                "input too dense: %s notes less than a tick apart coalesced (%d so far)",
                role,
                self.coalesced,
            )

    def note_off(self, role: str, pitch: int, at: float) -> None:
        opened = self._open.pop((role, pitch), None)
        if opened is None:
            return  # a note-off without its note-on: nothing sounded
        onset, velocity = opened
        end = max(quantize_beats(at), onset + to_beats(1))
        self.notes.append((role, Note(pitch, max(1, velocity), onset, end - onset)))
        self._emit(ContextEvent("off", end, role, pitch))
        self._trim(onset)

    def phrase(self, kind: str, role: str, at: float) -> None:
        """A phrase of ``role`` starts (``"start"``) or ends (``"end"``) at ``at``."""
        self._emit(ContextEvent(kind, quantize_beats(at), role))

    def key_change(self, tonic: int, at: float) -> None:
        """The key changes at ``at`` (the responders re-key their chord input from there)."""
        self._emit(ContextEvent("key", quantize_beats(at), pitch=tonic % 12))

    def metre_change(self, metre: Metre, at: float, to: float) -> None:
        """Bars of ``metre`` from the bar line at ``at``, where the jam jumps to ``to``
        (see :meth:`improv.engine.clock.InternalClock.change_metre`)."""
        self.metre = metre
        self._keep_beats = self._keep_bars * metre.beats_per_bar
        self._emit(ContextEvent("metre", quantize_beats(at), metre=metre, to=to))

    def release_all(self, role: str, at: float) -> None:
        """End every open note of ``role`` (stuck notes, a vanished port, the end)."""
        for r, pitch in [k for k in self._open if k[0] == role]:
            self.note_off(r, pitch, at)

    def _emit(self, event: ContextEvent) -> None:
        if self._held is not None:
            self._held.append(event)
        elif self._sink is not None:
            self._sink((event,))

    def _trim(self, latest: float) -> None:
        while self.notes and self.notes[0][1].onset < latest - self._keep_beats:
            self.notes.popleft()

    # --- answers ----------------------------------------------------------------------

    def hold(self) -> None:
        """An answer is being drafted: keep events until :meth:`resume`."""
        if self._held is None:
            self._held = []

    def resume(self, answer: Sequence[Note], start: float) -> None:
        """The answer is over: the responders rewind, then hear the answer as played and
        what the performer did meanwhile, in time order."""
        held, self._held = self._held or [], None
        events: list[ContextEvent] = list(held)
        if answer:
            events.append(ContextEvent("start", quantize_beats(start), ANSWER))
            for note in answer:
                events.append(ContextEvent("on", note.onset, ANSWER, note.pitch, note.velocity))
                events.append(ContextEvent("off", note.end, ANSWER, note.pitch))
            events.append(ContextEvent("end", max(n.end for n in answer), ANSWER))
        events.sort(key=lambda e: (e.at, e.kind in ("on", "start")))
        for note in answer:
            self.notes.append((ANSWER, note))
        if self._rewind is not None:
            self._rewind(events)

    # --- views ------------------------------------------------------------------------

    def played(self, role: str, start: float, end: float) -> list[Note]:
        """Notes of ``role`` with onsets in ``[start, end)``, sorted (finished notes, plus
        open ones cut at ``end``)."""
        out = [n for r, n in self.notes if r == role and start - 1e-9 <= n.onset < end - 1e-9]
        for (r, pitch), (onset, velocity) in self._open.items():
            if r == role and start - 1e-9 <= onset < end - 1e-9:
                out.append(Note(pitch, max(1, velocity), onset, max(to_beats(1), end - onset)))
        out.sort(key=lambda n: (n.onset, n.pitch))
        return out

    def phrase_of(
        self, role: str, start: float, end: float, notes: Sequence[Note] | None = None
    ) -> Phrase:
        """A finished phrase for observers: onsets from its first bar line, with chords."""
        bar = math.floor(start / self.metre.beats_per_bar + 1e-9)
        origin = self.metre.bar_start(bar)
        chosen = list(notes) if notes is not None else self.played(role, start, end)
        span_end = max([end, *(n.end for n in chosen)])
        changes = self.chords.changes(origin, span_end)
        return Phrase.of(
            [n.shifted(-origin) for n in chosen],
            [ChordChange(c.onset - origin, c.symbol, c.chord) for c in changes],
            self.metre,
            bar,
        )
