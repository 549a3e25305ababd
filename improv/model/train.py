"""Training of the neural models on token streams: batches, schedule, resumable state.

The loop knows nothing of MIDI: it gets token streams (one per solo and transposition)
with sampling weights, and validation streams. A batch is ``batch_size`` windows of
``seq_len`` tokens, each from a stream drawn in proportion to weight x length, at a
uniformly drawn offset; a window at offset 0 starts with the start-of-stream token, as
a stream does at inference. Seeds (numpy for batches, torch for init and dropout) and
the full state (model, optimiser, step, both generators) make a run repeatable and
resumable after an interruption.

Fine-tuning starts from a checkpoint's weights (``TrainOptions.finetune``). With call/
response pairs (``TrainOptions.pairs``) a batch is, but for a share ``solo_mix`` of
whole-solo batches, ``batch_size`` pair examples (:class:`improv.model.dataset.PairData`),
each ending with its answer, whose targets before the answer are -1: the call and what
precedes it are context and carry no loss.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from improv.errors import ImprovError, UsageError
from improv.files import atomic_output
from improv.model.api import StreamingLM, sequence_log_likelihoods
from improv.model.build import build_model, model_from_config, stream_for
from improv.model.checkpoint import Checkpoint
from improv.model.dataset import PairData, TokenData
from improv.model.markov import MarkovFit, MarkovModel
from improv.tokens import VOCAB

Window = tuple[np.ndarray, np.ndarray, int, int, int]  # input, target, key0, chord0, pos0


def _count(ids: tuple[int, int] | None) -> int:
    return 0 if ids is None else ids[1]


def _in_force(seq: np.ndarray, ids: tuple[int, int] | None) -> np.ndarray:
    """Index (id - first id) of the last token of a kind at or before each position."""
    if ids is None:
        return np.zeros(len(seq), dtype=np.int16)
    start, count = ids
    hit = (seq >= start) & (seq < start + count)
    last = np.maximum.accumulate(np.where(hit, np.arange(len(seq)), -1))
    values = seq[np.maximum(last, 0)].astype(np.int64) - start
    return np.where(last >= 0, values, count).astype(np.int16)


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
    relative_pitch: bool = True  # pitches read relative to the key (keys.PitchFrame)
    finetune: str | None = None  # checkpoint whose weights the run starts from
    pairs: bool = False  # train on call/response pairs, loss on the answer only
    pair_context: int = 0  # earlier phrases before a call: cycles 0..pair_context
    solo_mix: float = 0.0  # with pairs: share of batches that are whole-solo windows
    selection: bool = False  # validated on selection tunes carved out of the training ones

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
    val_pair_loss: float | None = None  # nats per answer token of the validation pairs


class Trainer:
    """One training run: model, optimiser, data sampler; can stop and resume."""

    def __init__(
        self,
        data: TokenData,
        options: TrainOptions,
        device: torch.device,
        init: Checkpoint | None = None,
    ) -> None:
        """``init``: the checkpoint to fine-tune (its architecture, config and weights)."""
        if not data.train:
            raise ImprovError("no training data (no solo left after the validation split)")
        if options.pairs and not (data.pairs and len(data.pairs)):
            raise ImprovError("no call/response pairs in the training solos")
        self.data = data
        self.options = options
        self.device = device
        torch.manual_seed(options.seed)
        if init is not None:
            self.model = model_from_config(init.arch, init.config)
            self.model.load_state_dict(init.state_dict)
        else:
            self.model = build_model(
                options.arch,
                options.size,
                data.vocab_size,
                options.dropout,
                data.key_ids,
                data.pitch_ids if options.relative_pitch else None,
                data.chord_ids,
                data.pos_ids,
            )
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
        self._states = [self._in_force(s) for s in data.train]
        lengths = np.array([len(s) for s in data.train], dtype=np.float64)
        p = np.asarray(data.train_weights, dtype=np.float64) * lengths
        self._p = p / p.sum()
        self._val_windows = self._make_val_windows()
        self._pair_p: np.ndarray | None = None
        if options.pairs and data.pairs is not None:
            weights = np.asarray(data.pairs.weights, dtype=np.float64)
            self._pair_p = weights / weights.sum()

    # -- batches ------------------------------------------------------------------------

    def _in_force(self, seq: np.ndarray) -> tuple[np.ndarray, ...]:
        """Key, chord and position state after each token of a stream ("none": count)."""
        d = self.data
        return tuple(_in_force(seq, ids) for ids in (d.key_ids, d.chord_ids, d.pos_ids))

    def _window(self, seq: np.ndarray, offset: int, state: tuple[np.ndarray, ...]) -> Window:
        """Input, target, and key, chord and position state in force before the input
        (targets -1 past the stream's end). A window far into a stream knows them, as a
        streaming model does; a window at offset 0 starts with the start token."""
        t, bos = self.options.seq_len, self.data.vocab_size
        x = np.zeros(t, dtype=np.int64)
        y = np.full(t, -1, dtype=np.int64)
        chunk = seq[offset : offset + t]
        y[: len(chunk)] = chunk
        x[0] = bos if offset == 0 else seq[offset - 1]
        x[1 : len(chunk)] = chunk[:-1]
        before = offset - 2  # x[0] is seq[offset - 1]: what was in force before it
        d = self.data
        nones = (_count(d.key_ids), _count(d.chord_ids), _count(d.pos_ids))
        key0, chord0, pos0 = (
            int(s[before]) if before >= 0 else none for s, none in zip(state, nones, strict=True)
        )
        return x, y, key0, chord0, pos0

    def _tensors(self, windows: list[Window]) -> tuple[torch.Tensor, ...]:
        xs, ys, *states = zip(*windows, strict=True)
        return (
            torch.from_numpy(np.stack(xs)),
            torch.from_numpy(np.stack(ys)),
            *(torch.tensor(s, dtype=torch.long) for s in states),
        )

    def batch(self) -> tuple[torch.Tensor, ...]:
        picks = self.rng.choice(len(self.data.train), size=self.options.batch_size, p=self._p)
        windows = []
        for i in picks:
            seq = self.data.train[i]
            offset = int(self.rng.integers(0, len(seq)))
            windows.append(self._window(seq, offset, self._states[i]))
        return tuple(t.to(self.device) for t in self._tensors(windows))

    def pair_windows(self, pairs: PairData, picks: Sequence[int]) -> tuple[torch.Tensor, ...]:
        """Windows ending with each picked example's answer, targets -1 before the answer
        (the call and its context carry no loss), trimmed to the longest example."""
        t = self.options.seq_len
        windows: list[Window] = []
        longest = 1
        for i in picks:
            seq = pairs.seqs[i]
            offset = max(0, len(seq) - t)  # a long example keeps its answer, loses context
            window = self._window(seq, offset, self._in_force(seq))
            window[1][: max(0, int(pairs.answers[i]) - offset)] = -1
            windows.append(window)
            longest = max(longest, len(seq) - offset)
        inputs, targets, *states = self._tensors(windows)
        return (inputs[:, :longest], targets[:, :longest], *states)

    def pair_batch(self) -> tuple[torch.Tensor, ...]:
        pairs = self.data.pairs
        assert pairs is not None and self._pair_p is not None
        picks = self.rng.choice(len(pairs), size=self.options.batch_size, p=self._pair_p)
        return tuple(t.to(self.device) for t in self.pair_windows(pairs, picks.tolist()))

    def next_batch(self) -> tuple[torch.Tensor, ...]:
        """A pair batch, or (a share ``solo_mix`` of the time, or without pairs) windows
        of whole solos."""
        if self._pair_p is None or self.rng.random() < self.options.solo_mix:
            return self.batch()
        return self.pair_batch()

    def _make_val_windows(self) -> tuple[torch.Tensor, ...] | None:
        """Fixed validation windows: the start of each validation stream, then further on."""
        seqs = [s for s in self.data.val if len(s)]
        if not seqs:
            return None
        states = [self._in_force(s) for s in seqs]
        windows: list[Window] = []
        offset = 0
        while len(windows) < self.options.eval_windows:
            fresh = [i for i, s in enumerate(seqs) if offset < len(s)]
            if not fresh:
                break
            for i in fresh[: self.options.eval_windows - len(windows)]:
                windows.append(self._window(seqs[i], offset, states[i]))
            offset += self.options.seq_len
        return self._tensors(windows)

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
        size = self.options.batch_size
        windows = self._val_windows
        return self._mean_loss(
            tuple(t[s : s + size] for t in windows) for s in range(0, len(windows[0]), size)
        )

    @torch.no_grad()
    def pair_validation_loss(self) -> float | None:
        """Nats per answer token of every validation pair, given its call."""
        pairs = self.data.val_pairs
        if not self.options.pairs or pairs is None or not len(pairs):
            return None
        size = self.options.batch_size
        return self._mean_loss(
            self.pair_windows(pairs, range(s, min(len(pairs), s + size)))
            for s in range(0, len(pairs), size)
        )

    def _mean_loss(self, batches: Iterable[tuple[torch.Tensor, ...]]) -> float:
        """Mean loss per scored target over batches, in evaluation mode."""
        self.model.eval()
        total, count = 0.0, 0
        for batch in batches:
            x, y, k, c, w = (t.to(self.device) for t in batch)
            _, loss = self.model(x, y, key0=k, chord0=c, pos0=w)
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
        save: Callable[[], None] | None = None,
        save_every: int = 500,
    ) -> bool:
        """Train up to the total step count; False when stopped early (state kept).

        ``save`` is called every ``save_every`` steps, so a crash loses little.
        """
        self.model.train()
        window_tokens, window_start = 0, time.perf_counter()
        tokens_per_second = 0.0
        last = self.history[-1] if self.history else {}
        val_loss, val_pair_loss = last.get("val_loss"), last.get("val_pair_loss")
        while self.step < self.total:
            if should_stop is not None and should_stop():
                return False
            started = time.perf_counter()
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr_at(self.step)
            x, y, k, c, w = self.next_batch()
            _, loss = self.model(x, y, key0=k, chord0=c, pos0=w)
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
                val_pair_loss = self.pair_validation_loss()
                if val_pair_loss is not None:
                    record["val_pair_loss"] = val_pair_loss
            self.history.append(record)
            if save is not None and self.step % save_every == 0 and self.step < self.total:
                save()
            if on_progress is not None:
                on_progress(
                    Progress(
                        self.step,
                        self.total,
                        loss_value,
                        val_loss,
                        tokens_per_second,
                        val_pair_loss,
                    )
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
        with atomic_output(path, "training state") as tmp:
            torch.save(self.state(), tmp)

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
        for key in ("arch", "size", "seq_len", "batch_size", "dropout", "finetune", "pairs"):
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
    total, count = 0.0, 0
    for seq in seqs:
        if len(seq):
            total -= float(sequence_log_likelihoods(stream, [int(t) for t in seq]).sum())
            count += len(seq)
    return total / max(1, count)


def bits_per_note(log_likelihoods: Sequence[np.ndarray], streams: Sequence[np.ndarray]) -> float:
    """Negative log-likelihood in bits of all tokens, per note (PITCH token) of the streams."""
    pitch = VOCAB.pitch_ids
    notes = sum(int(((s >= pitch.start) & (s < pitch.stop)).sum()) for s in streams)
    nats = -sum(float(ll.sum()) for ll in log_likelihoods)
    return nats / math.log(2) / max(1, notes)


MARKOV_DEFAULT_ORDER = 4
"""Markov order when no validation data can choose one (a corpus of a single tune)."""


def resume_path(out: Path) -> Path:
    """Where an interrupted run keeps its state: next to the checkpoint it will write."""
    return out.with_name(out.name + ".resume")


@dataclass
class RunResult:
    finished: bool
    out: Path
    state_path: Path
    metrics: dict[str, Any] = field(default_factory=dict)


def train_run(
    data: TokenData,
    options: TrainOptions,
    *,
    out: Path,
    device: torch.device,
    resume: bool = False,
    command: str = "",
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> RunResult:
    """Train a model, fit the Markov baseline on the same data, write the checkpoint.

    Fine-tuning (``options.finetune``) starts from that checkpoint's weights and keeps
    its Markov baseline. Stopped early (``should_stop``), it saves a resumable state next
    to ``out`` instead; ``resume`` continues from that state.
    """
    from improv.model.checkpoint import make_checkpoint, read_checkpoint, save_checkpoint

    def phase(text: str) -> None:
        if on_phase is not None:
            on_phase(text)

    torch.set_num_threads(max(1, options.threads))
    init = read_checkpoint(Path(options.finetune)) if options.finetune else None
    trainer = Trainer(data, options, device, init)
    state_path = resume_path(out)
    if resume:
        if not state_path.is_file():
            raise UsageError(f"--resume: no saved training state at {state_path}")
        trainer.load_state(state_path)
        phase(f"resuming at step {trainer.step} of {trainer.total}")
    finished = trainer.run(on_progress, should_stop, save=lambda: trainer.save_state(state_path))
    if not finished:
        trainer.save_state(state_path)
        return RunResult(False, out, state_path)
    markov: MarkovModel | None
    if init is None:
        phase("fitting the Markov baseline (order chosen on validation data)")
        fit, baseline = fit_baseline(data)
        markov = fit.model
    else:
        markov, baseline = stored_baseline(init, data)
    phase("scoring the validation solos")
    trainer.model.eval()
    metrics: dict[str, Any] = {
        "train_loss": round(float(np.mean([h["loss"] for h in trainer.history[-50:]])), 4),
        **model_metrics(stream_for(trainer.model, options.arch), data),
        **baseline,
    }
    pair_loss = trainer.pair_validation_loss()
    if pair_loss is not None:
        metrics["val_pair_loss"] = round(pair_loss, 4)
    training: dict[str, Any] = {
        "command": command,
        "options": asdict(options),
        "steps": trainer.step,
        "tokens_seen": trainer.step * options.batch_size * options.seq_len,
        "seconds": round(trainer.seconds, 1),
        "device": str(device),
        "threads": options.threads,
        "history": [h for h in trainer.history if "val_loss" in h or "val_pair_loss" in h],
    }
    if init is not None:
        training["finetuned_from"] = {
            "path": options.finetune,
            "command": init.training.get("command"),
            "steps": init.training.get("steps"),
            "seconds": init.training.get("seconds"),
            "metrics": {k: v for k, v in init.metrics.items() if not isinstance(v, dict)},
        }
    ckpt = make_checkpoint(
        trainer.model,
        init.size if init is not None else options.size,
        data=data.description,
        training=training,
        metrics=metrics,
        markov=markov,
    )
    save_checkpoint(ckpt, out)
    state_path.unlink(missing_ok=True)
    return RunResult(True, out, state_path, metrics)


def fit_baseline(data: TokenData) -> tuple[MarkovFit, dict[str, Any]]:
    """The Markov baseline on the same training streams, its order chosen on validation."""
    from improv.model.markov import fit_markov

    started = time.perf_counter()
    train_seqs = cast(list[Sequence[int]], data.train)  # int arrays serve as sequences
    val_seqs = cast(list[Sequence[int]], data.val)
    orders = range(1, 12) if data.val else range(MARKOV_DEFAULT_ORDER, MARKOV_DEFAULT_ORDER + 1)
    fit = fit_markov(train_seqs, val_seqs, data.vocab_size, orders=orders)
    metrics: dict[str, Any] = {
        "markov_order": fit.order,
        "markov_val_bits_per_token": {str(k): round(v, 4) for k, v in fit.val_bits.items()},
        "markov_seconds": round(time.perf_counter() - started, 1),
    }
    if data.val:
        base_ll = fit.model.score_many(val_seqs)
        metrics["baseline_val_bits_per_note"] = round(bits_per_note(base_ll, data.val), 4)
    return fit, metrics


def stored_baseline(init: Checkpoint, data: TokenData) -> tuple[MarkovModel | None, dict[str, Any]]:
    """The Markov baseline a fine-tuned checkpoint keeps from the one it started from,
    with its bits per note on this run's validation streams."""
    if init.markov is None:
        return None, {}
    markov = MarkovModel.from_state(init.markov)
    metrics: dict[str, Any] = {
        k: init.metrics[k]
        for k in ("markov_order", "markov_val_bits_per_token")
        if k in init.metrics
    }
    if data.val:
        val_seqs = cast(list[Sequence[int]], data.val)
        metrics["baseline_val_bits_per_note"] = round(
            bits_per_note(markov.score_many(val_seqs), data.val), 4
        )
    return markov, metrics


def model_metrics(stream: StreamingLM, data: TokenData) -> dict[str, Any]:
    """Validation loss of a model on whole validation streams (nats and bits)."""
    if not data.val:
        return {}
    model_ll = [sequence_log_likelihoods(stream, [int(t) for t in s]) for s in data.val]
    val_tokens = sum(len(s) for s in data.val)
    nats = -sum(float(ll.sum()) for ll in model_ll)
    return {
        "val_loss": round(nats / val_tokens, 4),
        "val_bits_per_token": round(nats / math.log(2) / val_tokens, 4),
        "val_bits_per_note": round(bits_per_note(model_ll, data.val), 4),
    }


def refit_baseline(out: Path, data: TokenData, command: str = "") -> dict[str, Any]:
    """Fit the Markov baseline anew into an existing checkpoint, keeping its network.

    For a checkpoint whose baseline was saved by an older Markov model, or to fit it on
    other data; the figures that depend on the baseline are updated.
    """
    from improv.model.checkpoint import read_checkpoint, save_checkpoint

    ckpt = read_checkpoint(out)
    fit, baseline = fit_baseline(data)
    ckpt.markov = fit.model.to_state()
    ckpt.metrics.update(baseline)
    ckpt.training["baseline_command"] = command
    save_checkpoint(ckpt, out)
    return ckpt.metrics
