"""Watching a child process: its stderr is drained while a condition is checked."""

from __future__ import annotations

import os
import select
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def watch_until(
    proc: subprocess.Popen[bytes], found: Callable[[], T | None], timeout_s: float, what: str
) -> T:
    """Read ``proc``'s stderr (so it never blocks on a full pipe) until ``found()``
    returns something, which is returned; an AssertionError with the log's tail after
    ``timeout_s`` or when the process ends first."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout_s
    log = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.5)
        if ready:
            chunk = os.read(proc.stderr.fileno(), 65536)
            assert chunk, f"it ended before {what}: {log.decode()[-2000:]}"
            log += chunk
        if (value := found()) is not None:
            return value
    raise AssertionError(f"no {what} in {timeout_s} s: {log.decode()[-2000:]}")
