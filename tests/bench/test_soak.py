"""The soak benchmark: memory of a process tree, its growth per hour; a short soak."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from improv.bench.procs import rss_bytes, tree_pids, tree_rss
from improv.bench.soak import growth_per_hour, soak

GROWTH_TARGET_MB_PER_HOUR = 10.0


def test_growth_is_the_fitted_slope_after_the_warmup() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(0.0, 600.0, 1.0)
    rss = 200e6 + t * (36e6 / 3600.0) + rng.normal(0, 1e5, len(t))  # 36 MB an hour
    rss[:30] += 50e6  # start-up's transient, before the warm-up ends
    samples = [(float(a), int(b)) for a, b in zip(t, rss, strict=True)]
    assert growth_per_hour(samples) == pytest.approx(36.0, rel=0.05)


def test_the_tree_holds_the_children_and_their_memory() -> None:
    code = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c',"
        " 'import sys; b = b\"x\" * (64 << 20); print(1, flush=True); sys.stdin.read()'],"
        " stdin=subprocess.PIPE)\n"
        "print(child.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert parent.stdout.readline() == "1\n"  # the child holds its 64 MiB (touched)
        assert tree_pids(parent.pid) == [parent.pid, child]
        alone = rss_bytes(parent.pid) or 0
        assert tree_rss(parent.pid) > alone + (32 << 20)
    finally:
        assert parent.stdin is not None
        parent.stdin.close()  # the child's stdin is its own pipe: closed as the parent ends
        parent.wait(10)


@pytest.mark.bench
def test_a_short_soak(tmp_path: Path) -> None:
    result = soak(1.0, ["--tempo", "300", "--bars", "2", "--model", "markov"], tmp_path / "s.mid")
    print(
        f"\nsoak {result.minutes} min: {result.rss_mb_start} -> {result.rss_mb_end} MB, "
        f"{result.rss_growth_mb_per_hour} MB/h (target < {GROWTH_TARGET_MB_PER_HOUR}), "
        f"{result.notes_in} notes in, {result.notes_out} out"
    )
    assert result.samples >= 50 and result.turns and result.notes_in
    assert (tmp_path / "s.mid").is_file()
