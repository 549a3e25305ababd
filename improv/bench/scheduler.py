"""How precisely does the scheduler send? Send error percentiles under load.

Plays a jam-like stream (sixteenth notes with their note-offs and, optionally, MIDI
clock at 24 ppqn) through a :class:`~improv.output.scheduler.Scheduler`, scheduled half a
second ahead from the main thread as the engine does, and reports the send error (send
time minus scheduled time) for several spin windows and loads: idle, a busy Python
thread (GIL contention, as a Python model or the event loop) and a busy neighbour
process (CPU contention). Run ``improv bench scheduler`` or
``python -m improv.bench.scheduler``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from improv.io.midi import CLOCK, MidiOutput
from improv.io.midi.loopback import NullOutput
from improv.timebase import now

if TYPE_CHECKING:  # the scheduler pulls in numpy: not at ``improv --help`` time
    from improv.output.scheduler import Scheduler
    from improv.output.sender import ProcessScheduler

LOADS = ("idle", "thread", "process")


@dataclass(frozen=True, slots=True)
class Result:
    bpm: float
    spin_ms: float
    load: str
    messages: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    late: int
    cpu_percent: float  # of one core, the whole process


def _burn(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        for i in range(1000):
            x += i * i


@contextmanager
def load(kind: str, seconds: float) -> Iterator[None]:
    """Run the named background load for the duration of the block."""
    stop = threading.Event()
    thread: threading.Thread | None = None
    process: subprocess.Popen[bytes] | None = None
    if kind == "thread":
        thread = threading.Thread(target=_burn, args=(stop,), daemon=True)
        thread.start()
    elif kind == "process":
        end = f"time.monotonic() + {seconds + 5}"
        burn = f"import time\nend = {end}\nwhile time.monotonic() < end: pass"
        process = subprocess.Popen([sys.executable, "-c", burn])
    try:
        yield
    finally:
        stop.set()
        if thread is not None:
            thread.join()
        if process is not None:
            process.terminate()
            process.wait()


def run_one(
    make: Callable[[float], Scheduler | ProcessScheduler],
    bpm: float,
    spin_ms: float,
    kind: str,
    seconds: float,
    clock: bool,
) -> Result:
    """Play ``seconds`` of sixteenths (and clock) at ``bpm``; the scheduler's figures."""
    beat = 60.0 / bpm
    scheduler = make(spin_ms / 1000.0)
    with load(kind, seconds), scheduler:
        start = now() + 0.2
        cpu0, wall0 = time.process_time(), now()
        step = 0
        tick = 0
        end = start + seconds
        while True:
            horizon = now() + 0.5
            while start + step * beat / 4 < min(horizon, end):
                t = start + step * beat / 4
                scheduler.schedule_note(60 + step % 12, 90, t, t + beat / 8, 0)
                step += 1
            while clock and start + tick * beat / 24 < min(horizon, end):
                scheduler.schedule(start + tick * beat / 24, bytes((CLOCK,)))
                tick += 1
            if horizon >= end:
                break
            time.sleep(0.1)
        while scheduler.pending():
            time.sleep(0.05)
        cpu = (time.process_time() - cpu0) / (now() - wall0) * 100.0
        stats = scheduler.stats()
    return Result(
        bpm,
        spin_ms,
        kind,
        stats.sent,
        stats.send_error_ms_p50,
        stats.send_error_ms_p99,
        stats.send_error_ms_max,
        stats.late,
        cpu,
    )


def build_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--bpm", type=float, nargs="+", default=[120.0, 240.0])
    parser.add_argument("--spin-ms", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    parser.add_argument("--load", choices=LOADS, nargs="+", default=list(LOADS))
    parser.add_argument("--seconds", type=float, default=10.0, help="per configuration")
    parser.add_argument("--no-clock", action="store_true", help="notes only, no MIDI clock")
    parser.add_argument(
        "--midi-api", default=None, help="send to a virtual port on this API (default: no port)"
    )
    parser.add_argument(
        "--process",
        action="store_true",
        help="send from a child process (ProcessScheduler; needs --midi-api)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def run(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    from improv.errors import UsageError
    from improv.output.scheduler import Scheduler
    from improv.output.sender import OutputSpec, ProcessScheduler

    output: MidiOutput = NullOutput("null")
    spec = OutputSpec(virtual=True, api=args.midi_api, client_name="improv-bench")
    if args.process and not args.midi_api:
        raise UsageError("--process needs a real port: give --midi-api")
    if args.midi_api and not args.process:
        output = spec.open()

    def make(spin_s: float) -> Scheduler | ProcessScheduler:
        if args.process:
            return ProcessScheduler(spec, spin_s=spin_s)
        return Scheduler(output, spin_s=spin_s)

    where = f"{'child process, ' if args.process else ''}{args.midi_api or 'null'} output"
    console = Console(stderr=True)
    results = []
    try:
        for bpm in args.bpm:
            for kind in args.load:
                for spin in args.spin_ms:
                    console.print(f"{bpm:g} BPM, spin {spin:g} ms, load {kind} ...")
                    results.append(run_one(make, bpm, spin, kind, args.seconds, not args.no_clock))
    finally:
        output.close()
    if args.json:
        print(json.dumps({"sender": where, "results": [asdict(r) for r in results]}))
        return 0
    table = Table(title=f"scheduler send error in ms ({where})")
    for column in ("BPM", "spin", "load", "messages", "p50", "p99", "max", ">1 ms", "CPU %"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            f"{r.bpm:g}",
            f"{r.spin_ms:g}",
            r.load,
            str(r.messages),
            f"{r.p50_ms:.3f}",
            f"{r.p99_ms:.3f}",
            f"{r.max_ms:.3f}",
            str(r.late),
            f"{r.cpu_percent:.0f}",
        )
    Console().print(table)
    return 0


def main() -> int:
    parser = build_parser(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    return run(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
