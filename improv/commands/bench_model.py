"""``improv bench model``: per-token step time of a model, on one CPU thread (and CUDA)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "model",
        help="per-token step time, tokens per second and real-time factor of a model",
        description="Time a model's streaming step (advance one token, next-token "
        "distribution) on one CPU thread, and on CUDA when present.",
    )
    parser.add_argument("--model", default=None, help="checkpoint path or shipped name")
    parser.add_argument("--steps", type=int, default=3000, help="tokens to time (default 3000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from improv.errors import UsageError
    from improv.model.checkpoint import load_model
    from improv.model.registry import check_model
    from improv.model.speed import (
        DEFAULT_TOKENS_PER_BEAT,
        bench_cpu,
        bench_cuda,
        sample_tokens,
        torch_step,
    )

    if args.steps < 100:
        raise UsageError("--steps must be at least 100")
    check_model(args.model, "bench model")
    loaded = load_model(args.model, device="cpu")
    ckpt = loaded.checkpoint
    per_beat = float(ckpt.data.get("tokens_per_beat", DEFAULT_TOKENS_PER_BEAT))
    stream = loaded.stream()
    result: dict[str, Any] = {
        "model": loaded.name,
        "path": str(loaded.path),
        "arch": ckpt.arch,
        "params": ckpt.params,
        "tokens_per_beat": round(per_beat, 3),
        "bpm": 120,
    }
    result.update(bench_cpu(stream, steps=args.steps, tokens_per_beat=per_beat))
    result["cuda"] = None
    if torch.cuda.is_available():
        module = loaded.module.to("cuda").eval()
        tokens = sample_tokens(stream, min(args.steps, 1000))
        result["cuda"] = bench_cuda(torch_step(module), tokens, per_beat)
    if args.json:
        print(json.dumps(result))
    else:
        _print_table(result)
    return 0


def _print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"improv bench model: {result['model']} ({result['arch']}, "
        f"{result['params']:,} parameters)"
    )
    table.add_column("device")
    for col in ("step ms p50", "step ms p99", "tokens/s", "real-time factor @120 BPM"):
        table.add_column(col, justify="right")
    rows = [("CPU, 1 thread", result)]
    if result["cuda"] is not None:
        rows.append((result["cuda"]["device"], result["cuda"]))
    for label, r in rows:
        table.add_row(
            label,
            f"{r['step_ms_p50']:.3f}",
            f"{r['step_ms_p99']:.3f}",
            f"{r['tokens_per_second']:,.0f}",
            f"{r['realtime_factor']:,.0f}x",
        )
    Console().print(table)
