"""``improv corpus``: look at training data (``stats``) and make some (``generate``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "corpus", help="training data: statistics of a MIDI folder, generated solos"
    )
    inner = parser.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)

    stats = inner.add_parser(
        "stats",
        help="count files, solos, notes, phrases, call/response pairs, chords and tokens",
        description="Read every MIDI file below each --data folder and print what it holds.",
    )
    stats.add_argument(
        "--data",
        type=Path,
        action="append",
        metavar="DIR",
        help="folder of MIDI files, searched recursively (repeat for several folders; "
        "default: data/wjazzd)",
    )
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.add_argument(
        "--key",
        help="key of the music, e.g. Bb, Cm (default: each file's key signature, else inferred)",
    )
    stats.add_argument(
        "--form", help="blues form to lay under files without chords (blues, jazz-blues ...)"
    )
    stats.set_defaults(run=run_stats)

    generate = inner.add_parser(
        "generate",
        help="write rule-based blues solos as WJazzD-style MIDI files with a solos.csv",
    )
    generate.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    generate.add_argument("--solos", type=int, default=24, help="number of solos (default 24)")
    generate.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    generate.add_argument(
        "--choruses", type=int, default=2, help="choruses per blues solo (default 2)"
    )
    generate.set_defaults(run=run_generate)


def run_stats(args: argparse.Namespace) -> int:
    from improv.corpus.folder import read_folder
    from improv.corpus.stats import corpus_stats, total
    from improv.model.registry import data_dir

    folders = args.data or [data_dir()]
    per_folder = [corpus_stats(read_folder(d, args.key, args.form)) for d in folders]
    overall = total(per_folder)
    if args.json:
        report = overall.to_json()
        report["folders"] = [s.to_json() for s in per_folder]
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0
    columns = [*per_folder, overall] if len(per_folder) > 1 else per_folder
    table = Table(title="corpus", title_justify="left")
    table.add_column("")
    for stats in columns:
        name = "total" if stats is overall and len(columns) > 1 else Path(stats.folder).name
        table.add_column(name or stats.folder, justify="right")
    metrics = (
        ("files", lambda s: f"{s.files:,}"),
        ("skipped", lambda s: f"{len(s.skipped):,}"),
        ("solos", lambda s: f"{s.solos:,}"),
        ("notes", lambda s: f"{s.notes:,}"),
        ("phrases", lambda s: f"{s.phrases:,}"),
        ("call/response pairs", lambda s: f"{s.pairs:,}"),
        ("chord symbols", lambda s: f"{len(s.symbols):,}"),
        ("tokens", lambda s: f"{s.tokens:,}"),
        ("notes in blues forms", lambda s: f"{s.blues_note_share:.1%}"),
    )
    for label, cell in metrics:
        table.add_row(label, *(cell(stats) for stats in columns))
    console = Console()
    console.print(table)
    for file, reason in overall.skipped:
        console.print(f"skipped {file}: {reason}", highlight=False, markup=False)
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from improv.corpus.synthetic import write_generated_corpus
    from improv.errors import UsageError

    if args.solos < 1 or args.choruses < 1:
        raise UsageError("--solos and --choruses must be at least 1")
    paths = write_generated_corpus(args.out, args.solos, args.seed, choruses=args.choruses)
    Console().print(f"wrote {len(paths)} solos and solos.csv to {args.out}", highlight=False)
    return 0
