"""``improv bench latency``: measure an agent's timing from outside, through real MIDI ports.

The agent is improv itself (``--spawn``, with any ``improv jam`` options after ``--``)
or any MIDI agent given by its ports (``--in``: where the harness sends calls, ``--out``:
where it listens). See :mod:`improv.bench.latency` and ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

EPILOG = """examples:
  improv bench latency --spawn --turns 10                 improv's default configuration
  improv bench latency --spawn --tempo 240 --bars 2 -- --model rules
  improv bench latency --spawn --matrix model=rules,markov tempo=120,240 burn=0,1
  improv bench latency --in 'synth:in' --out 'synth:out' --send-clock --json
  improv bench latency --in 'agent:in' --out 'agent:out' --pid 4242 --mode phrase
  improv bench latency --in 'improv:in' --out 'improv:out' --wait-count-in 30   then start the jam
"""


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "latency",
        help="answer latency, onset error and jitter of a MIDI agent, through real ports",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = parser.add_argument_group("the agent")
    target.add_argument("--spawn", action="store_true", help="start `improv jam` itself")
    target.add_argument("--in", dest="agent_in", metavar="PORT", help="the agent's input port")
    target.add_argument("--out", dest="agent_out", metavar="PORT", help="the agent's output port")
    target.add_argument(
        "--midi-api", default="auto", help="alsa, jack, coremidi or auto (as for improv jam)"
    )
    target.add_argument(
        "--pid",
        type=int,
        metavar="PID",
        help="the external agent's process: CPU and memory of it and its children "
        "(a spawned jam is sampled by itself)",
    )
    target.add_argument(
        "--wait-count-in",
        type=float,
        metavar="S",
        help="wait up to S seconds for the agent's count-in clicks (channel 10) to align "
        "the bar lines (default: 0, or two bars and a bit with --spawn); start the agent "
        "after the harness",
    )
    target.add_argument(
        "--answer-channel",
        default="all",
        metavar="N|all",
        help="the agent's answer channel 1-16 (default: all but 10, the click channel)",
    )
    play = parser.add_argument_group("the performer")
    play.add_argument("--tempo", type=float, help="BPM (default: a --calls file's own, else 120)")
    play.add_argument("--mode", choices=("trade", "phrase"), default="trade")
    play.add_argument("--bars", type=int, default=4, choices=(2, 4, 8, 12), help="bars per call")
    play.add_argument("--turns", type=int, default=10, help="calls measured per configuration")
    play.add_argument("--minutes", type=float, help="soak: play for this long instead")
    play.add_argument("--warmup", type=int, default=1, help="calls played first, not measured")
    play.add_argument(
        "--send-clock", action="store_true", help="send MIDI clock (spawned: jam --clock midi)"
    )
    play.add_argument(
        "--calls",
        metavar="FILE|DIR|examples",
        help="MIDI file(s) to cut calls from (default: generated blues phrases)",
    )
    play.add_argument("--seed", type=int, default=0, help="seed of the generated calls")
    play.add_argument("--key", help="key of the calls (default: a --calls file's own, else F)")
    compare = parser.add_argument_group("comparing")
    compare.add_argument(
        "--matrix",
        nargs="+",
        metavar="KEY=V1,V2",
        help="configurations to compare, e.g. model=rules,markov tempo=120,240 burn=0,1",
    )
    compare.add_argument("--block", type=int, default=1, help="turns in a row per configuration")
    compare.add_argument("--burn", action="store_true", help="a CPU-burning process per core")
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print one JSON object")
    out.add_argument("--csv", type=Path, metavar="PATH", help="per-turn CSV (+ .events.csv)")
    out.add_argument("--html", type=Path, metavar="PATH", help="HTML report with plots")
    out.add_argument("--mqtt", metavar="URL", help="also time the agent's MQTT messages")
    out.add_argument(
        "--mqtt-prefix", metavar="P", help="external agent's topic prefix (default improv/+/)"
    )
    out.add_argument(
        "--no-calibrate", action="store_true", help="skip the transport loopback calibration"
    )
    parser.add_argument(
        "jam_args", nargs=argparse.REMAINDER, help="after --: options for the spawned improv jam"
    )
    parser.set_defaults(run=run)


def _channels(text: str) -> frozenset[int] | None:
    from improv.errors import UsageError

    if text.lower() in ("all", "any"):
        return None
    try:
        channel = int(text)
    except ValueError:
        channel = 0
    if not 1 <= channel <= 16:
        raise UsageError(f"--answer-channel must be 1-16 or all, not {text!r}")
    return frozenset({channel - 1})


def _jam_value(jam_args: list[str], option: str) -> str | None:
    """The value the spawned jam's options give ``option`` (``--o V`` or ``--o=V``)."""
    value = None
    for i, arg in enumerate(jam_args):
        if arg == option and i + 1 < len(jam_args):
            value = jam_args[i + 1]
        elif arg.startswith(option + "="):
            value = arg.split("=", 1)[1]
    return value


