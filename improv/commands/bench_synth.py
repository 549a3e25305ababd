"""``improv bench synth``: send error with and without the built-in synth, side by side."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    from improv.bench.synth_bench import build_parser

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "synth",
        help="send error of improv's sender with and without the built-in synth fed",
        description="Alternate rounds of improv's sender process sending a jam's stream, "
        "with and without feeding the built-in synth, and print the send error of each "
        "and how late the synth got each part's messages.",
    )
    build_parser(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from improv.bench.synth_bench import run as run_bench

    return run_bench(args)
