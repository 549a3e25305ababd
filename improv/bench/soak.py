"""Soak: a demo jam played for minutes on end; does its memory grow?

``improv jam --demo`` runs as a child (the simulated performer plays a stream of calls,
the agent answers, the record is kept), and the resident memory of its whole process
tree (the jam and its sender process) is sampled every second from ``/proc``. After a
warm-up the growth is fitted with a straight line and given per hour: a long gig must
not grow without bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from improv.bench.procs import SpawnedAgent, improv_command, tree_rss

WARMUP_S = 30.0
"""Samples before this are left out of the fit: the models and caches settle in."""


@dataclass(frozen=True, slots=True)
class SoakResult:
    minutes: float
    samples: int
    rss_mb_start: float  # after the warm-up
    rss_mb_end: float
    rss_mb_max: float
    rss_growth_mb_per_hour: float  # the fitted slope after the warm-up
    turns: int | None
    notes_in: int | None
    notes_out: int | None
    deadline_misses: int | None
    stopped_by: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def growth_per_hour(samples: list[tuple[float, int]], warmup_s: float = WARMUP_S) -> float:
    """The least-squares slope of RSS over time after ``warmup_s``, in MB per hour."""
    if not samples:
        return 0.0
    t0 = samples[0][0]
    kept = [(t - t0, b) for t, b in samples if t - t0 >= warmup_s] or [
        (t - t0, b) for t, b in samples
    ]
    if len(kept) < 2:
        return 0.0
    t, b = np.asarray(kept, dtype=np.float64).T
    slope = float(np.polyfit(t, b, 1)[0])  # bytes per second
    return slope * 3600.0 / 1e6


def soak(
    minutes: float,
    jam_args: list[str],
    record: Path,
    *,
    period_s: float = 1.0,
    on_sample: Callable[[float, int], None] | None = None,
) -> SoakResult:
    """Play a demo jam for ``minutes`` and measure its process tree's memory."""
    argv = ["jam", "--demo", "--json", "--choruses", "10000", "--record", str(record)]
    agent = SpawnedAgent(improv_command([*argv, *jam_args]), "soak", rss_period_s=3600.0)
    samples: list[tuple[float, int]] = []
    agent.start()
    try:
        if not agent.ready.wait(120.0):
            raise RuntimeError(f"the jam did not start: {agent.stderr_tail()}")
        assert agent.pid is not None
        start = time.monotonic()
        end = start + minutes * 60.0
        while (now := time.monotonic()) < end and agent.returncode is None:
            value = tree_rss(agent.pid)
            if value:
                samples.append((now, value))
                if on_sample is not None:
                    on_sample(now - start, value)
            agent.exited.wait(period_s)
    finally:
        summary = agent.stop()
    if not samples:
        raise RuntimeError(f"no memory samples: {agent.stderr_tail()}")
    t0 = samples[0][0]
    settled = [b for t, b in samples if t - t0 >= WARMUP_S] or [b for _, b in samples]
    summary = summary or {}
    return SoakResult(
        minutes=round((samples[-1][0] - t0) / 60.0, 3),
        samples=len(samples),
        rss_mb_start=round(settled[0] / 1e6, 1),
        rss_mb_end=round(settled[-1] / 1e6, 1),
        rss_mb_max=round(max(b for _, b in samples) / 1e6, 1),
        rss_growth_mb_per_hour=round(growth_per_hour(samples), 2),
        turns=summary.get("turns"),
        notes_in=summary.get("notes_in"),
        notes_out=summary.get("notes_out"),
        deadline_misses=summary.get("deadline_misses"),
        stopped_by=summary.get("stopped_by"),
    )
