"""Training of the neural models on token streams: batches, schedule, resumable state.

The loop knows nothing of MIDI: it gets token streams (one per solo and transposition)
with sampling weights, and validation streams. A batch is ``batch_size`` windows of
``seq_len`` tokens, each from a stream drawn in proportion to weight x length, at a
uniformly drawn offset; a window at offset 0 starts with the start-of-stream token, as
a stream does at inference. Seeds (numpy for batches, torch for init and dropout) and
the full state (model, optimiser, step, both generators) make a run repeatable and
resumable after an interruption.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from improv.errors import ImprovError
from improv.model.api import StreamingLM
from improv.model.lstm import LSTMLM, LSTMConfig, LSTMStream
from improv.model.transformer import TransformerConfig, TransformerLM, TransformerStream

ARCHS = ("lstm", "transformer")

SIZES: dict[str, dict[str, dict[str, int]]] = {
    "lstm": {
        "xs": {"n_embd": 32, "n_hidden": 64, "n_layer": 1},
        "s": {"n_embd": 64, "n_hidden": 256, "n_layer": 2},
        "m": {"n_embd": 96, "n_hidden": 384, "n_layer": 2},
        "l": {"n_embd": 128, "n_hidden": 512, "n_layer": 2},
    },
    "transformer": {
        "xs": {"n_layer": 1, "n_head": 2, "n_embd": 32, "window": 64},
        "s": {"n_layer": 4, "n_head": 4, "n_embd": 128, "window": 256},
        "m": {"n_layer": 4, "n_head": 6, "n_embd": 192, "window": 256},
        "l": {"n_layer": 6, "n_head": 6, "n_embd": 192, "window": 384},
    },
}
"""Named sizes; ``s`` is the default, ``xs`` serves tests."""


def build_model(arch: str, size: str, vocab_size: int, dropout: float = 0.1) -> nn.Module:
    """A fresh model of a named architecture and size."""
    if arch not in SIZES:
        raise ImprovError(f"unknown architecture {arch!r} (choose from {', '.join(ARCHS)})")
    if size not in SIZES[arch]:
        raise ImprovError(
            f"unknown size {size!r} for {arch} (choose from {', '.join(SIZES[arch])})"
        )
    kwargs = SIZES[arch][size]
    if arch == "lstm":
        return LSTMLM(LSTMConfig(vocab_size=vocab_size, dropout=dropout, **kwargs))
    return TransformerLM(TransformerConfig(vocab_size=vocab_size, dropout=dropout, **kwargs))


def model_from_config(arch: str, config: dict[str, Any]) -> nn.Module:
    """A model of an architecture from its stored config (as in a checkpoint)."""
    if arch == "lstm":
        return LSTMLM(LSTMConfig(**config))
    if arch == "transformer":
        return TransformerLM(TransformerConfig(**config))
    raise ImprovError(f"unknown architecture {arch!r}")


def stream_for(model: nn.Module, name: str) -> StreamingLM:
    """The streaming wrapper of a trained model (numpy steps on the CPU)."""
    if isinstance(model, LSTMLM):
        return LSTMStream(model.cpu().eval(), name)
    if isinstance(model, TransformerLM):
        return TransformerStream(model.cpu().eval(), name)
    raise TypeError(f"not an improv model: {type(model).__name__}")


def arch_of(model: nn.Module) -> str:
    return "lstm" if isinstance(model, LSTMLM) else "transformer"


def resolve_device(device: str) -> torch.device:
    """``auto`` is CUDA when present, the CPU otherwise; ``cuda`` without one is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ImprovError("--device cuda: no CUDA device here (use auto or cpu)")
    if device not in ("cpu", "cuda"):
        raise ImprovError(f"unknown device {device!r} (auto, cpu or cuda)")
    return torch.device(device)


@dataclass
class TokenData:
    """Training and validation token streams (int arrays), with sampling weights."""

    train: list[np.ndarray]
    train_weights: np.ndarray
    val: list[np.ndarray]
    vocab_size: int
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def train_tokens(self) -> int:
        return int(sum(len(s) for s in self.train))


@dataclass
class TrainOptions:
    arch: str = "lstm"
    size: str = "s"
    steps: int | None = None
    epochs: float | None = None  # passes over the (augmented) training tokens
    batch_size: int = 32
    seq_len: int = 256
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup: int = 100
    weight_decay: float = 0.01
    dropout: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    eval_every: int = 100
    eval_windows: int = 64
    threads: int = 2

    def total_steps(self, train_tokens: int) -> int:
        if self.steps is not None:
            return max(1, self.steps)
        epochs = 1.0 if self.epochs is None else self.epochs
        return max(1, math.ceil(epochs * train_tokens / (self.batch_size * self.seq_len)))


@dataclass
class Progress:
    step: int
    total: int
    loss: float
    val_loss: float | None
    tokens_per_second: float


