"""``improv jam``: play with a performer on MIDI ports, or watch a simulated one (--demo).

Settings come from ``--config FILE.toml`` (see ``examples/stage.toml``), then from the
options given here, which win. ``--demo`` needs no MIDI hardware: a simulated performer
plays calls from ``examples/calls/`` through the in-process transport; ``--performer
FILE.mid`` takes the calls from any MIDI file instead.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import math
import sys
import threading
from pathlib import Path
from typing import Any

from improv.io.mqtt_settings import add_mqtt_arguments  # light: no aiomqtt

log = logging.getLogger(__name__)

DEMO_CHORUSES = 2
DEMO_RECORD = Path("improv-jam.mid")


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
    music.add_argument("--swing", type=float, metavar="RATIO", help="1 straight .. 2 triplet")
    music.add_argument("--choruses", type=int, metavar="N", help="end after N choruses")
    music.add_argument("--count-in", type=int, metavar="BARS")
    music.add_argument("--metronome", action=argparse.BooleanOptionalAction, default=None)
    music.add_argument("--clock", choices=["internal", "midi"], help="whose tempo")
    music.add_argument("--send-clock", action=argparse.BooleanOptionalAction, default=None)

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
)


def run(args: argparse.Namespace) -> int:
    from improv.engine.config import build_config
    from improv.engine.malloc import few_arenas
    from improv.errors import UsageError
    from improv.files import MIDI_LIMIT, check_input, check_output
    from improv.model.registry import check_model

    overrides = {name: getattr(args, name) for name in _SETTINGS}
    overrides["models_dir"] = tuple(args.models_dir) if args.models_dir else None
    performance = None
    if args.performer is not None and not args.demo:
        from improv.engine.performer import read_performance

        check_input(args.performer, MIDI_LIMIT, "--performer")  # before reading it
        performance = read_performance(args.performer)
        overrides = _file_settings(overrides, performance)
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
        )
    if config.record is not None:
        check_output(config.record, "--record")  # before the jam, not after it
    few_arenas()  # before any thread starts: a long gig's memory stays flat
    summary = asyncio.run(_jam(config, args))
    if args.json:
        print(json.dumps(summary, separators=(",", ":")))
    return 0


async def _jam(config: Any, args: argparse.Namespace) -> dict[str, Any]:
    from improv.io.web.server import web_from_args

    web = web_from_args(args)  # None without --web; a bad address fails here
    if web is None:
        return await _play(config, args, None)
    async with web:  # listening before the model loads: a port in use fails at once
        print(f"the live page: {web.url}", file=sys.stderr, flush=True)
        return await _play(config, args, web)


async def _play(config: Any, args: argparse.Namespace, web: Any) -> dict[str, Any]:
    from rich.console import Console
    from rich.live import Live

    from improv.commands.jam_view import JamView, summary_table
    from improv.engine.agent import Agent, JamObserver
    from improv.engine.context import ChordTimeline
    from improv.engine.mqtt_observer import attach
    from improv.engine.performer import SimulatedPerformer
    from improv.engine.recording import NoteJournal, journal_path
    from improv.engine.responders import build_responders, responder_loader, rules_answer
    from improv.engine.web_observer import attach as attach_web
    from improv.errors import ImprovError
    from improv.io.mqtt import bridge_from_args

    bridge = bridge_from_args(args)  # None without --mqtt; bad options fail before loading
    console = Console(stderr=args.json)
    form = _performer_form(config, args)
    timeline = ChordTimeline(form)
    with console.status("loading the model ...", spinner="dots"):
        responders = await asyncio.to_thread(
            build_responders,
            config.model,
            config.key_obj,
            config.metre_obj,
            timeline,
            device=config.device,
            candidates=config.candidates,
        )
    log.info("model: %s", responders.description)
    calls = _calls(config, args) if (args.demo or args.performer) else []
    if args.performer is not None and config.choruses is None:
        turns_needed = 2 * len(calls) * config.bars
        config = config.replaced(choruses=max(1, math.ceil(turns_needed / form.n_bars)))
    midi_in, midi_out, performer_out = _open_ports(config, simulated=bool(calls))
    view = JamView(f"improv jam: {form.name} in {config.key}, {config.tempo:g} BPM")
    observers: list[JamObserver] = [] if args.json else [view]
    journal = NoteJournal(journal_path(config.record) if config.record else None)
    agent = Agent(
        config,
        midi_in=midi_in,
        midi_out=midi_out,
        primary=responders.primary,
        fallbacks=responders.fallbacks,
        inline=rules_answer,
        observers=observers,
        load_responder=lambda spec: responder_loader(
            agent.key,
            agent.metre,
            timeline,
            device=config.device,
            candidates=config.candidates,
        )(spec),
        timeline=timeline,
        journal=journal,
    )
    tasks: list[asyncio.Task[None]] = []
    gc.collect()
    gc.freeze()  # start-up's objects (the model's) live on: collections never walk them again
    await agent.open_output()  # before control can come in
    if bridge is not None:
        attach(bridge, agent)
        await bridge.start()
    if web is not None:
        attach_web(web, agent)
    if calls:
        assert performer_out is not None
        performer = SimulatedPerformer(agent, performer_out, calls, channel=0)
        agent.observers.append(performer)
        tasks.append(asyncio.create_task(performer.run(), name="performer"))
    if config.record is not None:
        tasks.append(asyncio.create_task(_keep_record(config, agent), name="record"))
    try:
        if args.json or not console.is_terminal:
            summary = await agent.run()
        else:
            with Live(view, console=console, refresh_per_second=8, transient=False):
                summary = await agent.run()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if bridge is not None:
            await bridge.close()
    if config.record is not None:
        journal.close()
        try:
            _record(config, agent)
        except (OSError, ImprovError) as exc:  # the summary still comes; the journal stays
            log.error("--record %s: %s; the jam is in %s", config.record, exc, journal.path)
        else:
            with _RECORD_LOCK:
                journal_path(config.record).unlink(missing_ok=True)
            log.info("jam written to %s", config.record)
            print(f"jam written to {config.record}", file=sys.stderr)
    if not args.json:
        console.print(summary_table(summary))
    return summary.as_dict()


def _file_settings(overrides: dict[str, Any], performance: Any) -> dict[str, Any]:
    """The performer file's tempo, metre and key where the command line gives none."""
    from_file = {
        "tempo": round(performance.tempo, 3),
        "metre": str(performance.metre),
        "key": performance.key.name,
    }
    return {**overrides, **{k: v for k, v in from_file.items() if overrides.get(k) is None}}


