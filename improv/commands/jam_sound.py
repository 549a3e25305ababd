"""``improv jam``'s sound and pictures: ``--synth``, ``--soundfont``, ``--render``, and the
piano roll written beside the record.

``--synth`` plays the performer, improv and the metronome through the built-in
FluidSynth (:mod:`improv.io.synth.process`), and a missing piece is an error;
``--demo`` at a terminal tries it by itself and, when a SoundFont or an audio output
is missing, says so in one line and jams on silently (``--no-synth``: not even the
try).
``--render FILE.wav`` writes the jam's audio from its record once it ends, with no
audio device at all.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from improv.errors import ImprovError, UsageError

log = logging.getLogger(__name__)


def add_sound_arguments(parser: argparse.ArgumentParser) -> None:
    sound = parser.add_argument_group("sound and pictures")
    sound.add_argument(
        "--synth",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="play performer, improv and metronome through the built-in synth "
        "(the demo does when it can)",
    )
    sound.add_argument("--soundfont", type=Path, metavar="PATH", help="a GM SoundFont (.sf2)")
    sound.add_argument(
        "--render", type=Path, metavar="FILE.wav", help="write the jam's audio when it ends"
    )


def check_sound(args: argparse.Namespace, record: Path | None) -> None:
    """Before the jam: ``--render`` can be written, has a SoundFont and a record to read."""
    from improv.files import check_output
    from improv.io.synth import find_soundfont

    if args.render is None:
        return
    if record is None:
        raise UsageError("--render needs --record FILE.mid (the demo records by itself)")
    check_output(args.render, "--render")
    args.render_soundfont = find_soundfont(args.soundfont)


def start_synth(args: argparse.Namespace, interactive: bool | None = None) -> Any:
    """The live synth's process, or None (not asked for, or the demo's try failed: said
    in one line). The demo tries only for a person at a terminal (``interactive``, by
    default whether stderr is one), not for scripts and tests. Blocks while the
    SoundFont loads: call it in a thread."""
    from improv.io.synth import SynthUnavailable, find_soundfont
    from improv.io.synth.process import SynthProcess

    if interactive is None:
        interactive = sys.stderr.isatty()
    wanted = args.synth
    if wanted is None:
        wanted = "try" if args.demo and args.render is None and interactive else False
    if not wanted:
        return None
    try:
        return SynthProcess(find_soundfont(args.soundfont)).start()
    except SynthUnavailable as exc:
        if wanted is True:
            raise SynthUnavailable(f"--synth: {exc}") from None
        log.warning("no sound: %s; --render FILE.wav writes the jam's audio", exc)
        return None


def after_record(args: argparse.Namespace, record: Path, console: Any) -> None:
    """The record's piano roll beside it (``jam.png``), and ``--render``'s audio."""
    from improv.commands.plot import plot_file

    picture = record.with_suffix(".png")
    try:
        plot_file(record, picture, "--record")
    except (OSError, ImprovError) as exc:
        log.error("piano roll %s: %s", picture, exc)
    else:
        console.print(f"piano roll written to {picture}", highlight=False)
    if args.render is not None:
        from improv.commands.render import render_file

        done = render_file(record, args.render, args.render_soundfont, console)
        console.print(
            f"audio written to {done.path} ({done.seconds:.1f} s, rendered in {done.wall_s:.1f} s)",
            highlight=False,
        )
