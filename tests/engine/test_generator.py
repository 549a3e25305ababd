"""The generator under deadlines: a slow model never makes a note late; the fallback
continues the phrase from where the model stopped."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace

from improv.engine.context import ContextEvent
from improv.engine.generator import (
    AnswerPlayer,
    AnswerRequest,
    Chosen,
    Generator,
    Item,
    shape,
)
from improv.music.notes import Note
from improv.music.pitch import Key
from improv.music.time import Metre

BEAT_S = 0.2  # 300 BPM


def request(start: float, end: float) -> AnswerRequest:
    return AnswerRequest(
        start=start,
        end=end,
        call=(Note(60, 90, 0.0, 0.5),),
        chords=(),
        metre=Metre(),
        key=Key(5),
        pitch_range=(48, 84),
        velocity=80,
    )


class Steady:
    """Yields an eighth-note line; optionally stalls (a model that is too slow)."""

    def __init__(self, name: str, pitch: int, stall_after: int | None = None) -> None:
        self.name = name
        self.pitch = pitch
        self.stall_after = stall_after
        self.release = threading.Event()
        self.heard: list[ContextEvent] = []
        self.rewinds = 0

    def listen(self, events: Sequence[ContextEvent]) -> None:
        self.heard.extend(events)

    def rewind(self) -> None:
        self.rewinds += 1

    def respond(
        self, req: AnswerRequest, played: Sequence[Note], position: float
    ) -> Iterator[Item]:
        beat = req.start
        count = 0
        while beat < req.end:
            if self.stall_after is not None and count == self.stall_after:
                self.release.wait(5.0)  # stuck in a long model step
            yield Note(self.pitch + count % 5, 80, beat, 0.4)
            count += 1
            beat += 0.5

    def learn(self, call: Sequence[Note], req: AnswerRequest) -> None:
        pass


async def play_answer(generator: Generator, req: AnswerRequest) -> tuple[AnswerPlayer, list]:
    loop = asyncio.get_running_loop()
    t0 = time.monotonic() + 0.05

    def time_of(beats: float) -> float:
        return t0 + beats * BEAT_S

    scheduled: list[tuple[Note, str, float]] = []  # note, source, lead (s)

    def play(note: Note, source: str) -> bool:
        lead = time_of(note.onset) - time.monotonic()
        if lead < 0.001:
            return False
        scheduled.append((note, source, lead))
        return True

    done = asyncio.Event()
    player = generator.answer(
        req, loop=loop, time_of=time_of, play=play, on_done=lambda _p: done.set()
    )
    await asyncio.wait_for(done.wait(), 10.0)
    return player, scheduled


async def test_fast_model_plays_every_note_ahead_of_time() -> None:
    primary = Steady("model", 60)
    generator = Generator(primary, [], lambda r: [], lookahead_s=0.15, margin_s=0.01)
    try:
        player, scheduled = await play_answer(generator, request(1.0, 5.0))
    finally:
        generator.close()
    assert [n.onset for n, _, _ in scheduled] == [1.0 + 0.5 * i for i in range(8)]
    assert all(source == "model" and lead > 0.005 for _, source, lead in scheduled)
    assert player.figures.deadline_misses == 0 and player.figures.fallback_notes == 0
    assert player.figures.headroom_ms_min is not None and player.figures.headroom_ms_min > 5


async def test_slow_model_misses_and_the_fallback_continues_seamlessly() -> None:
    primary = Steady("slow-model", 60, stall_after=3)
    fallback = Steady("markov", 72)
    generator = Generator(primary, [fallback], lambda r: [], lookahead_s=0.15, margin_s=0.02)
    try:
        player, scheduled = await play_answer(generator, request(1.0, 5.0))
    finally:
        primary.release.set()
        generator.close()
    sources = [source for _, source, _ in scheduled]
    assert sources[:3] == ["slow-model"] * 3
    assert set(sources[3:]) == {"markov"}
    onsets = [n.onset for n, _, _ in scheduled]
    assert onsets == sorted(onsets) and len(set(onsets)) == len(onsets)  # no gap, no overlap
    assert onsets[3] == 2.5  # the fallback takes over at the very next slot
    assert all(lead > 0.001 for _, _, lead in scheduled)  # never late
    figures = player.figures
    assert figures.deadline_misses == 1
    assert figures.fallback_notes == len(scheduled) - 3
    assert abs(scheduled[3][0].pitch - scheduled[2][0].pitch) <= 6  # octave-matched
    assert generator.stats.deadline_misses == 1


async def test_without_drafts_the_inline_rules_answer() -> None:
    primary = Steady("stuck", 60, stall_after=0)
    inline = [Note(65, 80, 1.0 + i, 0.5) for i in range(4)]
    generator = Generator(primary, [], lambda r: inline, lookahead_s=0.1, margin_s=0.02)
    try:
        player, scheduled = await play_answer(generator, request(1.0, 5.0))
    finally:
        primary.release.set()
        generator.close()
    assert [source for _, source, _ in scheduled] == ["rules"] * len(scheduled)
    assert player.figures.deadline_misses >= 1 and player.figures.fallback_notes == len(scheduled)
    assert all(lead > 0.001 for _, _, lead in scheduled)


async def test_listen_and_rewind_reach_every_responder_on_its_worker() -> None:
    primary, fallback = Steady("model", 60), Steady("markov", 60)
    generator = Generator(primary, [fallback], lambda r: [], lookahead_s=0.1, margin_s=0.01)
    event = ContextEvent("on", 0.0, "call", 60, 90)
    generator.listen([event])
    generator.rewind([event])
    generator.close(wait=True)  # the workers finish their queues
    for responder in (primary, fallback):
        assert responder.heard == [event, event] and responder.rewinds == 1


def test_shape_fits_range_and_window_and_keeps_the_velocity() -> None:
    """Dynamics are the responder's (the craft's dynamics, once): shaping no longer scales
    velocities (it did, after the model's own loud ones: 74-99 % of notes at 127)."""
    req = request(4.0, 8.0)
    assert shape(Note(96, 80, 5.0, 1.0), req) == Note(84, 80, 5.0, 1.0)
    assert shape(Note(30, 80, 5.0, 1.0), req) == Note(54, 80, 5.0, 1.0)
    assert shape(Note(60, 80, 3.5, 1.0), req) is None  # before the answer
    assert shape(Note(60, 80, 8.0, 1.0), req) is None  # after it
    assert shape(Note(60, 80, 7.5, 2.0), req) == Note(60, 80, 7.5, 0.5)  # cut at the end
    loud_call = replace(req, velocity=120)
    assert shape(Note(60, 60, 5.0, 1.0), loud_call) == Note(60, 60, 5.0, 1.0)


class Undecided(Steady):
    """Drafted no candidate in time: says so before any note."""

    def respond(
        self, req: AnswerRequest, played: Sequence[Note], position: float
    ) -> Iterator[Item]:
        self.until = req.compose_until
        yield Chosen(0)


class Choosing(Steady):
    def respond(
        self, req: AnswerRequest, played: Sequence[Note], position: float
    ) -> Iterator[Item]:
        yield Chosen(12, 0.75, {"fill": 0.5}, "inversion")
        yield from super().respond(req, played, position)


class Drafting(Steady):
    """A fallback whose draft takes a while (the Markov model's, on a busy machine)."""

    def respond(
        self, req: AnswerRequest, played: Sequence[Note], position: float
    ) -> Iterator[Item]:
        time.sleep(0.1)  # stands for the draft's computation, not for synchronisation
        yield from super().respond(req, played, position)


async def test_no_candidate_and_no_draft_ready_the_rules_play_at_once() -> None:
    """The fallback drafts wait for the primary's choice (one interpreter lock): when it
    chose nothing, none is ready, and the inline rules play, never late, never silent."""
    primary, fallback = Undecided("model", 60), Drafting("markov", 72)
    inline = [Note(65, 80, 2.0 + i, 0.5) for i in range(3)]
    generator = Generator(primary, [fallback], lambda r: inline, lookahead_s=0.3, margin_s=0.02)
    try:
        player, scheduled = await play_answer(generator, request(2.0, 5.0))
    finally:
        generator.close()
    assert primary.until is not None  # the responder was told when to have chosen
    assert [n for n, _, _ in scheduled] == inline
    assert all(source == "rules" and lead > 0.001 for _, source, lead in scheduled)
    figures = player.figures
    assert figures.deadline_misses == 0 and figures.fallback_notes == 3


async def test_the_chosen_figures_reach_the_answer_figures() -> None:
    generator = Generator(Choosing("model", 60), [], lambda r: [], lookahead_s=0.15, margin_s=0.01)
    try:
        player, scheduled = await play_answer(generator, request(1.0, 3.0))
    finally:
        generator.close()
    figures = player.figures
    assert len(scheduled) == 4 and figures.candidates == 12
    assert (figures.critic_total, figures.critic_parts, figures.transform) == (
        0.75,
        {"fill": 0.5},
        "inversion",
    )
    assert generator.stats.candidates == [12] and generator.stats.transforms == {"inversion": 1}
