"""``improv bench scheduler``: the scheduler's send error under load (see improv.bench)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    from improv.bench.scheduler import build_parser

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "scheduler",
        help="send error percentiles of the MIDI scheduler, idle and under load",
        description="Play a stream of notes and MIDI clock through the scheduler at each "
        "tempo, spin window and load, and print send error p50/p99/max.",
    )
    build_parser(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from improv.bench.scheduler import run as run_bench

    return run_bench(args)
