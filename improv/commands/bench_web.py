"""``improv bench web``: the jam's send error with and without the live page attached.

The benchmark itself is :mod:`improv.bench.web_bench` (also ``python -m`` runnable).
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "web",
        help="does the live page cost the music anything",
        description="Send error of demo jams without the live page and with it served to "
        "several pages (runs alternating, one process).",
    )
    add_arguments(parser)
    parser.set_defaults(run=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tempo", type=float, default=240.0, help="BPM (default 240)")
    parser.add_argument("--choruses", type=int, default=2, help="per run (default 2)")
    parser.add_argument("--model", default="rules", help="PATH|markov|rules (default rules)")
    parser.add_argument("--repeat", type=int, default=2, help="pairs of runs (default 2)")
    parser.add_argument("--clients", type=int, default=3, help="pages attached (default 3)")
    parser.add_argument(
        "--kind",
        choices=["auto", "browser", "ws"],
        default="auto",
        help="headless Chromium pages, or plain websocket clients (auto: Chromium if there)",
    )
    parser.add_argument(
        "--sender",
        choices=["process", "thread"],
        default="process",
        help="the demo's sending process (default), or an in-process sending thread",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from improv.bench.web_bench import run as bench

    return bench(args)
