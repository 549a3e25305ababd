"""``improv render JAM.mid --out jam.wav``: a recorded jam as audio, through the built-in synth."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

PROGRESS_FROM_S = 60.0
"""Files at least this long (of music) show a progress bar while they render."""


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "render",
        help="render a MIDI file (a jam's record) to a WAV file with the built-in synth",
        description="Render a MIDI file offline with FluidSynth and a General MIDI "
        "SoundFont: the performer on channel 1, improv on 2, the metronome on 10.",
    )
    parser.add_argument("midi", type=Path, metavar="JAM.mid")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE.wav")
    parser.add_argument("--soundfont", type=Path, metavar="PATH", help="a GM SoundFont (.sf2)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from improv.files import check_output
    from improv.io.synth import find_soundfont

    check_output(args.out, "--out")
    soundfont = find_soundfont(args.soundfont)
    console = Console(stderr=True)
    done = render_file(args.midi, args.out, soundfont, console)
    if args.json:
        figures = {
            "out": str(done.path),
            "seconds": round(done.seconds, 3),
            "messages": done.messages,
            "wall_s": round(done.wall_s, 3),
        }
        print(json.dumps(figures))
    else:
        console.print(
            f"{done.path}: {done.seconds:.1f} s of audio in {done.wall_s:.1f} s", highlight=False
        )
    return 0


def render_file(midi: Path, out: Path, soundfont: Path, console: Any) -> Any:
    """Render with a progress bar when the music is long and the console a terminal."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from improv.io.synth.render import render_midi

    if not console.is_terminal:
        return render_midi(midi, out, soundfont)
    columns = (
        TextColumn("rendering {task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(out.name, total=None, visible=False)

        def show(seconds: float, total: float) -> None:
            bar.update(task, completed=seconds, total=total, visible=total >= PROGRESS_FROM_S)

        return render_midi(midi, out, soundfont, progress=show)
