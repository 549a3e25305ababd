"""``improv bench soak``: a demo jam for N minutes; the memory growth of its processes.

The benchmark itself is :mod:`improv.bench.soak`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "soak",
        help="a long demo jam: does memory grow",
        description="Play `improv jam --demo` for N minutes (a stream of calls, the record "
        "kept) and sample the resident memory of its process tree every second; report "
        "the growth per hour (fitted after a 30 s warm-up).",
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="default 30")
    parser.add_argument("--tempo", type=float, default=240.0, help="BPM (default 240)")
    parser.add_argument("--bars", type=int, default=2, choices=(2, 4, 8, 12))
    parser.add_argument("--model", default="rules", help="PATH|markov|rules (default rules)")
    parser.add_argument(
        "--record", type=Path, default=Path("soak.mid"), help="the jam's record (soak.mid)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from improv.bench.soak import soak
    from improv.errors import UsageError
    from improv.files import check_output

    if not 0 < args.minutes <= 24 * 60:
        raise UsageError("--minutes must lie in (0, 1440]")
    check_output(args.record, "--record")
    console = Console(stderr=True)
    jam_args = ["--tempo", str(args.tempo), "--bars", str(args.bars), "--model", args.model]

    shown = [-1]

    def show(elapsed: float, rss: int) -> None:
        if int(elapsed // 60) > shown[0]:  # once a minute
            shown[0] = int(elapsed // 60)
            console.print(f"{elapsed / 60:5.1f} min: {rss / 1e6:7.1f} MB", highlight=False)

    result = soak(args.minutes, jam_args, args.record, on_sample=show)
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        for name, value in result.as_dict().items():
            console.print(f"{name:24} {value}", highlight=False)
    return 0
