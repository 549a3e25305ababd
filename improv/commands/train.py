"""``improv train``: train an LSTM or a transformer on a folder of MIDI solos."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from improv.model.registry import data_dir

SIZES = ("xs", "s", "m", "l")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "train",
        help="train a model (and its Markov baseline) on a folder of MIDI solos",
        description="Train an LSTM or a transformer on the solos in a folder of MIDI files "
        "(chords as markers), validated on held-out tunes; the Markov baseline is fitted on "
        "the same data and stored in the checkpoint. Ctrl-C saves a state that --resume "
        "continues. --finetune CHECKPOINT --pairs fine-tunes a model on answering: the "
        "call/response pairs of the training solos, the loss on the answers only.",
    )
    parser.add_argument(
        "--data", type=Path, default=data_dir(), help="folder of MIDI files (default: data/wjazzd)"
    )
    parser.add_argument("--arch", choices=("lstm", "transformer"), default="lstm")
    parser.add_argument("--size", choices=SIZES, default="s", help="model size (default s)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="optimisation steps")
    length.add_argument("--epochs", type=float, help="passes over the training tokens")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--blues-weight",
        type=float,
        default=3.0,
        help="sampling weight of blues solos relative to the others (default 3)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=256, help="tokens per training window")
    parser.add_argument(
        "--lr", type=float, help="peak learning rate (default 3e-3; 1e-3 with --finetune)"
    )
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument(
        "--no-augment", action="store_true", help="no transposition of the training solos"
    )
    parser.add_argument(
        "--finetune",
        type=Path,
        metavar="CHECKPOINT",
        help="start from this checkpoint's weights (its architecture and size; "
        "its Markov baseline is kept)",
    )
    parser.add_argument(
        "--pairs",
        action="store_true",
        help="train on call/response pairs: the call (and earlier phrases) as context, "
        "the loss on the answer only",
    )
    parser.add_argument(
        "--pair-context",
        type=int,
        default=2,
        help="with --pairs: earlier phrases before a call, cycling 0..N (default 2)",
    )
    parser.add_argument(
        "--solo-mix",
        type=float,
        default=0.5,
        help="with --pairs: share of batches that are whole-solo windows (default 0.5)",
    )
    parser.add_argument(
        "--selection",
        action="store_true",
        help="validate on a selection set carved out of the training tunes (by tune), "
        "not on the validation tunes: for choosing options",
    )
    parser.add_argument("--out", required=True, type=Path, help="checkpoint file to write")
    parser.add_argument(
        "--baseline-only",
        action="store_true",
        help="fit only the Markov baseline anew into the existing checkpoint --out",
    )
    parser.set_defaults(run=run)


def _command(args: argparse.Namespace) -> str:
    """The run's options as one canonical command line, for the checkpoint."""
    parts = ["improv", "train", "--data", str(args.data), "--arch", args.arch]
    parts += ["--size", args.size]
    if args.steps is not None:
        parts += ["--steps", str(args.steps)]
    if args.epochs is not None:
        parts += ["--epochs", str(args.epochs)]
    parts += ["--seed", str(args.seed), "--blues-weight", str(args.blues_weight)]
    parts += ["--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len)]
    parts += ["--lr", str(args.lr), "--dropout", str(args.dropout)]
    parts += ["--threads", str(args.threads), "--device", args.device]
    if args.no_augment:
        parts.append("--no-augment")
    if args.finetune is not None:
        parts += ["--finetune", str(args.finetune)]
    if args.pairs:
        parts += ["--pairs", "--pair-context", str(args.pair_context)]
        parts += ["--solo-mix", str(args.solo_mix)]
    if args.selection:
        parts.append("--selection")
    parts += ["--out", str(args.out)]
    if args.baseline_only:
        parts.append("--baseline-only")
    return shlex.join(parts)


def _take_architecture(args: argparse.Namespace) -> None:
    """--finetune: architecture, size and dropout are the checkpoint's."""
    from improv.errors import UsageError
    from improv.model.checkpoint import CheckpointError, read_checkpoint

    if args.baseline_only:
        raise UsageError("--finetune and --baseline-only do not go together")
    try:
        ckpt = read_checkpoint(args.finetune)
    except CheckpointError as exc:
        raise UsageError(f"--finetune: {exc}") from exc
    args.arch, args.size = ckpt.arch, ckpt.size
    args.dropout = float(ckpt.config.get("dropout", args.dropout))


def run(args: argparse.Namespace) -> int:
    import signal

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
    from improv.model.build import resolve_device
    from improv.model.dataset import attribution_of, build_token_data
    from improv.model.train import Progress as TrainProgress
    from improv.model.train import TrainOptions, refit_baseline, train_run

    for name in ("steps", "batch_size", "seq_len", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if args.epochs is not None and not 0 < args.epochs < 1e6:
        raise UsageError("--epochs must be positive")
    if args.pair_context < 0:
        raise UsageError("--pair-context must be at least 0")
    if not 0.0 <= args.solo_mix < 1.0:
        raise UsageError(f"--solo-mix must lie in [0, 1): {args.solo_mix}")
    if args.lr is None:
        args.lr = 1e-3 if args.finetune is not None else 3e-3
    if args.finetune is not None:
        _take_architecture(args)
    if not 0 < args.lr <= 10:  # also refuses nan
        raise UsageError(f"--lr must lie in (0, 10], not {args.lr}")
    if not 0 <= args.dropout < 1:
        raise UsageError(f"--dropout must lie in [0, 1), not {args.dropout}")
    check_output(args.out, "--out")
    if args.baseline_only and not args.out.is_file():
        raise UsageError(f"--baseline-only: no checkpoint at --out {args.out}")
    console = Console(stderr=True)
    device = resolve_device(args.device)
    corpus = read_folder(args.data)
    if not corpus.solos:
        raise UsageError(f"--data {args.data}: none of its MIDI files could be read")
    console.print(
        f"read {len(corpus.solos)} solos from {args.data}"
        + (f" ({len(corpus.skipped)} files skipped)" if corpus.skipped else "")
    )
    with console.status("encoding solos (phrases, roles, transpositions)"):
        data, _ = build_token_data(
            corpus.solos,
            augment=not args.no_augment,
            blues_weight=args.blues_weight,
            pairs=args.pairs,
            pair_context=args.pair_context,
            selection=args.selection,
        )
    data.description.update(
        folder=args.data.name,
        attribution=attribution_of(args.data),
        files=len(corpus.files),
        skipped_files=len(corpus.skipped),
    )
    d = data.description
    console.print(
        f"train: {d['train_solos']} solos ({d['train_blues_solos']} blues), "
        f"{d['train_streams']} streams, {d['train_tokens']:,} tokens; "
        f"{'selection' if args.selection else 'validation'}: {d['val_solos']} solos, "
        f"{d['val_tokens']:,} tokens"
        + (f"; pairs: {d['train_pairs']:,} train, {d['val_pairs']:,} val" if args.pairs else "")
    )
    if args.baseline_only:
        with console.status("fitting the Markov baseline (order chosen on validation data)"):
            metrics = refit_baseline(args.out, data, _command(args))
        console.print(
            f"[green]updated[/] {args.out}: Markov baseline of order {metrics['markov_order']}"
        )
        return 0
    options = TrainOptions(
        arch=args.arch,
        size=args.size,
        steps=args.steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        lr=args.lr,
        dropout=args.dropout,
        seed=args.seed,
        threads=args.threads,
        finetune=None if args.finetune is None else str(args.finetune),
        pairs=args.pairs,
        pair_context=args.pair_context,
        solo_mix=args.solo_mix if args.pairs else 0.0,
        selection=args.selection,
    )
    stop = {"requested": False}

    def on_sigint(signum: int, frame: object) -> None:
        stop["requested"] = True

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("val {task.fields[val]}"),
        TextColumn("{task.fields[pair]}"),
        TextColumn("{task.fields[tps]} tok/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    previous = {sig: signal.signal(sig, on_sigint) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Progress(*columns, console=console) as bar:
            task = bar.add_task(
                f"{args.arch}-{args.size}", total=None, loss="-", val="-", pair="", tps="-"
            )

            def show(p: TrainProgress) -> None:
                if not console.is_terminal and (p.step % 100 == 0 or p.step == p.total):
                    val = "-" if p.val_loss is None else f"{p.val_loss:.4f}"
                    pair = "" if p.val_pair_loss is None else f" pair {p.val_pair_loss:.4f}"
                    console.print(
                        f"step {p.step}/{p.total} loss {p.loss:.4f} val {val}{pair} "
                        f"{p.tokens_per_second:,.0f} tok/s"
                    )
                bar.update(
                    task,
                    completed=p.step,
                    total=p.total,
                    loss=f"{p.loss:.3f}",
                    val="-" if p.val_loss is None else f"{p.val_loss:.3f}",
                    pair="" if p.val_pair_loss is None else f"pair {p.val_pair_loss:.3f}",
                    tps=f"{p.tokens_per_second:,.0f}",
                )

            result = train_run(
                data,
                options,
                out=args.out,
                device=device,
                resume=args.resume,
                command=_command(args),
                on_progress=show,
                should_stop=lambda: stop["requested"],
                on_phase=lambda text: console.print(text),
            )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not result.finished:
        console.print(
            f"[yellow]interrupted[/]: state saved to {result.state_path}; "
            "run the same command with --resume to continue"
        )
        return 130
    m = result.metrics
    console.print(f"[green]wrote[/] {result.out} ({result.out.stat().st_size / 1e6:.1f} MB)")
    if "val_pair_loss" in m:
        console.print(f"answers: {m['val_pair_loss']:.4f} nats per token given their calls")
    if "val_bits_per_note" in m:
        console.print(
            f"validation: {m['val_bits_per_note']:.3f} bits/note "
            f"(Markov baseline, order {m['markov_order']}: "
            f"{m['baseline_val_bits_per_note']:.3f})"
        )
    return 0
