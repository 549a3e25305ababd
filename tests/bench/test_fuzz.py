"""The fuzz benchmark: hostile input through JACK into a running jam, then a call the
model itself must answer. A figure, printed; ``IMPROV_FUZZ_MESSAGES`` sets the size
(default 100,000; docs/benchmarks.md gives the 1,000,000 runs) and ``IMPROV_FUZZ_ROUNDS``
how many floods (default 1), a call after each."""

from __future__ import annotations

import os
from dataclasses import asdict

import pytest

from improv.bench.fuzz import run

pytestmark = [pytest.mark.jack, pytest.mark.bench]

RSS_CEILING_MB = 48  # rtmidi's queue: 4096 slots, each keeps its largest message


async def test_the_model_answers_the_call_after_a_flood(jack_server: str) -> None:
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
