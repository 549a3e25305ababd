"""``improv jam``: play with a performer on MIDI ports, or watch a simulated one (--demo).

Settings come from ``--config FILE.toml`` (see ``examples/stage.toml``), then from the
options given here, which win. ``--demo`` needs no MIDI hardware: a simulated performer
plays calls from ``examples/calls/`` through the in-process transport; ``--performer
FILE.mid`` takes the calls from any MIDI file instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from improv.commands.jam_sound import add_sound_arguments  # light: no FluidSynth
from improv.io.mqtt.settings import add_mqtt_arguments  # light: no aiomqtt

log = logging.getLogger(__name__)

DEMO_CHORUSES = 2
DEMO_RECORD = Path("improv-jam.mid")
DEMO_BAND = "bass,drums,piano"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "jam",
        help="jam with a performer on MIDI ports (or --demo)",
        description="Listen to a performer on MIDI and answer on the beat.",
    )
    ports = parser.add_argument_group("MIDI")
    ports.add_argument("--in", dest="port_in", metavar="PORT", help="input port (name or part)")
    ports.add_argument("--out", dest="port_out", metavar="PORT", help="output port")
    ports.add_argument(
        "--virtual",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="open improv's own virtual ports (improv-in, improv-out)",
    )
    ports.add_argument("--midi-api", choices=["auto", "alsa", "jack", "coremidi", "winmm"])
    ports.add_argument("--channel-in", type=int, metavar="N", help="listen on channel 1-16 only")
    ports.add_argument("--channel-out", type=int, metavar="N", help="play on channel 1-16")
    ports.add_argument("--thru", action=argparse.BooleanOptionalAction, default=None)

    play = parser.add_argument_group("performer")
    play.add_argument("--demo", action="store_true", help="a simulated performer, no hardware")
    play.add_argument("--performer", type=Path, metavar="FILE.mid", help="calls from a MIDI file")

    music = parser.add_argument_group("music")
    music.add_argument("--tempo", type=float, metavar="BPM")
    music.add_argument("--key", help="e.g. F, Bb, Cm")
    music.add_argument("--form", help="blues, quick-change, jazz-blues, minor-blues, 8-bar")
    music.add_argument("--metre", help="e.g. 4/4")
    music.add_argument(
        "--changes",
        type=Path,
        metavar="FILE.mid",
        help="the form: a MIDI file's chord markers (its tempo, metre, key unless given)",
    )
    music.add_argument("--swing", type=float, metavar="RATIO", help="1 straight .. 2 triplet")
    music.add_argument("--choruses", type=int, metavar="N", help="end after N choruses")
    music.add_argument("--count-in", type=int, metavar="BARS")
    music.add_argument("--metronome", action=argparse.BooleanOptionalAction, default=None)
    music.add_argument("--clock", choices=["internal", "midi"], help="whose tempo")
    music.add_argument("--send-clock", action=argparse.BooleanOptionalAction, default=None)

    band = parser.add_argument_group("band")
    band.add_argument(
        "--band",
        metavar="PARTS",
        help="the rhythm section: bass,drums,piano (any of them) or none (--demo: all three)",
    )
    band.add_argument(
        "--band-mode", choices=["sparse", "full"], help="sparse: two-feel, light comping"
    )

    turns = parser.add_argument_group("turns")
    turns.add_argument("--mode", choices=["trade", "phrase"])
    turns.add_argument("--bars", type=int, choices=[2, 4, 8, 12], help="bars per turn")
    turns.add_argument(
        "--slots",
        choices=["form", "follow"],
        help="trade on fixed slots of the form (default) or from the call's first note",
    )
    turns.add_argument(
        "--first", choices=["performer", "improv"], help="whose slot comes first (form slots)"
    )
    turns.add_argument("--barge-in", choices=["yield", "keep"])
    turns.add_argument("--align", choices=["beat", "half-bar"], help="phrase-mode answer start")
    turns.add_argument("--gap", type=float, metavar="BEATS", help="phrase-mode silence gap")

    model = parser.add_argument_group("model")
    model.add_argument("--model", metavar="PATH|markov|rules")
    model.add_argument("--temperature", type=float)
    model.add_argument("--top-p", type=float)
    model.add_argument("--seed", type=int)
    model.add_argument("--range", metavar="LO-HI", help="instrument range, e.g. C3-C6")
    model.add_argument("--lookahead-ms", type=float, help="generation keeps this far ahead")
    model.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], help="where candidate answers are drafted"
    )
    model.add_argument("--candidates", type=int, metavar="N", help="candidate answers per turn")
    model.add_argument(
        "--models-dir",
        type=Path,
        action="append",
        metavar="DIR",
        help="MQTT control may load checkpoints from here (repeatable; default: shipped only)",
    )

    out = parser.add_argument_group("output")
    out.add_argument("--config", type=Path, metavar="FILE.toml")
    out.add_argument("--record", type=Path, metavar="FILE.mid", help="write the jam")
    out.add_argument("--json", action="store_true", help="print one JSON object at exit")
    add_sound_arguments(parser)
    add_mqtt_arguments(parser)
    parser.add_argument(
        "--web",
        metavar="[HOST:]PORT",
        help="serve the live page (127.0.0.1 unless HOST; elsewhere the URL needs its token)",
    )
    parser.set_defaults(run=run)


_SETTINGS = (
    "port_in",
    "port_out",
    "virtual",
    "midi_api",
    "channel_in",
    "channel_out",
    "thru",
    "tempo",
    "key",
    "form",
    "metre",
    "swing",
    "choruses",
    "count_in",
    "metronome",
    "clock",
    "send_clock",
    "mode",
    "bars",
    "slots",
    "first",
    "barge_in",
    "align",
    "gap",
    "model",
    "temperature",
    "top_p",
    "seed",
    "range",
    "lookahead_ms",
    "record",
    "device",
    "candidates",
    "band",
    "band_mode",
)


def run(args: argparse.Namespace) -> int:
    from improv.commands.jam_sound import check_sound
    from improv.engine.config import build_config
    from improv.engine.malloc import few_arenas
    from improv.errors import UsageError
    from improv.files import check_input, check_output
    from improv.model.registry import check_model
    from improv.smf import MIDI_LIMIT

    overrides = {name: getattr(args, name) for name in _SETTINGS}
    overrides["models_dir"] = tuple(args.models_dir) if args.models_dir else None
    performance = None
    if args.performer is not None and not args.demo:
        from improv.engine.performer import read_performance

        check_input(args.performer, MIDI_LIMIT, "--performer")  # before reading it
        performance = read_performance(args.performer)
        overrides = _file_settings(overrides, performance)
    args.changes_of = None
    if args.changes is not None:  # the form (and what the options leave open) from a file
        from improv.engine.performer import read_performance

        check_input(args.changes, MIDI_LIMIT, "--changes")
        args.changes_of = read_performance(args.changes)
        overrides = _file_settings(overrides, args.changes_of)
    config = build_config(args.config, **overrides)
    check_model(config.model, "jam")
    args.performance = performance
    simulated = args.demo or args.performer is not None
    if args.demo and args.performer is not None:
        raise UsageError("give --demo or --performer, not both")
    if not simulated and not config.virtual and not (config.port_in and config.port_out):
        raise UsageError("give --in and --out ports, --virtual, --demo or --performer FILE.mid")
    if simulated and config.port_in:
        raise UsageError("--in makes no sense with a simulated performer")
    if simulated and config.clock == "midi":
        raise UsageError("a simulated performer plays on improv's own clock: --clock internal")
    if args.demo:
        config = config.replaced(
            choruses=config.choruses or DEMO_CHORUSES,
            record=config.record or DEMO_RECORD,
            band=config.band or DEMO_BAND,
        )
    if config.record is not None:
        check_output(config.record, "--record")  # before the jam, not after it
    check_sound(args, config.record)
    few_arenas()  # before any thread starts: a long gig's memory stays flat
    summary, recorded = asyncio.run(_jam(config, args))
    if args.json:  # the figures first: the record's picture of a long jam takes seconds
        print(json.dumps(summary, separators=(",", ":")), flush=True)
    if recorded and config.record is not None:
        from rich.console import Console

        from improv.commands.jam_sound import after_record

        print(f"jam written to {config.record}", file=sys.stderr)
        after_record(args, config.record, Console(stderr=True))
    return 0


async def _jam(config: Any, args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """The jam's figures, and whether its record was written."""
    from improv.io.web.server import web_from_args

    web = web_from_args(args)  # None without --web; a bad address fails here
    if web is None:
        return await _play(config, args, None)
    async with web:  # listening before the model loads: a port in use fails at once
        print(f"the live page: {web.url}", file=sys.stderr, flush=True)
        return await _play(config, args, web)


