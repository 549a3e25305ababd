"""The fuzz benchmark: hostile input through JACK into a running jam, then a call the
model itself must answer. A figure, printed; ``IMPROV_FUZZ_MESSAGES`` sets the size
(default 100,000; docs/benchmarks.md gives the 1,000,000 runs) and ``IMPROV_FUZZ_ROUNDS``
how many floods (default 1), a call after each."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict

import pytest

from improv.bench.fuzz import run

pytestmark = [pytest.mark.jack, pytest.mark.bench]

RSS_CEILING_MB = 48  # rtmidi's queue (256 slots, each keeps its largest message), caches, heaps
LEVELLING = 0.4  # with 10 rounds or more: the later half grows under this share of the first


async def test_the_model_answers_the_call_after_a_flood(
    jack_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    # pytest keeps every captured log record: the flood's warnings (throttled, about 800
    # a million messages) would grow this process as no jam's logging does
    caplog.set_level(logging.ERROR)
    messages = int(os.environ.get("IMPROV_FUZZ_MESSAGES", "100000"))
    rounds = int(os.environ.get("IMPROV_FUZZ_ROUNDS", "1"))
    figures = await run(messages, model="markov", rounds=rounds)
    for name, value in asdict(figures).items():
        print(f"fuzz {name}: {value}")
    growth = figures.rss_mb_after - figures.rss_mb_before
    print(f"fuzz rss growth: {growth:+.1f} MB (target: flat; under {RSS_CEILING_MB} MB)")
    assert figures.messages_sent == messages * rounds
    assert len(figures.rss_mb_by_round) == rounds
    assert figures.answered_by_model, "the first call after each flood had the model's answer"
    assert figures.malformed_in > 0 and figures.notes_coalesced > 0
    assert growth < RSS_CEILING_MB  # 100 bytes kept per message would be 100 MB a million
    if rounds >= 10:  # bounded structures fill (about 10 M messages), then stop: a leak goes on
        by_round = [figures.rss_mb_before, *figures.rss_mb_by_round]
        half = rounds // 2
        first, later = by_round[half] - by_round[0], by_round[-1] - by_round[half]
        print(f"fuzz rss growth: first {half} rounds {first:+.1f} MB, last {later:+.1f} MB")
        assert later < LEVELLING * max(first, 1.0)
