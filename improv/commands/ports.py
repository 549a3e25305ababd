"""``improv ports``: the MIDI ports each API offers, as ``--in`` / ``--out`` take them."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "ports", help="list MIDI input and output ports per API"
    )
    parser.add_argument(
        "--midi-api",
        default="auto",
        choices=["auto", "alsa", "jack", "coremidi"],
        help="one API, or auto for every API this build supports (default)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    from improv.io.midi import list_ports

    listing = list_ports(None if args.midi_api == "auto" else args.midi_api)
    if args.json:
        print(json.dumps({"apis": [asdict(entry) for entry in listing]}, indent=2))
        return 0
    console = Console()
    for entry in listing:
        table = Table(title=f"MIDI API: {entry.api}", title_justify="left")
        table.add_column("--in (inputs)")
        table.add_column("--out (outputs)")
        if entry.error:
            console.print(f"[bold]MIDI API: {entry.api}[/]  [yellow]{entry.error}[/]")
            continue
        rows = max(len(entry.inputs), len(entry.outputs))
        if not rows:
            console.print(f"[bold]MIDI API: {entry.api}[/]  no ports")
            continue
        for i in range(rows):
            table.add_row(
                entry.inputs[i] if i < len(entry.inputs) else "",
                entry.outputs[i] if i < len(entry.outputs) else "",
            )
        console.print(table)
    return 0