def _performer_form(config: Any, args: argparse.Namespace) -> Any:
    """The form to jam over: the performer file's own changes (in the key and metre
    played) unless ``--form`` or another ``--metre`` says otherwise; else ``--form``."""
    performance = getattr(args, "performance", None)
    if performance is None or performance.form is None or args.form is not None:
        return config.form_obj()
    if config.metre_obj != performance.metre:
        return config.form_obj()
    return performance.form.in_key(config.key_obj.tonic)


def _open_ports(config: Any, *, simulated: bool) -> tuple[Any, Any, Any]:
    """(agent input, agent output, performer output or None).

    The agent's output is opened by its sender process (an ``OutputSpec``), so no
    thread of this one can delay a note; the demo's goes nowhere unless ``--out``.
    """
    from improv.engine.sender import OutputSpec
    from improv.io.midi import MidiInput, open_input
    from improv.io.transport import loopback

    api = config.midi_api
    midi_in: MidiInput
    if simulated:
        performer_out, midi_in = loopback("performer")
        if config.port_out:
            return midi_in, OutputSpec(config.port_out, api=api, wait_s=2.0), performer_out
        return midi_in, OutputSpec(discard=True), performer_out
    if config.virtual:
        midi_in = open_input(api=api, virtual=True, client_name="improv-in", port_name="in")
        return midi_in, OutputSpec(api=api, virtual=True), None
    midi_in = open_input(config.port_in, api=api, wait_s=2.0)
    return midi_in, OutputSpec(config.port_out, api=api, wait_s=2.0), None


