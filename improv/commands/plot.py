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

    from improv.files import atomic_output, check_output
    from improv.pianoroll import plot_jam

    out = args.out or args.midi.with_suffix(".png")
    check_output(out, "--out")
    with atomic_output(out, "--out") as tmp, tmp.open("wb") as handle:
        plot_jam(args.midi, handle)
    Console(stderr=True).print(f"piano roll written to {out}", highlight=False)
    return 0
