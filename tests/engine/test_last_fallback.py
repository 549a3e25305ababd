"""The last fallback never fails: the rules answer any call, and an answer whose
fallback breaks still finishes (logged once, nothing left sounding)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from improv.engine.generator import AnswerRequest, Generator
from improv.engine.responders import rules_answer
from improv.music.forms import get_form
from improv.music.notes import Note
from improv.music.pitch import Key
from improv.music.time import Metre

from .test_generator import Steady, play_answer, request

_FORM = get_form("blues", Key(5), Metre())

notes = st.builds(
    Note,
    pitch=st.integers(0, 127),
    velocity=st.integers(1, 127),
    onset=st.integers(0, 31).map(lambda sixths: sixths / 6.0),
    duration=st.integers(1, 12).map(lambda sixths: sixths / 6.0),
)


def _request(call: list[Note], lo: int, hi: int, seed: int) -> AnswerRequest:
    call = sorted(call, key=lambda n: n.onset)
    start = 8.0
    return AnswerRequest(
        start=start,
        end=start + 8.0,
        call=tuple(call),
        chords=_FORM.changes()[:6],
        metre=Metre(),
        key=Key(5),
        pitch_range=(min(lo, hi), max(lo, hi)),
        seed=seed,
    )


def test_a_call_spanning_the_whole_keyboard_is_answered() -> None:
    """The adversarial case: a call from pitch 0 to 127 (refit reached pitch 128)."""
    call = [Note(0, 90, 0.0, 0.5), Note(127, 90, 1.0, 0.5), Note(64, 90, 2.0, 0.5)]
    for seed in range(40):
        out = rules_answer(_request(call, 0, 127, seed))
        assert out and all(0 <= n.pitch <= 127 for n in out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    call=st.lists(notes, max_size=24),
    lo=st.integers(0, 127),
    hi=st.integers(0, 127),
    seed=st.integers(0, 2**16),
)
def test_the_rules_answer_never_raises_and_stays_in_range(
    call: list[Note], lo: int, hi: int, seed: int
) -> None:
    req = _request(call, lo, hi, seed)
    out = rules_answer(req)
    assert all(0 <= n.pitch <= 127 and 1 <= n.velocity <= 127 for n in out)
    assert all(req.start - 1e-9 <= n.onset < req.end for n in out)


async def test_a_failing_fallback_logs_once_and_the_answer_finishes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The model misses its deadline and the inline rules raise: the answer still ends."""
    primary = Steady("stuck", 60, stall_after=1)

    def broken(_req: AnswerRequest) -> list[Note]:
        raise ValueError("pitch out of MIDI range: 128")

    generator = Generator(primary, [], broken, lookahead_s=0.1, margin_s=0.02)
    loop = asyncio.get_running_loop()
    errors: list[BaseException] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx.get("exception")))
    try:
        with caplog.at_level(logging.WARNING):
            player, scheduled = await play_answer(generator, request(1.0, 5.0))
    finally:
        primary.release.set()
        generator.close()
    assert player.finished and not errors
    assert [source for _, source, _ in scheduled] == ["stuck"]  # what came before the miss
    failures = [r for r in caplog.records if "fallback" in r.getMessage() and r.exc_info]
    assert len(failures) == 1


async def test_a_failing_draft_gives_way_to_the_next() -> None:
    """A fallback draft that raised is skipped; the inline rules still answer."""
    primary = Steady("stuck", 60, stall_after=0)

    class Broken(Steady):
        def respond(self, req, played, position):  # type: ignore[no-untyped-def]
            raise RuntimeError("broken draft")
            yield  # pragma: no cover

    inline = [Note(65, 80, 1.0 + i, 0.5) for i in range(4)]
    generator = Generator(
        primary, [Broken("markov", 60)], lambda r: inline, lookahead_s=0.1, margin_s=0.02
    )
    t0 = time.monotonic()
    try:
        player, scheduled = await play_answer(generator, request(1.0, 5.0))
    finally:
        primary.release.set()
        generator.close()
    assert player.finished and time.monotonic() - t0 < 5.0
    assert scheduled and {source for _, source, _ in scheduled} == {"rules"}