def _plan(args: argparse.Namespace, calls: Path | None, jam_args: list[str]) -> Any:
    """What the calls are played at: the options (the bench's, then the spawned jam's),
    else a single calls file's own tempo, key, metre and changes, else the defaults."""
    from improv.bench.calls import midi_files, plan_calls
    from improv.errors import UsageError
    from improv.music.time import Metre

    metre_text = _jam_value(jam_args, "--metre")
    try:
        metre = Metre.parse(metre_text) if metre_text else None
    except ValueError as exc:
        raise UsageError(f"--metre: {exc}") from None
    return plan_calls(
        midi_files(calls) if calls is not None else [],
        tempo=args.tempo,
        key=args.key or _jam_value(jam_args, "--key"),
        metre=metre,
        form=_jam_value(jam_args, "--form"),
    )


def _jam_plan_args(plan: Any, jam_args: list[str]) -> list[str]:
    """Options that make the spawned jam play the plan's key, metre and changes (the
    tempo is each configuration's own), where its options do not say already."""
    out: list[str] = []
    if _jam_value(jam_args, "--key") is None:
        out += ["--key", plan.key]
    if _jam_value(jam_args, "--metre") is None:
        out += ["--metre", str(plan.metre)]
    if plan.changes is not None and _jam_value(jam_args, "--changes") is None:
        out += ["--changes", str(plan.changes)]
    return out


def settings_from_args(args: argparse.Namespace) -> Any:
    """Check the options; the harness :class:`~improv.bench.latency.Settings`."""
    from improv.bench.calls import examples_folder
    from improv.bench.latency import Settings
    from improv.bench.matrix import Base, expand, parse_matrix
    from improv.errors import UsageError
    from improv.io.midi import resolve_api

    jam_args = list(args.jam_args or [])
    if jam_args and jam_args[0] == "--":
        jam_args = jam_args[1:]
    if args.spawn == bool(args.agent_in or args.agent_out):
        raise UsageError("give --spawn, or the agent's ports with --in and --out")
    if not args.spawn and not (args.agent_in and args.agent_out):
        raise UsageError("an external agent needs both --in and --out")
    if jam_args and not args.spawn:
        raise UsageError(f"options after -- are for a spawned improv jam: {' '.join(jam_args)}")
    if args.turns < 1 or args.warmup < 0 or args.block < 1:
        raise UsageError("--turns and --block must be at least 1, --warmup at least 0")
    if args.minutes is not None and args.minutes <= 0:
        raise UsageError("--minutes must be positive")
    if args.wait_count_in is not None and not 0 <= args.wait_count_in <= 600:
        raise UsageError("--wait-count-in must be 0 to 600 seconds")
    if args.pid is not None:
        if args.spawn:
            raise UsageError("--pid is for an external agent: a spawned jam is sampled itself")
        if args.pid <= 0 or not Path(f"/proc/{args.pid}").is_dir():
            raise UsageError(f"--pid {args.pid}: no such process")
    calls = examples_folder() if args.calls == "examples" else None
    calls = calls or (Path(args.calls) if args.calls else None)
    plan = _plan(args, calls, jam_args)
    tempo = plan.tempo
    if args.spawn:  # the spawned jam plays what the calls are played at
        jam_args += _jam_plan_args(plan, jam_args)
    base = Base(tempo, args.mode, args.bars, burn=args.burn, send_clock=args.send_clock)
    configs = expand(base, parse_matrix(args.matrix or []), spawn=args.spawn)
    return Settings(
        api=resolve_api(args.midi_api),
        configs=configs,
        spawn=args.spawn,
        agent_in=args.agent_in,
        agent_out=args.agent_out,
        jam_args=jam_args,
        turns=None if args.minutes is not None else args.turns,
        minutes=args.minutes,
        warmup=args.warmup,
        block=args.block,
        calls=calls,
        seed=args.seed,
        key=plan.key,
        form=plan.form,
        metre=plan.metre,
        plan=plan,
        channels=_channels(args.answer_channel),
        mqtt=args.mqtt,
        mqtt_prefix=args.mqtt_prefix,
        calibrate=not args.no_calibrate,
        count_in_wait_s=args.wait_count_in,
        pid=args.pid,
    )


def run(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from improv.bench import latency, report
    from improv.files import check_output

    settings = settings_from_args(args)
    for option, path in (("--csv", args.csv), ("--html", args.html)):
        if path is not None:
            check_output(path, option)  # before the run, not after it
    err = Console(stderr=True)
    err.print(settings.plan.describe(), highlight=False)
    for config in settings.configs:
        if config.skipped:
            err.print(f"[yellow]skipping {config.name}[/]: {config.skipped}", highlight=False)
    total = latency.total_turns(settings, settings.configs)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} calls"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("bench latency", total=total)

        def on_turn(target: latency.TargetData, turn: Any) -> None:
            progress.update(task, advance=1, description=target.config.name)

        data = asyncio.run(latency.run(settings, on_turn))
    measured = report.measure_run(data)
    summary = report.summarise(data, measured)
    if args.csv:
        turns_csv, events_csv = report.write_csv(args.csv, data, measured)
        err.print(f"wrote {turns_csv} and {events_csv}", highlight=False)
    if args.html:
        err.print(f"wrote {report.write_html(args.html, data, measured, summary)}", highlight=False)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        report.print_summary(summary, Console())
    ran = [e for e in summary["configurations"] if e.get("turns_measured")]
    return 0 if ran else 1
