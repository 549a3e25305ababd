"""``improv bench band``: improv's own send error with the band and without, side by side.

The benchmark itself is :mod:`improv.bench.band`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "band",
        help="improv's own timing with the band and without",
        description="Play `improv jam --demo` at each tempo without the band and with it "
        "(alternating the order each round) and compare the send error of improv's own "
        "notes, the band's notes and the notes left sounding.",
    )
    parser.add_argument(
        "--tempo", type=float, nargs="+", default=[120.0, 240.0], help="BPM (default 120 240)"
    )
    parser.add_argument("--choruses", type=int, default=2, help="per jam (default 2)")
    parser.add_argument("--bars", type=int, default=2, choices=(2, 4, 8, 12))
    parser.add_argument("--rounds", type=int, default=1, help="with/without pairs (default 1)")
    parser.add_argument("--model", help="PATH|lstm|markov|rules (default: the shipped model)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.set_defaults(run=run)


_LABELS = {
    "answer_send_error_ms_p50": "own p50 ms",
    "answer_send_error_ms_p99": "own p99 ms",
    "answer_send_error_ms_max": "own max ms",
    "send_error_ms_p99": "all p99 ms",
    "send_error_ms_max": "all max ms",
    "notes_out": "notes",
    "band_notes": "band notes",
    "deadline_misses": "misses",
    "messages_late": "late",
    "stuck_notes": "stuck",
}


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from improv.bench.band import FIGURES, band_bench
    from improv.errors import UsageError

    if not 1 <= args.choruses <= 100 or not 1 <= args.rounds <= 20:
        raise UsageError("--choruses must lie in [1, 100] and --rounds in [1, 20]")
    for tempo in args.tempo:
        if not 30.0 <= tempo <= 300.0:
            raise UsageError(f"--tempo {tempo:g}: must lie in [30, 300]")
    console = Console(stderr=True)
    extra = ["--model", args.model] if args.model else []

    def show(row: dict[str, Any]) -> None:
        console.print(
            f"{row['tempo']:g} BPM, {row['band']} the band: own p99 "
            f"{row['answer_send_error_ms_p99']} ms, max {row['answer_send_error_ms_max']} ms",
            highlight=False,
        )

    rows = band_bench(
        args.tempo,
        choruses=args.choruses,
        bars=args.bars,
        rounds=args.rounds,
        jam_args=extra,
        on_run=show,
    )
    if args.json:
        print(json.dumps(rows))
        return 0
    table = Table("BPM", "band", "round", *(_LABELS.get(name, name) for name in FIGURES))
    for row in rows:
        table.add_row(
            f"{row['tempo']:g}",
            row["band"],
            str(row["round"]),
            *(str(row[name]) for name in FIGURES),
        )
    Console().print(table)
    return 0
