"""The scheduler benchmark runs and reports sane figures (no timing goals here)."""

from __future__ import annotations

from improv.bench.scheduler import NullOutput, run_one
from improv.output.scheduler import Scheduler


def test_run_one_measures_every_message() -> None:
    output = NullOutput()
    result = run_one(lambda spin_s: Scheduler(output, spin_s=spin_s), 240.0, 0.5, "idle", 0.5, True)
    # half a second at 240 BPM: 8 sixteenths (16 messages) and 48 clock ticks
    assert result.messages == 64
    assert output.stats.sent == 65  # and CC 123 when the scheduler stops
    assert 0 <= result.p50_ms <= result.p99_ms <= result.max_ms
