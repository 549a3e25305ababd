"""A private mosquitto broker on a free loopback port, for tests, benchmarks and demos.

Started from a temporary config (no persistence, anonymous clients), waited for until
it accepts connections, and killed hard on request, so that a test can take the broker
away mid-jam and bring it back on the same port.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

SEARCH = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")


def find_mosquitto() -> str | None:
    """Path of the mosquitto executable, or None when it is not installed."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((path for path in SEARCH if os.access(path, os.X_OK)), None)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class Mosquitto:
    """One mosquitto process; ``start``/``kill``/``restart`` keep the same port.

    ``extra`` lines go into the listener's config (TLS files, limits).
    """

    def __init__(
        self,
        executable: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        extra: Sequence[str] = (),
        startup_timeout_s: float = 10.0,
    ) -> None:
        found = executable or find_mosquitto()
        if found is None:
            raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto)")
        self.executable = found
        self.host = host
        self.port = port or free_port(host)
        self.extra = tuple(extra)
        self.startup_timeout_s = startup_timeout_s
        self._dir = tempfile.TemporaryDirectory(prefix="improv-mosquitto-")
        self.config = Path(self._dir.name) / "mosquitto.conf"
        self.log = Path(self._dir.name) / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the broker and return once it accepts connections."""
        if self.running:
            return
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            "persistence false",
            # run as root, mosquitto would switch to user "mosquitto" and lose our files
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            *self.extra,
        ]
        self.config.write_text("\n".join(lines) + "\n")
        self._proc = subprocess.Popen(
            [self.executable, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                logged = self.log.read_text(errors="replace") if self.log.exists() else ""
                raise RuntimeError(f"mosquitto exited at start: {err.strip()} {logged.strip()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.01)  # poll: the port opens a few ms after the process starts
        self.kill()
        raise RuntimeError(
            f"mosquitto did not accept connections within {self.startup_timeout_s} s"
        )

    def kill(self) -> None:
        """Take the broker away at once (SIGKILL): no goodbyes, like a crash."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()

    def restart(self) -> None:
        self.kill()
        self.start()

    def close(self) -> None:
        self.kill()
        self._dir.cleanup()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def follow_demo_jam(
    follow: Callable[[str, str], Coroutine[Any, Any, None]],
    *,
    agent_id: str = "demo",
    choruses: int = 2,
) -> None:
    """A private broker, ``improv jam --demo`` publishing to it, and ``follow(url,
    prefix)`` watching it until the jam ends (the MQTT examples' ``--demo``)."""
    import asyncio
    import contextlib
    import sys

    with Mosquitto() as broker, tempfile.TemporaryDirectory() as folder:
        options = ["--choruses", str(choruses), "--record", f"{folder}/demo.mid"]
        options += ["--mqtt", broker.url, "--mqtt-id", agent_id]
        jam = subprocess.Popen(
            [sys.executable, "-m", "improv.cli", "jam", "--demo", *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        watcher = asyncio.create_task(follow(broker.url, f"improv/{agent_id}/"))
        try:
            await asyncio.to_thread(jam.wait)
            await asyncio.sleep(0.5)  # the last messages
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            jam.terminate()
            jam.wait()
