"""The shipped models: where they live, which one is the default, and what ``--model``
names: one resolver for every command (jam, eval, bench model, bench latency ...).

``--model`` is ``rules`` (the rule-based blues generator), ``markov`` (the Markov model),
a shipped checkpoint's name or a checkpoint file. Checkpoints ship in the repository's
``models/`` folder, found next to the installed package
(``Path(improv.__file__).parents[1] / "models"``), and are named by file stem.
"""

from __future__ import annotations

from pathlib import Path

import improv
from improv.errors import UsageError

DEFAULT_MODEL = "lstm"
"""Name of the shipped checkpoint used when no ``--model`` is given (``models/lstm.pt``)."""

SUFFIX = ".pt"

RULES = "rules"
MARKOV = "markov"
CHECKPOINT = "checkpoint"

_CANNOT: dict[tuple[str, str], str] = {
    ("eval", RULES): "the rule-based generator gives no note probabilities, so improv eval "
    "(bits per note against the Markov baseline) cannot score it; give markov or a checkpoint",
    ("bench model", RULES): "the rule-based generator has no model steps to time; "
    "give a checkpoint",
    ("bench model", MARKOV): "bench model times a checkpoint's network; give a checkpoint",
}


def models_dir() -> Path:
    return Path(improv.__file__).resolve().parents[1] / "models"


def data_dir() -> Path:
    """The training data the project carries (``data/wjazzd``: WJazzD, ODbL 1.0), the
    default ``--data`` of ``improv train``, ``eval`` and ``corpus stats``."""
    return Path(improv.__file__).resolve().parents[1] / "data" / "wjazzd"


def shipped_models() -> list[str]:
    """Names of the checkpoints in ``models/``, sorted."""
    folder = models_dir()
    return sorted(p.stem for p in folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []


def resolve_model(spec: str | Path | None) -> Path:
    """A checkpoint path from a path or a shipped name (None: :data:`DEFAULT_MODEL`)."""
    if spec is None:
        spec = DEFAULT_MODEL
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise UsageError(f"--model {spec}: a folder, not a checkpoint file")
    shipped = models_dir() / f"{spec}{SUFFIX}"
    if isinstance(spec, str) and "/" not in spec and shipped.is_file():
        return shipped
    names = ", ".join(shipped_models()) or "none shipped"
    raise UsageError(f"--model {spec}: no such checkpoint file or shipped model ({names})")


def model_kind(spec: str | Path | None) -> str:
    """``rules``, ``markov`` or ``checkpoint`` (a shipped name, a file or the default)."""
    if spec in (RULES, MARKOV):
        return str(spec)
    return CHECKPOINT


def check_model(spec: str | Path | None, command: str) -> str:
    """The kind of ``--model spec``, the same names for every command; a checkpoint must
    exist, and a command that cannot use a kind says why in one line (UsageError)."""
    kind = model_kind(spec)
    why = _CANNOT.get((command, kind))
    if why is not None:
        raise UsageError(f"--model {spec}: {why}")
    if kind == CHECKPOINT:
        resolve_model(spec)
    return kind
