"""``improv bench mqtt``: the jam's send error with and without MQTT; the broker round trip.

The benchmark itself is :mod:`improv.bench.mqtt_bench`; this module only parses options.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "mqtt",
        help="does MQTT cost the music anything; broker round trip",
        description="Send error of a demo jam with and without MQTT at full publishing "
        "rate (runs alternating), and the broker round trip on loopback.",
    )
    add_arguments(parser)
    parser.set_defaults(run=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", metavar="URL", help="use this broker (default: a private one)")
    parser.add_argument("--tempo", type=float, default=240.0, help="BPM (default 240)")
    parser.add_argument("--choruses", type=int, default=2, help="per run (default 2)")
    parser.add_argument("--model", default="rules", help="PATH|markov|rules (default rules)")
    parser.add_argument("--repeat", type=int, default=3, help="pairs of runs (default 3)")
    parser.add_argument(
        "--extra-hz",
        type=float,
        default=0.0,
        help="stress: more beat messages/s on top of the jam's own, with MQTT (default 0)",
    )
    parser.add_argument(
        "--subscriber",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a subscriber process on this machine takes every message (default on)",
    )
    parser.add_argument("--round-trips", type=int, default=2000, help="default 2000")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from improv.bench.mqtt_bench import run as bench

    return bench(args)