def _calls(config: Any, args: argparse.Namespace) -> list[Any]:
    from improv.engine.performer import calls_from_notes
    from improv.io.midifile import read_take

    per_bar = config.metre_obj.beats_per_bar
    performance = getattr(args, "performance", None)
    if performance is not None:
        notes = _in_key(performance.notes, performance.key, config.key_obj)
        return calls_from_notes(notes, config.bars, per_bar, performance.source, 0.5)
    folder = examples_dir() / "calls"
    files = sorted(folder.glob("*.mid")) if folder.is_dir() else []
    calls = []
    for path in files:
        take = read_take(path)
        calls += calls_from_notes(take.notes, config.bars, per_bar, path.name)[:1]
    return calls or _generated_calls(config)


def _in_key(notes: Any, played: Any, wanted: Any) -> list[Any]:
    """The performer's notes moved to ``--key`` (by the smaller interval), as a player
    asked to take it in another key would."""
    shift = (wanted.tonic - played.tonic) % 12
    shift -= 12 if shift > 6 else 0
    from dataclasses import replace

    return [replace(n, pitch=min(127, max(0, n.pitch + shift))) for n in notes]


def examples_dir() -> Path:
    import improv

    return Path(improv.__file__).resolve().parents[1] / "examples"


def _generated_calls(config: Any) -> list[Any]:
    """Calls made by the rule-based generator (when ``examples/`` is not installed)."""
    from improv.corpus.generator import BluesGenerator, Voice
    from improv.engine.performer import Call

    form = config.form_obj()
    beats = max(2, int(config.bars * form.metre.beats_per_bar) - 2)
    generator = BluesGenerator(7, config.key_obj)
    return [
        Call(
            tuple(
                generator.phrase(
                    form.changes(), form.metre, start=0.0, beats=beats, voice=Voice(density=d)
                )
            ),
            "generated",
        )
        for d in (0.4, 0.6, 0.8)
    ]


RECORD_PERIOD_S = 4.0
"""The record is rewritten this often: a kill loses at most this much of the jam."""


async def _keep_record(config: Any, agent: Any) -> None:
    """Rewrite the record every few seconds, in a thread (the loop only flushes)."""
    from improv.errors import ImprovError

    failing = False
    while True:
        await asyncio.sleep(RECORD_PERIOD_S)
        chords = agent.timeline.changes(0.0, max(agent.journal.end, agent.form.beats))
        try:
            agent.journal.flush()
            await asyncio.to_thread(_write_record, config, agent.swing, agent.metre, chords)
        except (OSError, ImprovError) as exc:  # a full disk: said once, tried again
            if not failing:
                log.error("--record %s: cannot write (%s); trying again", config.record, exc)
            failing = True
        else:
            failing = False


def _record(config: Any, agent: Any) -> None:
    chords = agent.timeline.changes(0.0, max(agent.journal.end, agent.form.beats))
    _write_record(config, agent.swing, agent.metre, chords)


_RECORD_LOCK = threading.Lock()
"""One writer at a time: a periodic write still running in its thread when the jam
ends reads the journal and writes under it, so the last write holds everything."""


def _write_record(config: Any, swing: Any, metre: Any, chords: Any) -> None:
    """The journal as a complete MIDI file (the agent's notes as they sounded, swung)."""
    from improv.engine.context import CALL
    from improv.engine.recording import journal_path, read_journal
    from improv.music.notes import Note

    performer: list[Note] = []
    played: list[Note] = []
    with _RECORD_LOCK:
        journal = journal_path(config.record)
        if not journal.is_file():
            return  # the final record is written and its journal removed
        for role, n in read_journal(journal):
            if role == CALL:
                performer.append(n)
            else:
                start = swing.render(n.onset)
                end = swing.render(n.end)
                played.append(Note(n.pitch, n.velocity, start, max(1e-3, end - start)))
        _write_mid(config, performer, played, metre, chords)


def _write_mid(config: Any, performer: Any, played: Any, metre: Any, chords: Any) -> None:
    from improv.io.midifile import Track, write_jam

    write_jam(
        config.record,
        [
            Track("performer", performer, channel=0),
            Track("improv", played, channel=max(1, config.channel_out - 1)),
        ],
        bpm=config.tempo,
        metre=metre,
        chords=chords,
    )
