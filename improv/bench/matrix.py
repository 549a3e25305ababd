"""``--matrix``: several configurations measured in one run, in alternation.

A spec is ``KEY=V1,V2 ...``; the configurations are the product of the keys in the
order given (``model=rules,markov tempo=120,240`` gives four, the first key varying
slowest). Keys the harness plays itself: ``tempo``, ``mode``, ``bars``, ``burn`` (a
CPU-burning neighbour process per core), ``send_clock``. Every other key is an
``improv jam`` option of the spawned agent (``model=lstm`` -> ``--model lstm``,
``device=cuda`` -> ``--device cuda``), so it needs ``--spawn``.

Turns are dealt round robin, ``block`` turns at a time (1: turn-interleaved), so
whatever the machine does meanwhile hits every configuration alike.
"""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from improv.errors import UsageError

HARNESS_KEYS = ("tempo", "mode", "bars", "burn", "send_clock")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True, slots=True)
class Configuration:
    """One column of the comparison: what the harness plays and how the agent runs."""

    index: int
    tempo: float
    mode: str
    bars: int
    burn: bool
    send_clock: bool
    agent_options: tuple[tuple[str, str], ...] = ()  # ("model", "rules") -> --model rules
    varied: tuple[tuple[str, str], ...] = ()  # the matrix keys, as given
    skipped: str | None = None

    @property
    def name(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.varied) or "default"

    def settings(self) -> dict[str, Any]:
        return {
            "tempo": self.tempo,
            "mode": self.mode,
            "bars": self.bars,
            "burn": self.burn,
            "send_clock": self.send_clock,
            **dict(self.agent_options),
        }

    def jam_options(self) -> list[str]:
        return [part for key, value in self.agent_options for part in (_flag(key), value)]


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def parse_matrix(specs: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``["model=a,b", "tempo=120"]`` -> ``[("model", ["a", "b"]), ("tempo", ["120"])]``."""
    axes: list[tuple[str, list[str]]] = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip().replace("-", "_")
        choices = [v.strip() for v in values.split(",")]
        if not sep or not key or not all(choices):
            raise UsageError(f"--matrix: expected KEY=V1,V2, not {spec!r}")
        if any(key == k for k, _ in axes):
            raise UsageError(f"--matrix: key {key!r} given twice")
        axes.append((key, choices))
    return axes


@dataclass(slots=True)
class Base:
    """The settings every configuration starts from (the command line's)."""

    tempo: float
    mode: str
    bars: int
    burn: bool = False
    send_clock: bool = False
    agent_options: Mapping[str, str] = field(default_factory=dict)


def expand(base: Base, axes: Sequence[tuple[str, list[str]]], spawn: bool) -> list[Configuration]:
    """Every combination of the axes over ``base``, checked; CUDA is marked skipped when
    this machine has none."""
    keys = [k for k, _ in axes]
    if not spawn and (extra := [k for k in keys if k not in HARNESS_KEYS]):
        raise UsageError(
            f"--matrix {', '.join(extra)}: only --spawn can change an agent's options; "
            f"an external agent can vary {', '.join(HARNESS_KEYS)}"
        )
    configs: list[Configuration] = []
    combos = itertools.product(*(values for _, values in axes)) if axes else [()]
    for index, combo in enumerate(combos):
        chosen = dict(zip(keys, combo, strict=True))
        options = dict(base.agent_options)
        options.update({k: v for k, v in chosen.items() if k not in HARNESS_KEYS})
        config = Configuration(
            index=index,
            tempo=_number("tempo", chosen.get("tempo"), base.tempo),
            mode=chosen.get("mode", base.mode),
            bars=int(_number("bars", chosen.get("bars"), base.bars)),
            burn=_boolean("burn", chosen.get("burn"), base.burn),
            send_clock=_boolean("send_clock", chosen.get("send_clock"), base.send_clock),
            agent_options=tuple(options.items()),
            varied=tuple(chosen.items()),
            skipped=_skip_reason(options),
        )
        check(config)
        configs.append(config)
    return configs


def check(config: Configuration) -> None:
    if config.mode not in ("trade", "phrase"):
        raise UsageError(f"mode must be trade or phrase, not {config.mode!r}")
    if config.bars not in (2, 4, 8, 12):
        raise UsageError(f"bars must be 2, 4, 8 or 12, not {config.bars}")
    if not 20.0 <= config.tempo <= 400.0:
        raise UsageError(f"tempo must lie in [20, 400] BPM, not {config.tempo:g}")


def _number(key: str, text: str | None, default: float) -> float:
    if text is None:
        return default
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"--matrix {key}: not a number: {text!r}") from None


def _boolean(key: str, text: str | None, default: bool) -> bool:
    if text is None:
        return default
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise UsageError(f"--matrix {key}: expected 0 or 1, not {text!r}")


def cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def _skip_reason(options: Mapping[str, str]) -> str | None:
    device = options.get("device", "")
    if device.startswith("cuda") and not cuda_available():
        return "no CUDA device on this machine"
    return None


def rounds(configs: Sequence[int], block: int) -> Iterator[int]:
    """Configuration indices round robin, ``block`` turns each, forever."""
    if not configs:
        return
    while True:
        for index in configs:
            for _ in range(max(1, block)):
                yield index
