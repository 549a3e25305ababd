"""Processes the harness runs: ``improv jam`` agents, their memory, CPU-burning neighbours.

A spawned agent is watched, not slept on: its stderr is read line by line (the
agent's start-up log line means it listens), its stdout is kept for the ``--json``
summary it prints at exit, and the memory and CPU time of its whole process tree are
sampled from ``/proc`` by a thread of its own (:class:`TreeSampler`, also for an
external agent's ``--pid``). It is stopped as a user would stop it, with SIGINT, so its
shutdown (note-offs, CC 123, the summary) is part of what is measured.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from improv.timebase import now

log = logging.getLogger(__name__)

READY = re.compile(r"\bjam: .*\bBPM\b")
WARNING = re.compile(r"^\s*(?:\[[^]]*\]\s*)?(?:WARNING|ERROR|CRITICAL)\b|^improv-sender: ")
"""The agent's start-up log line (``improv.engine.agent``): it is listening."""


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process (``VmRSS`` in ``/proc/<pid>/status``), None if gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child between fork and exec: the kernel sends it SIGTERM when its parent
    dies, however it dies (SIGKILL included), so no agent or sender is left orphaned."""
    import ctypes

    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def tree_pids(pid: int) -> list[int]:
    """``pid`` and every process below it (the ``children`` of each of its threads)."""
    found = [pid]
    for parent in found:
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                found += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return found


def tree_rss(pid: int) -> int:
    """Resident memory of a process tree, in bytes (0 when it is gone)."""
    return sum(rss_bytes(p) or 0 for p in tree_pids(pid))


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """CPU time a process has used (user + system, with its reaped children's), None if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return sum(int(f) for f in fields[11:15]) / _TICKS  # utime stime cutime cstime


class TreeSampler:
    """Samples resident memory and CPU time of a process and everything below it.

    A thread of its own reads ``/proc`` every ``period_s``: an agent's helpers (improv's
    sender process) count with it. ``rss``: ``(time, bytes)``; ``cpu``: ``(time, CPU
    seconds used so far)``, from which :func:`improv.bench.measure.cpu_figures` takes
    percentages. Stops when the process is gone or on :meth:`stop`.
    """

    def __init__(self, pid: int, period_s: float = 1.0, name: str = "") -> None:
        self.pid = pid
        self.period_s = period_s
        self.rss: list[tuple[float, int]] = []
        self.cpu: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"usage {name or pid}", daemon=True)

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    @property
    def sampling(self) -> bool:
        """Whether its thread still samples: it ends with the process, or on :meth:`stop`."""
        return self._thread.is_alive()

    def sample(self) -> bool:
        """One sample now; False when the process is gone."""
        pids = tree_pids(self.pid)
        t = now()
        rss = [rss_bytes(p) for p in pids]
        cpu = [cpu_seconds(p) for p in pids]
        if rss[0] is None or cpu[0] is None:
            return False
        self.rss.append((t, sum(r or 0 for r in rss)))
        self.cpu.append((t, sum(c or 0.0 for c in cpu)))
        return True

    def _run(self) -> None:
        while self.sample() and not self._stop.wait(self.period_s):
            pass

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)


def improv_command(argv: Sequence[str]) -> list[str]:
    """The command line of ``improv ARGV...`` in this Python."""
    return [sys.executable, "-m", "improv.cli", *argv]


