"""The band in the jam: the rhythm section's notes, planned a bar ahead and sent by the
same scheduler (the same sending process, the same clock) as improv's answers.

:meth:`BandPlayer.fill` runs on the loop thread every few tens of milliseconds (the
agent's ``band`` task). It plans bars in beats (pure parts, :mod:`improv.craft.band`)
a bar before they sound, and hands the scheduler only the notes due within
:data:`LOOKAHEAD_S`, each turned into a time by the clock at that moment: so the band
follows a tempo change (internal or a MIDI clock master's) without planning again, and
the sending process never computes anything. A part muted by control is silent from
the next beat (its notes from there dropped, what sounds ended there); a transport stop
ends what sounds on the band's channels, and the band comes in again on the beat after
the master starts. Notes too late to send in time are dropped, never sent late.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from improv.craft.band import (
    PART_NAMES,
    BarContext,
    Listener,
    RhythmSection,
)
from improv.engine.clock import MusicalClock
from improv.engine.context import ChordTimeline
from improv.engine.recording import NoteJournal
from improv.io.midi import CC_ALL_NOTES_OFF, control_change
from improv.io.midi.messages import PROGRAM_CHANGE
from improv.music.notes import Note
from improv.music.time import Metre
from improv.output.scheduler import OutputScheduler
from improv.timebase import now

log = logging.getLogger(__name__)

LOOKAHEAD_S = 0.15
"""How far ahead band notes are handed to the scheduler: less than a control change's
lead (a tempo change lands 0.25 s ahead), so no band note is timed by the old tempo."""
PERIOD_S = 0.04
"""How often :meth:`BandPlayer.fill` runs."""
DEFER_S = 0.0001
"""Band notes go out this long after their time: where one falls with one of improv's
(on a beat, say), improv's goes first rather than queued behind a chord and a drum hit
in the one sending thread. A tenth of a millisecond is far below what anyone hears."""
DEFAULT_CHANNELS: Mapping[str, int] = {"bass": 3, "piano": 4, "drums": 10}
"""The band's MIDI channels, 1-16 as musicians count (drums on General MIDI's 10)."""


@dataclass(frozen=True, slots=True)
class BandSettings:
    """Which parts play, how (``sparse`` or ``full``), on which channels (1-16) and GM
    programs (1-128; a part without one picks its own: the drums brushes or sticks)."""

    parts: tuple[str, ...] = PART_NAMES
    mode: str = "full"
    channels: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_CHANNELS))
    programs: Mapping[str, int] = field(default_factory=dict)

    def channel(self, part: str) -> int:
        """The part's channel as MIDI counts it (0-15)."""
        return self.channels.get(part, DEFAULT_CHANNELS[part]) - 1


