"""``improv eval``: bits per note against the Markov baseline, and how the answers compare
with human ones (see :mod:`improv.model.evaluate`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from improv.model.registry import check_model, data_dir

MARKOV = "markov"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "eval",
        help="judge a model on a folder of solos: bits per note, musical statistics of answers",
        description="Score the solos in a folder with a model and its stored Markov baseline "
        "(bits per note), answer every call/response pair with both, and compare the "
        "answers' statistics with the human answers (and with human answers paired to "
        "random calls). --model markov fits a Markov model on the folder's training tunes "
        "and judges it on its validation tunes, with no checkpoint.",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="checkpoint path or shipped name (default: the default shipped model), or 'markov'",
    )
    parser.add_argument(
        "--data", type=Path, default=data_dir(), help="folder of MIDI solos (default: data/wjazzd)"
    )
    parser.add_argument(
        "--split",
        choices=("all", "val", "train", "selection"),
        default="all",
        help="judge all solos, or only the validation (or training) tunes of the folder's "
        "split by tune, or the selection set carved out of the training tunes (where "
        "options are chosen, as train --selection does) (default all)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--plot", type=Path, help="write a PNG of the distributions here")
    parser.add_argument("--seed", type=int, default=0, help="sampling and pair-sampling seed")
    parser.add_argument(
        "--max-pairs", type=int, default=None, help="answer a random sample of this many pairs"
    )
    parser.add_argument(
        "--listen",
        type=Path,
        default=None,
        metavar="DIR",
        help="write a MIDI file (call, answer, chord markers) and a piano-roll PNG for the "
        "first pairs' model answers here",
    )
    parser.add_argument(
        "--listen-pairs",
        type=int,
        default=8,
        metavar="K",
        help="how many pairs --listen writes (default 8)",
    )
    parser.add_argument(
        "--candidates",
        type=int,
        default=4,
        metavar="N",
        help="answer as the jam does: draft N answers (free and motif-seeded), keep the "
        "critic's choice, shape its dynamics (default 4, about what a jam drafts in its "
        "lead on two CPU cores)",
    )
    parser.add_argument("--temperature", type=float, default=1.0, help="default 1.0")
    parser.add_argument("--top-p", type=float, default=0.95, help="default 0.95")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from improv.corpus.folder import read_folder
    from improv.errors import UsageError
    from improv.files import check_output
    from improv.model.evaluate import evaluate
    from improv.model.sampling import SamplingOptions

    if args.max_pairs is not None and args.max_pairs < 1:
        raise UsageError("--max-pairs must be at least 1")
    try:
        options = SamplingOptions(args.temperature, args.top_p)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.plot is not None:
        check_output(args.plot, "--plot")
    check_model(args.model, "eval")  # the names every command takes (improv.model.registry)
    if args.listen_pairs < 1:
        raise UsageError("--listen-pairs must be at least 1")
    if args.candidates < 1:
        raise UsageError("--candidates must be at least 1")
    if args.listen is not None and args.listen.exists() and not args.listen.is_dir():
        raise UsageError(f"--listen {args.listen}: a file; give a folder")
    console = Console(stderr=True)
    corpus = read_folder(args.data)
    if not corpus.solos:
        raise UsageError(f"--data {args.data}: none of its MIDI files could be read")
    if args.model == MARKOV:
        model, baseline, solos = _fit_markov(corpus.solos, console)
    else:
        from improv.model.checkpoint import load_model

        loaded = load_model(args.model, device="cpu")
        model, baseline = loaded.stream(), loaded.baseline()
        solos = _select(corpus.solos, args.split, loaded.checkpoint.data.get("val_tunes"))
    if not solos:
        raise UsageError(f"--data {args.data}: no solo in the {args.split} split")
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        report = evaluate(
            model,
            baseline,
            solos,
            seed=args.seed,
            max_pairs=args.max_pairs,
            options=options,
            progress=progress,
            examples_kept=args.listen_pairs if args.listen is not None else 0,
            candidates=args.candidates,
        )
    if args.plot is not None:
        from improv.model.eval_plot import plot_report

        plot_report(report, args.plot)
        console.print(f"plot written to {args.plot}")
    if args.listen is not None:
        written = _write_listening(report, args.listen)
        console.print(f"{written} pairs (MIDI and piano roll) written to {args.listen}")
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        _print_report(report)
    return 0


def _write_listening(report: Any, folder: Path) -> int:
    """For each kept pair: ``pair-NN.mid`` (call and answer tracks, chord markers) and
    ``pair-NN.png`` (their piano roll over the chords). Returns how many pairs."""
    from improv.io.midi.files import Track, write_jam
    from improv.pianoroll import piano_roll

    for number, (task, answer) in enumerate(report.examples, start=1):
        stem = folder / f"pair-{number:02d}"
        write_jam(
            stem.with_suffix(".mid"),
            [Track("call", task.call, channel=0), Track(report.model_name, answer, channel=1)],
            bpm=task.tempo_bpm,
            metre=task.metre,
            chords=task.chords,
            title=f"improv eval: pair {number}",
        )
        piano_roll(
            stem.with_suffix(".png"),
            {"call": task.call, f"answer ({report.model_name})": answer},
            chords=task.chords,
            metre=task.metre,
            title=f"pair {number}: call and {report.model_name}'s answer "
            f"(turn shaded, beats {task.start:.2f}-{task.end:.2f})",
            window=(task.start, task.end),
        )
    return len(report.examples)


def _select(solos: list[Any], split: str, val_tunes: list[str] | None) -> list[Any]:
    """The solos of a split: the validation tunes the checkpoint names, when it names
    them, else those of the split by tune; ``selection`` the training tunes' own
    held-out share (:data:`improv.model.dataset.SELECTION_SALT`)."""
    from improv.corpus.split import split_by_tune, tune_key
    from improv.model.dataset import SELECTION_SALT

    if split == "all":
        return solos
    if split == "selection":
        train = _select(solos, "train", val_tunes)
        return list(split_by_tune(train, salt=SELECTION_SALT).validation)
    if val_tunes is not None:
        held = set(val_tunes)
        return [s for s in solos if (tune_key(s) in held) == (split == "val")]
    parts = split_by_tune(solos)
    return list(parts.validation if split == "val" else parts.train)


def _fit_markov(solos: Any, console: Any) -> tuple[Any, Any, list[Any]]:
    """A Markov model fitted on the training tunes, and the validation solos to judge."""
    from improv.model.dataset import build_token_data
    from improv.model.markov import fit_markov
    from improv.model.train import MARKOV_DEFAULT_ORDER

    with console.status("fitting a Markov model on the training tunes"):
        data, split = build_token_data(solos, augment=False)
        orders = range(1, 12) if data.val else [MARKOV_DEFAULT_ORDER]
        fit = fit_markov(data.train, data.val, data.vocab_size, orders=orders)
    console.print(
        f"Markov model of order {fit.order} fitted on {len(split['train'])} solos; "
        f"judged on {len(split['val'])} validation solos"
    )
    return fit.model, fit.model, list(split["val"])


def _print_report(report: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from improv.model.evaluate import SOURCES
    from improv.model.response_stats import POOLED_NAMES, STAT_NAMES

    console = Console()
    console.print(
        f"[bold]{report.model_name}[/]: {report.bits_per_note:.3f} bits/note   "
        f"[bold]{report.baseline_name}[/] (baseline): {report.baseline_bits_per_note:.3f} "
        f"bits/note   ({report.notes:,} notes in {report.solos} solos)"
    )
    table = Table(title=f"answers to {report.pairs} calls (means)")
    table.add_column("statistic")
    for source in SOURCES:
        table.add_column(source.replace("_", " "), justify="right")
    summary = report.summary()
    for stat in (*STAT_NAMES, *POOLED_NAMES):
        table.add_row(stat, *(f"{summary[source][stat]:.3f}" for source in SOURCES))
    console.print(table)