class Trainer:
    """One training run: model, optimiser, data sampler; can stop and resume."""

    def __init__(self, data: TokenData, options: TrainOptions, device: torch.device) -> None:
        if not data.train:
            raise ImprovError("no training data (no solo left after the validation split)")
        self.data = data
        self.options = options
        self.device = device
        torch.manual_seed(options.seed)
        self.model = build_model(options.arch, options.size, data.vocab_size, options.dropout)
        self.model.to(device)
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.model.parameters() if p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": options.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=options.lr,
            betas=(0.9, 0.98),
        )
        self.total = options.total_steps(data.train_tokens)
        self.step = 0
        self.rng = np.random.default_rng(options.seed)
        self.history: list[dict[str, float]] = []
        self.seconds = 0.0
        lengths = np.array([len(s) for s in data.train], dtype=np.float64)
        p = np.asarray(data.train_weights, dtype=np.float64) * lengths
        self._p = p / p.sum()
        self._val_windows = self._make_val_windows()

    # -- batches ------------------------------------------------------------------------

    def _window(self, seq: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray]:
        """Input and target of one window; targets -1 past the stream's end."""
        t, bos = self.options.seq_len, self.data.vocab_size
        x = np.zeros(t, dtype=np.int64)
        y = np.full(t, -1, dtype=np.int64)
        chunk = seq[offset : offset + t]
        y[: len(chunk)] = chunk
        x[0] = bos if offset == 0 else seq[offset - 1]
        x[1 : len(chunk)] = chunk[:-1]
        return x, y

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        picks = self.rng.choice(len(self.data.train), size=self.options.batch_size, p=self._p)
        xs, ys = [], []
        for i in picks:
            seq = self.data.train[i]
            x, y = self._window(seq, int(self.rng.integers(0, len(seq))))
            xs.append(x)
            ys.append(y)
        return (
            torch.from_numpy(np.stack(xs)).to(self.device),
            torch.from_numpy(np.stack(ys)).to(self.device),
        )

    def _make_val_windows(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Fixed validation windows: the start of each validation stream, then further on."""
        seqs = [s for s in self.data.val if len(s)]
        if not seqs:
            return None
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        offset = 0
        while len(xs) < self.options.eval_windows:
            fresh = [s for s in seqs if offset < len(s)]
            if not fresh:
                break
            for seq in fresh[: self.options.eval_windows - len(xs)]:
                x, y = self._window(seq, offset)
                xs.append(x)
                ys.append(y)
            offset += self.options.seq_len
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))

    # -- loop ---------------------------------------------------------------------------

    def lr_at(self, step: int) -> float:
        o = self.options
        if step < o.warmup:
            return o.lr * (step + 1) / o.warmup
        frac = min(1.0, (step - o.warmup) / max(1, self.total - o.warmup))
        return o.lr * (o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))

    @torch.no_grad()
    def validation_loss(self) -> float | None:
        if self._val_windows is None:
            return None
        self.model.eval()
        x_all, y_all = self._val_windows
        total, count = 0.0, 0
        for s in range(0, len(x_all), self.options.batch_size):
            x = x_all[s : s + self.options.batch_size].to(self.device)
            y = y_all[s : s + self.options.batch_size].to(self.device)
            _, loss = self.model(x, y)
            assert loss is not None
            n = int((y >= 0).sum())
            total += float(loss) * n
            count += n
        self.model.train()
        return total / max(1, count)

    def run(
        self,
        on_progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> bool:
        """Train up to the total step count; False when stopped early (state kept)."""
        self.model.train()
        window_tokens, window_start = 0, time.perf_counter()
        tokens_per_second = 0.0
        val_loss: float | None = self.history[-1].get("val_loss") if self.history else None
        while self.step < self.total:
            if should_stop is not None and should_stop():
                return False
            started = time.perf_counter()
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr_at(self.step)
            x, y = self.batch()
            _, loss = self.model(x, y)
            assert loss is not None
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), self.options.grad_clip)
            self.optimizer.step()
            self.step += 1
            self.seconds += time.perf_counter() - started
            window_tokens += int((y >= 0).sum())
            elapsed = time.perf_counter() - window_start
            if elapsed > 2.0:
                tokens_per_second = window_tokens / elapsed
                window_tokens, window_start = 0, time.perf_counter()
            loss_value = float(loss.detach())
            record: dict[str, float] = {"step": self.step, "loss": loss_value}
            if self.step % self.options.eval_every == 0 or self.step == self.total:
                val_loss = self.validation_loss()
                if val_loss is not None:
                    record["val_loss"] = val_loss
            self.history.append(record)
            if on_progress is not None:
                on_progress(
                    Progress(self.step, self.total, loss_value, val_loss, tokens_per_second)
                )
        return True

    # -- resumable state ----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything to continue this run, as plain tensors and JSON text."""
        return {
            "format": "improv-train-state/1",
            "options": json.dumps(asdict(self.options)),
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "total": self.total,
            "seconds": self.seconds,
            "history": json.dumps(self.history),
            "numpy_rng": json.dumps(self.rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
        }

    def save_state(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        torch.save(self.state(), tmp)
        tmp.replace(path)

    def load_state(self, path: Path) -> None:
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
            if not isinstance(state, dict) or state.get("format") != "improv-train-state/1":
                raise ImprovError(f"{path}: not an improv training state")
            saved = json.loads(state["options"])
        except ImprovError:
            raise
        except Exception as exc:
            raise ImprovError(f"{path}: cannot read the training state: {exc}") from exc
        mine = asdict(self.options)
        for key in ("arch", "size", "seq_len", "batch_size", "dropout"):
            if saved.get(key) != mine[key]:
                raise ImprovError(
                    f"{path}: saved with --{key.replace('_', '-')} {saved.get(key)}, "
                    f"not {mine[key]}; resume with the same options"
                )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.seconds = float(state["seconds"])
        self.history = json.loads(state["history"])
        self.rng.bit_generator.state = json.loads(state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"])


def evaluate_streams(stream: StreamingLM, seqs: Sequence[np.ndarray]) -> float:
    """Mean loss in nats per token of whole streams, each scored from its start."""
    from improv.model.api import sequence_log_likelihoods

    total, count = 0.0, 0
    for seq in seqs:
        if len(seq):
            total -= float(sequence_log_likelihoods(stream, [int(t) for t in seq]).sum())
            count += len(seq)
    return total / max(1, count)