class SpawnedAgent:
    """An agent as a child process (``command``: see :func:`improv_command`)."""

    def __init__(self, command: Sequence[str], name: str, rss_period_s: float = 1.0) -> None:
        self.argv = list(command)
        self.name = name
        self.usage: TreeSampler | None = None  # memory and CPU of it and its children
        self.ready = threading.Event()
        self.exited = threading.Event()
        self._stdout: list[str] = []
        self._stderr: deque[str] = deque(maxlen=200)
        self.warnings: deque[str] = deque(maxlen=50)  # its logged warnings and errors
        self._rss_period_s = rss_period_s
        self._process: subprocess.Popen[str] | None = None
        self._threads: list[threading.Thread] = []

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> int | None:
        return self._process.poll() if self._process is not None else None

    def start(self) -> None:
        env = dict(os.environ, COLUMNS="250", PYTHONUNBUFFERED="1")
        log.debug("spawning %s: %s", self.name, " ".join(self.argv))
        self._process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,  # a Ctrl-C at the harness reaches it only through us
            preexec_fn=die_with_parent,  # and it ends with us, however we end
        )
        assert self._process.stdout is not None and self._process.stderr is not None
        for target, stream in (
            (self._read_stdout, self._process.stdout),
            (self._read_stderr, self._process.stderr),
        ):
            thread = threading.Thread(target=target, args=(stream,), daemon=True)
            thread.start()
            self._threads.append(thread)
        self.usage = TreeSampler(self._process.pid, self._rss_period_s, self.name).start()

    def _read_stdout(self, stream: IO[str]) -> None:
        for line in stream:
            self._stdout.append(line)

    def _read_stderr(self, stream: IO[str]) -> None:
        for line in stream:
            self._stderr.append(line.rstrip())
            if WARNING.search(line):
                self.warnings.append(" ".join(line.split()))
            if not self.ready.is_set() and READY.search(line):
                self.ready.set()
        self.exited.set()

    @property
    def rss(self) -> list[tuple[float, int]]:
        return self.usage.rss if self.usage is not None else []

    @property
    def cpu(self) -> list[tuple[float, float]]:
        return self.usage.cpu if self.usage is not None else []

    def stderr_tail(self, lines: int = 12) -> str:
        return "\n".join(list(self._stderr)[-lines:])

    def stop(self, timeout_s: float = 20.0) -> dict[str, Any] | None:
        """SIGINT, wait for the exit (then SIGTERM, SIGKILL), and the ``--json`` summary."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
            for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0), (None, 5.0)):
                try:
                    process.wait(wait_s)
                    break
                except subprocess.TimeoutExpired:
                    if sig is None:
                        break
                    log.warning("%s did not stop in %.0f s: %s", self.name, wait_s, sig.name)
                    with contextlib.suppress(ProcessLookupError):
                        process.send_signal(sig)
        for thread in self._threads:
            thread.join(2.0)
        if self.usage is not None:
            self.usage.stop()
        return summary_from_stdout("".join(self._stdout))


def summary_from_stdout(text: str) -> dict[str, Any] | None:
    """The last JSON object printed on stdout (``improv jam --json``), or None."""
    text = text.strip()
    if not text:
        return None
    with contextlib.suppress(ValueError):
        value = json.loads(text)
        return value if isinstance(value, dict) else None
    decoder = json.JSONDecoder()
    found: dict[str, Any] | None = None
    for match in re.finditer(r"^\{", text, re.MULTILINE):
        with contextlib.suppress(ValueError):
            value, _end = decoder.raw_decode(text, match.start())
            if isinstance(value, dict):
                found = value
    return found


class Burner:
    """A busy-loop process per core: a noisy neighbour, paused (SIGSTOP) when not wanted."""

    def __init__(self, processes: int | None = None) -> None:
        self.count = processes or os.cpu_count() or 1
        self._procs: list[subprocess.Popen[bytes]] = []
        self.running = False

    @property
    def pids(self) -> list[int]:
        """Its processes' ids, to watch them from outside (none before ``set(True)``)."""
        return [proc.pid for proc in self._procs]

    def set(self, on: bool) -> None:
        if on == self.running:
            return
        if on and not self._procs:
            self._procs = [
                subprocess.Popen(
                    [sys.executable, "-c", "while True: pass"],
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=die_with_parent,
                )
                for _ in range(self.count)
            ]
        else:
            for proc in self._procs:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGCONT if on else signal.SIGSTOP)
        self.running = on

    def close(self) -> None:
        for proc in self._procs:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self._procs = []
        self.running = False
