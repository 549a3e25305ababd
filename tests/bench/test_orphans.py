"""No orphans: the processes ``improv bench latency --spawn`` starts end with it.

The bench is stopped as ``timeout`` stops it (SIGTERM), and as the kernel's OOM killer
would (SIGKILL, no clean-up of its own possible); its agent and the agent's sender are
awaited with pidfds (their death is an event, not a poll with sleeps).
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from improv.bench.procs import tree_pids
from tests.watching import watch_until

ROOT = Path(__file__).resolve().parents[2]
GONE_WITHIN_S = 30.0  # the agent's own shutdown (note-offs, summary) included

pytestmark = [pytest.mark.jack, pytest.mark.realtime]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _spawned(bench_pid: int) -> list[int] | None:
    """The jam and its sender, once both run."""
    kids = tree_pids(bench_pid)[1:]
    jams = [p for p in kids if re.search(r"improv\.cli jam", _cmdline(p))]
    senders = [p for p in kids if "improv.output.sender" in _cmdline(p)]
    return jams + senders if jams and senders else None


def _await_gone(pids: list[int], timeout_s: float) -> list[int]:
    """Wait (pidfd: readable when the process ends) for every pid to end; the living."""
    fds = {}
    for pid in pids:
        try:
            fds[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + timeout_s
    try:
        while fds and (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(list(fds), [], [], left)
            for fd in ready:
                os.close(fd)
                del fds[fd]
        return sorted(fds.values())
    finally:
        for fd in fds:
            os.close(fd)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_spawned_agent_ends_with_the_bench(jack_server: str, sig: signal.Signals) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    bench = subprocess.Popen(
        [
            *(sys.executable, "-m", "improv.cli", "bench", "latency", "--midi-api", "jack"),
            *("--spawn", "--tempo", "240", "--bars", "2", "--turns", "500", "--json"),
            *("--", "--model", "rules"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    spawned: list[int] = []
    try:
        spawned = watch_until(bench, lambda: _spawned(bench.pid), 120.0, "spawned jam")
        bench.send_signal(sig)
        bench.wait(GONE_WITHIN_S)
        living = _await_gone(spawned, GONE_WITHIN_S)
        assert not living, [_cmdline(p) for p in living]
        if sig == signal.SIGTERM:
            assert bench.returncode != -signal.SIGTERM  # handled, not died of it
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait(10)
        for pid in _await_gone(spawned, 0.0):  # a failed run leaves no orphans behind either
            os.kill(pid, signal.SIGKILL)
