"""An external MIDI clock master, as a process of its own: ``python -m tests.engine.master``.

It opens a virtual JACK output (client ``master``), or connects to the input port named
by its argument, says ``ready`` on stdout, and sends
what its stdin asks, each line ``TIME HEX`` (a ``time.monotonic()`` time, the same
clock in every process of the machine, and the message's bytes), at that time through
a scheduler thread, as a drum machine or a DAW would. End of input: it stops and closes.
The test side is :class:`Master`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from improv.io.midi import CLOCK, CONTINUE, SONG_POSITION, START, STOP, note_off, note_on

PPQN = 24


def main() -> int:
    from improv.io import midi
    from improv.output.scheduler import Scheduler

    to = sys.argv[1] if len(sys.argv) > 1 else None
    if to is None:
        port = midi.open_output(virtual=True, api="jack", client_name="master")
    else:
        port = midi.open_output(to, api="jack", client_name="master", wait_s=5.0)
    scheduler = Scheduler(port, switch_interval_s=None)
    scheduler.start()
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            at, data = line.split()
            scheduler.schedule(float(at), bytes.fromhex(data))
    finally:
        scheduler.stop(release=True)
        port.close()
    return 0


class Master:
    """The test's handle on a master process: ``async with Master() as master``."""

    def __init__(self, bpm: float = 300.0, to: str | None = None) -> None:
        self.bpm = bpm
        self.to = to  # an input port to connect to, instead of a virtual output
        self._process: asyncio.subprocess.Process | None = None

    @property
    def beat_s(self) -> float:
        return 60.0 / self.bpm

    async def __aenter__(self) -> Master:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.engine.master",
            *([self.to] if self.to else []),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._process.stdout is not None
        async with asyncio.timeout(20):
            line = await self._process.stdout.readline()
        assert line.strip() == b"ready", f"the master did not start: {line!r}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        process = self._process
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            async with asyncio.timeout(5):
                await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    def send(self, at: float, data: bytes) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(f"{at!r} {data.hex()}\n".encode())

    async def flush(self) -> None:
        """Wait until the master process has been handed everything sent so far."""
        assert self._process is not None and self._process.stdin is not None
        await self._process.stdin.drain()

    # --- what a master plays -------------------------------------------------------------

    def locate(self, at: float, beats: float) -> None:
        """Song Position Pointer (sixteenths) to ``beats``."""
        sixteenths = round(beats * 4)
        self.send(at, bytes((SONG_POSITION, sixteenths & 0x7F, sixteenths >> 7 & 0x7F)))

    def start(self, at: float) -> None:
        self.send(at, bytes((START,)))

    def resume(self, at: float) -> None:
        self.send(at, bytes((CONTINUE,)))

    def stop(self, at: float) -> None:
        self.send(at, bytes((STOP,)))

    def clock(self, first_tick: float, beats: float, bpm: float | None = None) -> float:
        """Ticks for ``beats`` beats from ``first_tick``; returns when the next would fall."""
        period = 60.0 / (bpm or self.bpm) / PPQN
        count = round(beats * PPQN)
        for tick in range(count):
            self.send(first_tick + tick * period, bytes((CLOCK,)))
        return first_tick + count * period

    def play(self, notes: Sequence[tuple[int, float, float]], origin: float, beat_s: float) -> None:
        """(pitch, onset beats, length beats) from ``origin`` (the time of beat 0)."""
        for pitch, onset, length in notes:
            self.send(origin + onset * beat_s, note_on(0, pitch, 90))
            self.send(origin + (onset + length) * beat_s, note_off(0, pitch))


if __name__ == "__main__":
    raise SystemExit(main())
