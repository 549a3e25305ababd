"""Processes the harness runs: a spawned agent's readiness, stop and summary; burners."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from improv.bench.measure import cpu_figures
from improv.bench.procs import Burner, SpawnedAgent, TreeSampler, rss_bytes

FAKE_AGENT = """
import json, signal, sys, threading
stop = threading.Event()
signal.signal(signal.SIGINT, lambda *_: stop.set())
print("INFO     jam: blues, F 4/4, 120 BPM, trade 4 bars, model fake", file=sys.stderr, flush=True)
print("[18:50:01] WARNING  no MQTT broker", file=sys.stderr, flush=True)
print("improv-sender: a MIDI message went out 1.2 ms late", file=sys.stderr, flush=True)
stop.wait(30)
print(json.dumps({"turns": 2, "notes_out": 7, "deadline_misses": 0}))
"""


def test_spawned_agent_is_ready_stopped_by_sigint_and_summarised() -> None:
    agent = SpawnedAgent([sys.executable, "-c", FAKE_AGENT], "fake", rss_period_s=0.05)
    agent.start()
    try:
        assert agent.ready.wait(20), agent.stderr_tail()
        assert agent.pid is not None and rss_bytes(agent.pid) is not None
    finally:
        summary = agent.stop(timeout_s=10)
    assert summary == {"turns": 2, "notes_out": 7, "deadline_misses": 0}
    assert agent.returncode == 0
    assert agent.rss and all(b > 0 for _, b in agent.rss)
    assert list(agent.warnings) == [
        "[18:50:01] WARNING no MQTT broker",
        "improv-sender: a MIDI message went out 1.2 ms late",
    ]


def test_an_agent_that_fails_says_why() -> None:
    agent = SpawnedAgent([sys.executable, "-c", "import sys; sys.exit('bad option')"], "bad")
    agent.start()
    assert agent.exited.wait(20)
    assert agent.stop() is None
    assert agent.returncode == 1 and "bad option" in agent.stderr_tail()


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_burner_runs_pauses_and_ends() -> None:
    burner = Burner(processes=1)
    try:
        burner.set(True)
        (pid,) = burner.pids
        assert burner.running and _state(pid) not in {"Z", "X"}  # alive
        burner.set(False)
        assert not burner.running
        deadline = time.monotonic() + 5.0
        while _state(pid) != "T" and time.monotonic() < deadline:
            os.sched_yield()  # SIGSTOP lands asynchronously
        assert _state(pid) == "T"
    finally:
        burner.close()
    assert not burner.pids and not Path(f"/proc/{pid}").exists()  # killed and reaped


PARENT_AND_BUSY_CHILD = """
import subprocess, sys, time
busy = "import time\\nwhile time.process_time() < 0.4: pass"  # 0.4 s of CPU, however slow
child = subprocess.Popen([sys.executable, "-c", busy])
print("started", flush=True)
child.wait()
time.sleep(30)
"""


def test_tree_sampler_counts_the_children_cpu_and_memory() -> None:
    import subprocess

    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT_AND_BUSY_CHILD], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "started"
        sampler = TreeSampler(parent.pid, period_s=0.05)
        assert sampler.sample()
        alone = rss_bytes(parent.pid)
        assert alone is not None and sampler.rss[0][1] > alone  # the child's memory too
        sampler.start()
        deadline = time.monotonic() + 20.0
        while (sampler.cpu[-1][1] - sampler.cpu[0][1]) < 0.35 and time.monotonic() < deadline:
            time.sleep(0.05)  # waiting for the busy child's CPU time to show (reaped or not)
        assert sampler.cpu[-1][1] - sampler.cpu[0][1] >= 0.35
        figures = cpu_figures(sampler.cpu)
        assert (figures["cpu_percent_max"] or 0.0) >= (figures["cpu_percent"] or 0.0) > 0.0
    finally:
        sampler.stop()
        parent.kill()
        parent.wait()
    assert not sampler.sampling


def test_cpu_figures() -> None:
    samples = [(0.0, 1.0), (1.0, 1.5), (2.0, 1.6), (4.0, 1.6)]
    assert cpu_figures(samples) == {"cpu_percent": 15.0, "cpu_percent_max": 50.0}
    assert cpu_figures(samples[:1]) == {}
