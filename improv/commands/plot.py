"""``improv plot JAM.mid --out jam.png``: a jam's piano roll, calls and answers over the chords."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "plot",
        help="draw a jam's record (or any MIDI file) as a piano roll PNG",
        description="A piano roll of calls and answers in two colours over the chord grid "
        "and bar numbers, velocity as shade, a chorus to a row.",
    )
    parser.add_argument("midi", type=Path, metavar="JAM.mid")
    parser.add_argument("--out", type=Path, metavar="FILE.png", help="default: JAM.png beside it")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from improv.files import check_output

    out = args.out or args.midi.with_suffix(".png")
    check_output(out, "--out")
    plot_file(args.midi, out, "--out")
    Console(stderr=True).print(f"piano roll written to {out}", highlight=False)
    return 0


def plot_file(midi: Path, out: Path, what: str) -> Path:
    """The piano roll of ``midi`` written to ``out`` whole or not at all."""
    from improv.files import atomic_output
    from improv.pianoroll import plot_jam

    with atomic_output(out, what) as tmp, tmp.open("wb") as handle:
        plot_jam(midi, handle)
    return out
