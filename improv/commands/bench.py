"""``improv bench``: groups the benchmarks; each lives in ``improv.commands.bench_<name>``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from typing import Any

from improv import commands


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench", help="measure speed and timing (model, latency)"
    )
    inner = parser.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("bench_"):
            importlib.import_module(f"improv.commands.{info.name}").register(inner)
