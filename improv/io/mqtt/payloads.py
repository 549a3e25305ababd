"""MQTT payloads: their shapes (typed dicts), their JSON encoding and their schemas.

Every payload is a JSON object with ``v`` (this schema version), ``t`` (the agent's
monotonic clock, seconds: for ordering and intervals between messages of one agent) and
``ts`` (wall-clock Unix time, seconds: for humans and logs). The JSON Schemas shipped in
``improv/io/schemas/`` are the contract; ``docs/mqtt.md`` explains them.
"""

from __future__ import annotations

import json
import math
from functools import cache
from importlib import resources
from typing import Any, Final, Literal, NotRequired, TypedDict

from improv.music.notes import Phrase

SCHEMA_VERSION: Final = 1

SCHEMAS: Final = {
    "status": "status",
    "state": "state",
    "beat": "beat",
    "phrase/call": "phrase",
    "phrase/answer": "phrase",
    "metrics": "metrics",
    "control/set": "control-set",
    "control/result": "control-result",
}
"""Topic (after the prefix) -> schema file name (without ``.json``)."""

Role = Literal["call", "answer"]
Turn = Literal["listening", "answering", "idle"]


class JamState(TypedDict):
    """The retained ``state``: everything a late subscriber needs to follow the jam."""

    mode: str
    turn: Turn
    tempo: float
    metre: str
    key: str
    form: str
    bar: int
    beat: float
    chord: str | None
    model: str
    device: str
    temperature: float
    bars: NotRequired[int]
    chorus: NotRequired[int]
    muted: NotRequired[bool]
    paused: NotRequired[bool]


class TurnMetrics(TypedDict):
    """The ``metrics`` of one finished turn (milliseconds; None where not measured)."""

    turn: int
    notes_out: int
    send_error_ms_p50: float | None
    send_error_ms_p99: float | None
    send_error_ms_max: float | None
    answer_start_error_ms: float | None
    generation_ms: float | None
    generation_headroom_ms_min: float | None
    deadline_misses: int
    fallback_notes: int
    candidates: NotRequired[int]  # candidate answers drafted (0: the fallback played)
    critic_total: NotRequired[float | None]  # the winner's critic scores
    critic_parts: NotRequired[dict[str, float] | None]
    transform: NotRequired[str | None]  # the winner's motif transform, or "free"


def envelope(t: float, ts: float, body: dict[str, Any]) -> dict[str, Any]:
    """A payload: the common header, then the topic's own fields."""
    return {"v": SCHEMA_VERSION, "t": round(t, 6), "ts": round(ts, 6), **body}


def encode(payload: dict[str, Any]) -> bytes:
    """Compact JSON; non-finite numbers (never valid JSON) become null, numpy scalars
    plain numbers."""
    text = json.dumps(_finite(payload), separators=(",", ":"), allow_nan=False, default=_scalar)
    return text.encode()


def _scalar(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars: int64, float32, bool_
    if callable(item) and getattr(value, "shape", None) == ():
        return _finite(item())
    raise TypeError(f"{type(value).__name__} is not JSON")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def phrase_body(role: Role, phrase: Phrase, turn: int | None) -> dict[str, Any]:
    """A finished phrase: notes and chords with onsets in beats from its first bar line.

    Each note and chord also carries its absolute ``bar`` (zero-based, counted from the
    start of the jam) and ``beat`` in that bar, so a consumer needs no metre arithmetic.
    """
    metre = phrase.metre

    def where(onset: float) -> dict[str, Any]:
        return {
            "onset": round(onset, 4),
            "bar": phrase.start_bar + metre.bar_of(onset),
            "beat": round(metre.beat_in_bar(onset), 4),
        }

    return {
        "role": role,
        "turn": turn,
        "metre": str(metre),
        "start_bar": phrase.start_bar,
        "notes": [
            {
                "pitch": note.pitch,
                "velocity": note.velocity,
                **where(note.onset),
                "duration": round(note.duration, 4),
            }
            for note in phrase.notes
        ],
        "chords": [{**where(change.onset), "symbol": change.symbol} for change in phrase.chords],
    }


def metrics_body(metrics: dict[str, Any]) -> dict[str, Any]:
    """A turn's figures, milliseconds to 0.1 microsecond (finer is noise)."""
    return {k: _rounded(v) for k, v in metrics.items()}


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


@cache
def schema(name: str) -> dict[str, Any]:
    """A payload's JSON Schema by file name (``"state"``, ``"control-set"``, ...)."""
    text = resources.files("improv.io").joinpath("schemas", f"{name}.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def schema_for_topic(topic: str) -> dict[str, Any]:
    """The schema of a topic given after the prefix (``"phrase/call"``)."""
    return schema(SCHEMAS[topic])