async def _play(config: Any, args: argparse.Namespace, web: Any) -> tuple[dict[str, Any], bool]:
    from rich.console import Console
    from rich.live import Live

    from improv.commands.jam_sound import start_synth
    from improv.commands.jam_view import JamView, summary_table
    from improv.engine import session as jam_session
    from improv.io.mqtt import bridge_from_args

    bridge = bridge_from_args(args)  # None without --mqtt; bad options fail before loading
    console = Console(stderr=args.json)
    performance = getattr(args, "performance", None)
    form = config.form_obj()
    calls = []
    if performance is not None:
        form = jam_session.performance_form(config, performance, args.form is not None)
        calls = jam_session.performance_calls(config, performance)
        if config.choruses is None:
            config = config.replaced(choruses=jam_session.choruses_for(calls, config, form))
    changes = getattr(args, "changes_of", None)
    if changes is not None:
        form = jam_session.performance_form(config, changes, args.form is not None)
    elif args.demo:
        calls = jam_session.demo_calls(config)
    view = JamView(f"improv jam: {form.name} in {config.key}, {config.tempo:g} BPM")
    synth = await asyncio.to_thread(start_synth, args)
    try:
        session = jam_session.Session(
            config,
            form=form,
            calls=calls,
            observers=[] if args.json else [view],
            bridge=bridge,
            web=web,
            synth=synth,
        )
        with console.status("loading the model ...", spinner="dots"):
            await session.prepare()
        await session.start()
        if args.json or not console.is_terminal:
            summary = await session.run()
        else:
            with Live(view, console=console, refresh_per_second=8, transient=False):
                summary = await session.run()
        figures = summary.as_dict()
        if synth is not None:
            figures["synth"] = {"audio": synth.driver, **synth.stats()}
    finally:
        if synth is not None:
            synth.close()
    if not args.json:
        console.print(summary_table(summary))
    return figures, bool(session.record_written)


def _file_settings(overrides: dict[str, Any], performance: Any) -> dict[str, Any]:
    """The performer file's tempo, metre and key where the command line gives none."""
    from_file = {
        "tempo": round(performance.tempo, 3),
        "metre": str(performance.metre),
        "key": performance.key.name,
    }
    return {**overrides, **{k: v for k, v in from_file.items() if overrides.get(k) is None}}
