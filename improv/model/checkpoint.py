"""Self-describing checkpoints: weights with everything needed to trust and use them.

A checkpoint is one ``torch.save`` file of plain tensors, strings, numbers, lists and
dicts, so it loads with ``torch.load(..., weights_only=True)`` (no code runs on load).
It carries the architecture and its config, the tokenizer version and vocabulary (a
model trained on other tokens is refused, not misread), the training data and its
attribution, the training command and time, metrics, the code version, and the Markov
baseline fitted on the same data.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

import improv
from improv.errors import ImprovError, UsageError
from improv.files import MiB, atomic_output, check_input
from improv.model.api import StreamingLM
from improv.model.build import arch_of, model_from_config, resolve_device, stream_for
from improv.model.lstm import LSTMConfig
from improv.model.markov import MarkovModel
from improv.model.registry import DEFAULT_MODEL, resolve_model
from improv.model.transformer import TransformerConfig

FORMAT = "improv-checkpoint/1"
CHECKPOINT_LIMIT = 512 * MiB
"""Checked before reading (the shipped ones: 5 MB)."""
MAX_PARAMS = 100_000_000
"""A config asking for more is refused before anything is allocated (shipped: 0.6 M)."""


class CheckpointError(ImprovError):
    """A file that is not a usable improv checkpoint; the message says why."""


def tokenizer_info() -> dict[str, Any]:
    """Version, token names and their fingerprint of the tokenizer this code speaks."""
    from improv import tokens

    return {
        "version": tokens.TOKENIZER_VERSION,
        "vocab_size": tokens.VOCAB.size,
        "names": list(tokens.VOCAB.names),
        "fingerprint": tokens.vocab_fingerprint(),
    }


def code_version() -> dict[str, str]:
    """Package version, and the git commit when the package runs from a checkout."""
    out = {"improv": improv.__version__}
    root = Path(improv.__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        out["git_commit"] = commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return out


@dataclass
class Checkpoint:
    """The contents of a checkpoint file (weights as a state dict)."""

    arch: str
    size: str
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    tokenizer: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    code: dict[str, str] = field(default_factory=dict)
    markov: dict[str, Any] | None = None

    @property
    def params(self) -> int:
        return sum(t.numel() for t in self.state_dict.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "arch": self.arch,
            "size": self.size,
            "params": self.params,
            "config": dict(self.config),
            "state_dict": self.state_dict,
            "tokenizer": self.tokenizer,
            "data": self.data,
            "training": self.training,
            "metrics": self.metrics,
            "code": self.code,
            "markov": self.markov,
        }

    def describe(self) -> dict[str, Any]:
        """Everything but the weights and the Markov arrays: for model cards and logs."""
        info = {k: v for k, v in self.to_dict().items() if k not in ("state_dict", "markov")}
        info["tokenizer"] = {k: v for k, v in self.tokenizer.items() if k != "names"}
        if self.markov is not None:
            info["markov"] = _without_tensors(self.markov)
        return info


def _without_tensors(value: Any) -> Any:
    """A nested dict/list with its tensors left out (JSON-able metadata only)."""
    if isinstance(value, dict):
        return {k: _without_tensors(v) for k, v in value.items() if not _has_tensor_only(v)}
    if isinstance(value, list | tuple):
        return [_without_tensors(v) for v in value]
    return value


def _has_tensor_only(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, dict):
        return bool(value) and all(_has_tensor_only(v) for v in value.values())
    return False


def make_checkpoint(
    model: nn.Module,
    size: str,
    *,
    data: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    markov: MarkovModel | None = None,
) -> Checkpoint:
    from dataclasses import asdict

    config = asdict(model.config)  # type: ignore[call-overload]
    return Checkpoint(
        arch=arch_of(model),
        size=size,
        config=config,
        state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        tokenizer=tokenizer_info(),
        data=dict(data or {}),
        training=dict(training or {}),
        metrics=dict(metrics or {}),
        code=code_version(),
        markov=None if markov is None else markov.to_state(),
    )


def save_checkpoint(checkpoint: Checkpoint, path: Path) -> None:
    """Write atomically (a temporary file, then a rename): never a half-written file."""
    with atomic_output(path, "checkpoint") as tmp:
        torch.save(checkpoint.to_dict(), tmp)


def read_checkpoint(path: Path, check_tokenizer: bool = True) -> Checkpoint:
    """Read and validate a checkpoint; :class:`CheckpointError` says what is wrong."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        check_input(path, CHECKPOINT_LIMIT, "checkpoint")
    except UsageError as exc:
        raise CheckpointError(str(exc).removeprefix("checkpoint ")) from None
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for truncated or foreign files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: not a readable improv checkpoint (truncated or another kind of file: "
            f"{reason[:160]})"
        ) from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise CheckpointError(f"{path}: not an improv checkpoint (format {found!r}, want {FORMAT})")
    try:
        ckpt = Checkpoint(
            arch=str(raw["arch"]),
            size=str(raw["size"]),
            config=dict(raw["config"]),
            state_dict=dict(raw["state_dict"]),
            tokenizer=dict(raw["tokenizer"]),
            data=dict(raw.get("data") or {}),
            training=dict(raw.get("training") or {}),
            metrics=dict(raw.get("metrics") or {}),
            code=dict(raw.get("code") or {}),
            markov=raw.get("markov"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: incomplete improv checkpoint (missing {exc})") from exc
    if check_tokenizer:
        _check_tokenizer(path, ckpt.tokenizer)
    return ckpt


def _check_tokenizer(path: Path, saved: dict[str, Any]) -> None:
    current = tokenizer_info()
    if saved.get("version") != current["version"]:
        raise CheckpointError(
            f"{path}: trained with tokenizer version {saved.get('version')!r}, but this improv "
            f"speaks version {current['version']!r}; retrain it with `improv train`"
        )
    if saved.get("fingerprint") != current["fingerprint"]:
        raise CheckpointError(
            f"{path}: its vocabulary ({saved.get('vocab_size')} tokens) differs from this "
            f"improv's ({current['vocab_size']} tokens) under the same tokenizer version; "
            "retrain it with `improv train`"
        )


def _check_config(path: Path, ckpt: Checkpoint) -> None:
    """The stored config, checked before it allocates anything: known fields of the
    right types, then the model built on torch's ``meta`` device (shapes, no memory),
    whose every tensor must match a stored one: a crafted config cannot ask for 64 TB."""
    kind = {"lstm": LSTMConfig, "transformer": TransformerConfig}.get(ckpt.arch)
    if kind is None:
        raise CheckpointError(f"{path}: unknown architecture {ckpt.arch!r}")
    known = {f.name: f for f in fields(kind)}
    for name, value in ckpt.config.items():
        if name not in known:
            raise CheckpointError(f"{path}: unknown config key {name!r} for {ckpt.arch}")
        number = isinstance(value, int | float) and not isinstance(value, bool)
        whole = known[name].type in ("int", int)
        if not number or (whole and not isinstance(value, int)):
            raise CheckpointError(f"{path}: config {name} must be a number, not {value!r}")
        if not math.isfinite(value) or value < 0:
            raise CheckpointError(f"{path}: config {name} out of range: {value!r}")
    try:
        with torch.device("meta"):
            shapes = {
                k: tuple(v.shape)
                for k, v in model_from_config(ckpt.arch, ckpt.config).state_dict().items()
            }
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError) as exc:
        raise CheckpointError(f"{path}: unusable config ({exc})") from None
    wanted = sum(math.prod(shape) for shape in shapes.values())
    if wanted > MAX_PARAMS:
        raise CheckpointError(
            f"{path}: its config asks for {wanted:,} parameters: too large (> {MAX_PARAMS:,})"
        )
    for name, shape in shapes.items():
        stored = ckpt.state_dict.get(name)
        if not isinstance(stored, torch.Tensor) or tuple(stored.shape) != shape:
            found = tuple(stored.shape) if isinstance(stored, torch.Tensor) else None
            raise CheckpointError(
                f"{path}: weights do not fit its own config ({name}: {found}, config {shape})"
            )


@dataclass
class LoadedModel:
    """A checkpoint's model ready to use: the torch module and its streams."""

    name: str
    path: Path
    checkpoint: Checkpoint
    module: nn.Module  # on the chosen device, eval mode
    device: torch.device

    def stream(self) -> StreamingLM:
        """A new, independent stream (numpy steps, CPU), at the start of a stream."""
        return stream_for(self.module, self.name)

    def baseline(self) -> MarkovModel:
        """The Markov baseline fitted on the same data (a new instance each call)."""
        if self.checkpoint.markov is None:
            raise CheckpointError(f"{self.path}: holds no Markov baseline")
        try:
            model = MarkovModel.from_state(self.checkpoint.markov)
        except ValueError as exc:
            raise CheckpointError(f"{self.path}: its Markov baseline is unusable: {exc}") from exc
        return model


def load_model(spec: str | Path | None = None, device: str = "auto") -> LoadedModel:
    """Load a checkpoint by path or shipped name (None: the default shipped model).

    ``device`` ``auto`` puts the module on CUDA when present (for scoring and training),
    the CPU otherwise; streams always step on the CPU, where one token is fastest.
    """
    path = resolve_model(spec)
    ckpt = read_checkpoint(path)
    _check_config(path, ckpt)
    module = model_from_config(ckpt.arch, ckpt.config)
    try:
        module.load_state_dict(ckpt.state_dict)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit its own config: {exc}") from exc
    dev = resolve_device(device)
    module.to(dev).eval()
    name = path.stem if spec is not None else DEFAULT_MODEL
    return LoadedModel(name, path, ckpt, module, dev)