class BandPlayer:
    """Plays the rhythm section through ``scheduler`` on the jam's clock and form."""

    def __init__(
        self,
        settings: BandSettings,
        scheduler: OutputScheduler,
        *,
        clock: Callable[[], MusicalClock],
        timeline: ChordTimeline,
        metre: Metre,
        swing: float,
        slot_at: Callable[[float], tuple[str, int | None]],
        end_beat: Callable[[], float | None] = lambda: None,
        journal: NoteJournal | None = None,
        seed: int = 0,
        tempo: float = 120.0,
        section: RhythmSection | None = None,
    ) -> None:
        self.settings = settings
        self.section = section or RhythmSection(settings.parts)
        self.listener = Listener()
        self._scheduler = scheduler
        self._clock = clock
        self._timeline = timeline
        self._metre = metre
        self._swing = swing
        self._slot_at = slot_at
        self._end_beat = end_beat
        self._journal = journal
        self._seed = seed
        self._pending: list[tuple[float, int, str, Note]] = []  # (onset, seq, part, note)
        self._seq = 0
        self._next_bar: int | None = None  # None: (re)start at the next beat
        self._from = 0.0  # no note before this position (where the band came in)
        self._mutes: dict[str, list[tuple[float, bool]]] = {p: [] for p in self.section.parts}
        self._programs: dict[str, int] = {}  # the program each part's channel has
        self._first_programs: dict[str, int] = {}  # the first sent: a record's tracks
        self._tempo0 = tempo
        self._metre_due: tuple[float, float, Metre] | None = None  # (at, to, metre)
        self.notes = 0  # notes handed to the scheduler

    @property
    def channels(self) -> list[int]:
        return [self.settings.channel(part) for part in self.section.parts]

    @property
    def metre(self) -> Metre:
        """The metre of the bars it plans: a change's metre from its jump on."""
        return self._metre

    # --- what the agent calls ------------------------------------------------------------

    def hear(self, pitch: int, velocity: int, at: float) -> None:
        """A soloist's note-on (the performer's or improv's) at jam position ``at``."""
        self.listener.hear(pitch, velocity, at)

    def fill(self, until: float) -> int:
        """Plan what is needed and schedule the notes that start before ``until``
        (monotonic seconds); how many were scheduled."""
        clock = self._clock()
        t = now()
        if not clock.running_at(t):
            return 0
        position = clock.beat_at(t)
        if not math.isfinite(position):
            return 0
        # a MIDI clock follower reads no further than its last tick: look ahead by tempo
        horizon = position + max(0.0, until - t) * clock.bpm_at(t) / 60.0
        horizon = max(horizon, clock.beat_at(until))  # past a metre change's jump
        if self._next_bar is None:
            self._start(position, t)
        assert self._next_bar is not None
        while True:
            per_bar = self._metre.beats_per_bar
            due = self._metre_due
            if due is not None and self._next_bar * per_bar >= due[0] - 1e-9:
                self._metre, self._metre_due = due[2], None  # its bars from the jump
                per_bar = due[2].beats_per_bar
                self._next_bar = round(due[1] / per_bar)
            if self._next_bar * per_bar > horizon + per_bar:  # a bar ahead of the horizon
                break
            self._plan(self._next_bar, position)
            self._next_bar += 1
        return self._schedule(clock, horizon, t)

    def set_mute(self, part: str, muted: bool) -> float:
        """Mute or unmute ``part`` from the next beat; returns that jam position."""
        if part not in self.section.parts:
            raise KeyError(part)
        clock = self._clock()
        t = now()
        at = math.floor(clock.beat_at(t) + 1e-9) + 1.0
        changes = self._mutes[part]
        changes.append((at, muted))
        del changes[:-2]  # the latest two say all: one may still lie ahead
        if muted:
            when = clock.time_at(at)
            self._scheduler.cancel_after(
                when if math.isfinite(when) else t, self.settings.channel(part)
            )
        log.info("band: %s %s from beat %g", part, "muted" if muted else "unmuted", at)
        return at

    def mute_changes(self, part: str) -> tuple[tuple[float, bool], ...]:
        """``part``'s latest (jam position, muted) changes, oldest first: where the last
        :meth:`set_mute` (asked for over MQTT, say) takes effect."""
        return tuple(self._mutes[part])

    def muted(self, part: str, at: float) -> bool:
        """Whether ``part`` is muted at jam position ``at``."""
        state = False
        for since, muted in self._mutes.get(part, ()):
            if since <= at + 1e-9:
                state = muted
        return state

    def halt(self) -> None:
        """The transport stopped (or jumped): what sounds ends, nothing more is planned;
        the next :meth:`fill` on a running clock comes in on the next beat."""
        t = now()
        for channel in self.channels:
            self._scheduler.cancel_after(t, channel)
        self._pending.clear()
        self._next_bar = None

    def replan(self, from_beat: float) -> None:
        """The form or key changes at ``from_beat``: plan again from its bar."""
        per_bar = self._metre.beats_per_bar
        bar = math.floor(from_beat / per_bar + 1e-9)
        if self._next_bar is None or self._next_bar <= bar:
            return
        self._pending = [item for item in self._pending if item[0] < bar * per_bar - 1e-9]
        heapq.heapify(self._pending)
        self._next_bar = bar

    def change_metre(self, metre: Metre, at: float, to: float) -> None:
        """Bars of ``metre`` from the bar line at ``at``, where the jam position jumps to
        ``to`` (a bar line of ``metre``): what was planned from ``at`` on goes, and the
        bars from ``to`` are planned in the new metre."""
        self._pending = [item for item in self._pending if item[0] < at - 1e-9]
        heapq.heapify(self._pending)
        when = self._clock().time_at(at)
        if math.isfinite(when):
            for channel in self.channels:
                self._scheduler.cancel_after(when, channel)
        per_bar = self._metre.beats_per_bar
        if self._next_bar is not None and self._next_bar * per_bar > at:
            self._next_bar = round(at / per_bar)
        self._metre_due = (at, to, metre)

    def tracks(self) -> dict[str, tuple[int, int | None]]:
        """Each part's (channel, GM program) for a record of the jam: the program sent
        first (the part's own choice at the jam's tempo before any was sent)."""
        out: dict[str, tuple[int, int | None]] = {}
        for name, part in self.section.parts.items():
            fixed = self.settings.programs.get(name)
            program = self._first_programs.get(name)
            if program is None:
                program = fixed - 1 if fixed is not None else part.program(self._tempo0)
            out[name] = (self.settings.channel(name), program)
        return out

    def all_notes_off(self) -> None:
        """CC 123 on every band channel, at once (shutdown)."""
        for channel in self.channels:
            self._scheduler.send(control_change(channel, CC_ALL_NOTES_OFF, 0))

    # --- inside --------------------------------------------------------------------------

    def _start(self, position: float, t: float) -> None:
        self._from = max(0.0, math.ceil(position - 1e-9))  # after the count-in: bar 0
        self._next_bar = math.floor(self._from / self._metre.beats_per_bar + 1e-9)
        self._pending.clear()
        self.section.reset()

    def _plan(self, bar: int, position: float) -> None:
        context = self._context(bar, position)
        self._programs_for(context)
        for part, notes in self.section.plan(context).items():
            for note in notes:
                self._seq += 1
                heapq.heappush(self._pending, (note.onset, self._seq, part, note))

    def _context(self, bar: int, position: float) -> BarContext:
        per_bar = self._metre.beats_per_bar
        start = bar * per_bar
        form = self._timeline.form_at(start)
        chorus_bar = round((start - self._timeline.chorus_start(start)) / per_bar) % form.n_bars
        owner, left = self._slot_at(start)
        before = self._slot_at(start - per_bar)[0] if bar > 0 else owner
        clock = self._clock()
        return BarContext(
            bar,
            start,
            self._metre,
            self._timeline.chord_at,
            chorus_bar=chorus_bar,
            chorus_bars=form.n_bars,
            slot_ends=left == 1,
            slot_starts=before != owner,
            tempo=clock.bpm_at(now()),
            swing=self._swing,
            mode=self.settings.mode,
            listening=self.listener.recent(position),
            seed=self._seed,
        )

    def _programs_for(self, context: BarContext) -> None:
        """Program changes where a part's sound changes (at the start, brushes at a
        slower tempo), sent before the bar's first note."""
        for name, part in self.section.parts.items():
            fixed = self.settings.programs.get(name)
            program = fixed - 1 if fixed is not None else part.program(context.tempo)
            if program is None or self._programs.get(name) == program:
                continue
            self._programs[name] = program
            self._first_programs.setdefault(name, program)
            status = PROGRAM_CHANGE | self.settings.channel(name)
            self._scheduler.schedule(now(), bytes((status, program)))

    def _schedule(self, clock: MusicalClock, horizon: float, t: float) -> int:
        count = 0
        end = self._end_beat()
        pending = self._pending
        while pending and pending[0][0] <= horizon:
            onset, _seq, part, note = heapq.heappop(pending)
            if onset < self._from - 1e-9 or self.muted(part, onset):
                continue
            if end is not None and onset >= end - 1e-9:
                continue
            stop = note.end if end is None else min(note.end, end)
            on = clock.time_at(onset)
            off = clock.time_at(stop) - 0.002
            if not math.isfinite(on) or on < t + 0.001:
                continue  # never late: a note that cannot go out in time is dropped
            if not math.isfinite(off) or off <= on:
                off = on + 0.01
            self._scheduler.schedule_note(
                note.pitch, note.velocity, on + DEFER_S, off + DEFER_S, self.settings.channel(part)
            )
            if self._journal is not None:
                self._journal.add(part, [Note(note.pitch, note.velocity, onset, stop - onset)])
            count += 1
        self.notes += count
        return count
