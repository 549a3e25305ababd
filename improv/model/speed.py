"""How fast a model steps: per-token time on one CPU thread (and on CUDA when present).

A step is what the engine pays for each token: ``advance`` by one token, then
``next_log_probs``. The tokens replayed are the model's own samples, so the timings
are those of music the model makes, not of random ids. The real-time factor compares
the time a response takes to generate with the time it takes to play at 120 BPM.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from improv.model.api import StreamingLM

BPM = 120.0
DEFAULT_TOKENS_PER_BEAT = 4.0
"""Fallback when a checkpoint does not say how many tokens a beat of its music takes."""


def sample_tokens(stream: StreamingLM, n: int, seed: int = 0) -> list[int]:
    """``n`` tokens sampled from the model itself (temperature 1), from a fresh stream."""
    rng = np.random.default_rng(seed)
    stream.reset()
    out: list[int] = []
    for _ in range(n):
        p = np.exp(stream.next_log_probs().astype(np.float64))
        token = int(rng.choice(len(p), p=p / p.sum()))
        stream.advance((token,))
        out.append(token)
    stream.reset()
    return out


def _percentiles(times_s: list[float]) -> dict[str, float]:
    ms = np.asarray(times_s) * 1e3
    return {
        "step_ms_p50": round(float(np.percentile(ms, 50)), 4),
        "step_ms_p99": round(float(np.percentile(ms, 99)), 4),
        "step_ms_max": round(float(ms.max()), 4),
        "tokens_per_second": round(float(len(ms) / (ms.sum() / 1e3)), 1),
    }


def _realtime_factor(tokens_per_second: float, tokens_per_beat: float, bpm: float) -> float:
    playback_tokens_per_second = tokens_per_beat * bpm / 60.0
    return round(tokens_per_second / playback_tokens_per_second, 1)


def time_stream(
    stream: StreamingLM,
    tokens: list[int],
    repeats: int = 1,
    warmup: int = 50,
) -> list[float]:
    """Seconds of each step (advance one token + next_log_probs), replaying ``tokens``."""
    times: list[float] = []
    clock = time.perf_counter
    for r in range(repeats):
        stream.reset()
        for i, token in enumerate(tokens):
            t0 = clock()
            stream.advance((token,))
            stream.next_log_probs()
            if r > 0 or i >= warmup:
                times.append(clock() - t0)
    return times


def bench_cpu(
    stream: StreamingLM,
    steps: int = 2000,
    tokens_per_beat: float = DEFAULT_TOKENS_PER_BEAT,
    seed: int = 0,
) -> dict[str, Any]:
    """Step times on one CPU thread (torch and the process's BLAS set to one thread)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _one_blas_thread():
            tokens = sample_tokens(stream, steps, seed)
            times = time_stream(stream, tokens)
    finally:
        torch.set_num_threads(previous)
    out: dict[str, Any] = {"device": "cpu", "threads": 1, "steps": len(times)}
    out.update(_percentiles(times))
    out["realtime_factor"] = _realtime_factor(out["tokens_per_second"], tokens_per_beat, BPM)
    return out


def bench_cuda(
    step: Callable[[int], None],
    tokens: list[int],
    tokens_per_beat: float = DEFAULT_TOKENS_PER_BEAT,
) -> dict[str, Any]:
    """Step times of a CUDA step function (one token in, its distribution ready)."""
    times: list[float] = []
    for i, token in enumerate(tokens):
        t0 = time.perf_counter()
        step(token)
        torch.cuda.synchronize()
        if i >= 50:
            times.append(time.perf_counter() - t0)
    out: dict[str, Any] = {"device": torch.cuda.get_device_name(), "steps": len(times)}
    out.update(_percentiles(times))
    out["realtime_factor"] = _realtime_factor(out["tokens_per_second"], tokens_per_beat, BPM)
    return out


def use_one_thread() -> None:
    """Run torch and numpy's BLAS on one thread, process-wide.

    The engine calls this before jamming: a streaming step is a few small matrix-vector
    products, which extra threads slow down (and steal from the event loop) on a
    machine with few cores.
    """
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)


class _one_blas_thread:
    """Limit numpy's BLAS to one thread while timing, then restore what was there."""

    def __enter__(self) -> None:
        from threadpoolctl import threadpool_limits

        self._limits = threadpool_limits(1)

    def __exit__(self, *exc: object) -> None:
        self._limits.restore_original_limits()


def torch_step(module: torch.nn.Module) -> Callable[[int], None]:
    """A one-token step of the torch module on its own device (for the CUDA figures):
    the LSTM carries its state; the transformer re-reads its last window."""
    from collections import deque

    from improv.model.lstm import LSTMLM

    device = next(module.parameters()).device
    if isinstance(module, LSTMLM):
        lstm = module
        state: tuple[torch.Tensor, torch.Tensor] | None = None

        def lstm_step(token: int) -> None:
            nonlocal state
            with torch.inference_mode():
                x = lstm.wte(torch.tensor([[token]], device=device))
                h, state = lstm.lstm(x, state)
                torch.log_softmax(lstm.head(h[:, -1]), dim=-1)

        return lstm_step
    window: deque[int] = deque(maxlen=int(module.config.window))  # type: ignore[union-attr,arg-type]
    seen = 0

    def transformer_step(token: int) -> None:
        nonlocal seen
        window.append(token)
        seen += 1
        with torch.inference_mode():
            idx = torch.tensor([list(window)], device=device)
            logits, _ = module(idx, start_pos=seen - len(window))
            torch.log_softmax(logits[0, -1], dim=-1)

    return transformer_step
