"""Control requests from the outside (MQTT ``control/set``): validated, typed, atomic.

A request is untrusted bytes from the network. It is read here, completely, before the
agent sees anything: a request with one bad field is refused whole and changes nothing,
so a half-applied change can never leave the band in an odd state. Pure: no I/O, no
asyncio, so it is tested without a broker.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, Final

from improv.craft.band.section import PART_NAMES
from improv.music.forms import get_form
from improv.music.pitch import Key
from improv.music.time import Metre

CONTROL_SCHEMA_VERSION: Final = 1
MAX_PAYLOAD_BYTES: Final = 4096
"""Larger requests are refused unread: a control change is a handful of fields."""

TEMPO_RANGE: Final = (30.0, 300.0)
TEMPERATURE_RANGE: Final = (0.1, 2.0)
MODES: Final = ("trade", "phrase")
BARS_PER_TURN: Final = (2, 4, 8, 12)
MAX_ID_LENGTH: Final = 128
MAX_TEXT_LENGTH: Final = 256

FIELDS: Final = (
    "tempo",
    "key",
    "form",
    "metre",
    "mode",
    "bars",
    "temperature",
    "model",
    "mute",
    "pause",
    "panic",
    "band_mute",
)
"""The fields a request may change (besides its ``id`` and ``v``)."""

RequestId = str | int
"""A request's ``id``, echoed on ``control/result`` so a client can match the answer."""


class ControlError(ValueError):
    """A refused control request; the message says which field is wrong and why.

    The agent raises it too, from its control handler, to refuse a change it cannot
    make (a model that does not load); the bridge answers with the message.
    """


@dataclass(frozen=True, slots=True)
class ControlChange:
    """A validated control request: the fields to change, None where unchanged.

    The agent applies each field at a musically sensible moment (tempo, key and metre
    at the next bar line, form at the next chorus); ``panic`` at once.
    """

    id: RequestId | None = None
    tempo: float | None = None
    key: Key | None = None
    form: str | None = None
    metre: Metre | None = None
    mode: str | None = None
    bars: int | None = None
    temperature: float | None = None
    model: str | None = None
    mute: bool | None = None
    pause: bool | None = None
    panic: bool = False
    band_mute: tuple[tuple[str, bool], ...] = ()  # (part, muted): from the next beat

    def changes(self) -> dict[str, Any]:
        """The fields this request changes, JSON-ready (the key as its name)."""
        out: dict[str, Any] = {}
        for name in FIELDS:
            value = getattr(self, name)
            if value is None or (name in ("panic", "band_mute") and not value):
                continue
            if name == "band_mute":
                value = dict(value)
            if isinstance(value, Key):
                value = value.name
            out[name] = str(value) if isinstance(value, Metre) else value
        return out


ControlHandler = Callable[[ControlChange], "Awaitable[None] | None"]
"""The agent's side: takes a validated change or raises :class:`ControlError`; a change
that takes time (a model load) returns an awaitable, and the result waits for it."""


def _reject_constant(name: str) -> float:
    raise ControlError(f"not valid JSON: {name} is not a number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ControlError(f"field {key!r} given twice")
        obj[key] = value
    return obj


def _is_number(value: object) -> bool:
    # bool is an int in Python but not a number in a control request.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integer(value: object) -> int | None:
    """An integer, also when JSON spells it ``4.0`` (JSON has one number type)."""
    if isinstance(value, bool) or not _is_number(value):
        return None
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    return value  # type: ignore[return-value]


def _number(name: str, value: object, lo: float, hi: float) -> float:
    if not _is_number(value):
        raise ControlError(f"{name} must be a number, not {_json_type(value)}")
    if isinstance(value, int) and not lo <= value <= hi:  # before float(): 10**400 overflows
        raise ControlError(f"{name} out of range [{lo:g}, {hi:g}]")
    number = float(value)  # type: ignore[arg-type]
    if not (math.isfinite(number) and lo <= number <= hi):
        raise ControlError(f"{name} out of range [{lo:g}, {hi:g}]: {value}")
    return number


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ControlError(f"{name} must be a string, not {_json_type(value)}")
    if not value.strip() or len(value) > MAX_TEXT_LENGTH:
        raise ControlError(f"{name} must be 1..{MAX_TEXT_LENGTH} characters")
    return value.strip()


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ControlError(f"{name} must be true or false, not {_json_type(value)}")
    return value


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if _is_number(value):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def request_id(payload: bytes) -> RequestId | None:
    """The ``id`` of a request, if one can be read, so that even a refusal names it."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    return _valid_id(obj.get("id"))


def _valid_id(value: object) -> RequestId | None:
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH:
        return value
    number = _integer(value)
    if number is not None and abs(number) < 2**53:
        return number
    return None


class ControlParser:
    """Reads ``control/set`` payloads into :class:`ControlChange` values.

    ``forms`` names the forms the agent accepts; by default those of
    :func:`improv.music.forms.get_form`, aliases read to their canonical name.
    """

    def __init__(self, forms: Collection[str] | None = None) -> None:
        self._forms = frozenset(forms) if forms is not None else None

    def parse(self, payload: bytes) -> ControlChange:
        """The change a payload asks for; raises :class:`ControlError` naming the fault."""
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise ControlError(f"payload too large: {len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise ControlError("payload is not UTF-8 text") from None
        try:
            obj = json.loads(
                text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates
            )
        except ControlError:
            raise
        except (ValueError, RecursionError) as exc:
            raise ControlError(f"not valid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise ControlError(f"payload must be a JSON object, not {_json_type(obj)}")
        return self.from_object(obj)

    def from_object(self, obj: dict[str, Any]) -> ControlChange:
        unknown = sorted(set(obj) - {"id", "v", *FIELDS})
        if unknown:
            raise ControlError(f"unknown field(s): {', '.join(map(repr, unknown))}")
        if "v" in obj and (not _is_number(obj["v"]) or obj["v"] != CONTROL_SCHEMA_VERSION):
            raise ControlError(f"unsupported schema version v={obj['v']!r}")
        request = None
        if "id" in obj:
            request = _valid_id(obj["id"])
            if request is None:
                raise ControlError(
                    f"id must be a string of 1..{MAX_ID_LENGTH} characters or an integer"
                )
        if not any(name in obj for name in FIELDS):
            raise ControlError(f"nothing to change: give one of {', '.join(FIELDS)}")
        return ControlChange(
            id=request,
            tempo=_number("tempo", obj["tempo"], *TEMPO_RANGE) if "tempo" in obj else None,
            key=self._key(obj["key"]) if "key" in obj else None,
            form=self._form(obj["form"]) if "form" in obj else None,
            metre=self._metre(obj["metre"]) if "metre" in obj else None,
            mode=self._choice("mode", obj["mode"], MODES) if "mode" in obj else None,
            bars=self._bars(obj["bars"]) if "bars" in obj else None,
            temperature=(
                _number("temperature", obj["temperature"], *TEMPERATURE_RANGE)
                if "temperature" in obj
                else None
            ),
            model=_text("model", obj["model"]) if "model" in obj else None,
            mute=_flag("mute", obj["mute"]) if "mute" in obj else None,
            pause=_flag("pause", obj["pause"]) if "pause" in obj else None,
            panic=self._panic(obj["panic"]) if "panic" in obj else False,
            band_mute=self._band_mute(obj["band_mute"]) if "band_mute" in obj else (),
        )

    @staticmethod
    def _key(value: object) -> Key:
        text = _text("key", value)
        try:
            return Key.parse(text)
        except ValueError as exc:
            raise ControlError(f"key: {exc}") from None

    @staticmethod
    def _metre(value: object) -> Metre:
        text = _text("metre", value)
        try:
            return Metre.parse(text)
        except ValueError as exc:
            raise ControlError(f"metre: {exc}") from None

    def _form(self, value: object) -> str:
        name = _text("form", value)
        if self._forms is None:
            try:
                return get_form(name).name
            except ValueError as exc:
                raise ControlError(f"form: {exc}") from None
        if name not in self._forms:
            raise ControlError(f"unknown form {name!r} (known: {', '.join(sorted(self._forms))})")
        return name

    @staticmethod
    def _choice(name: str, value: object, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise ControlError(f"{name} must be one of {', '.join(choices)}: {value!r}")
        return str(value)

    @staticmethod
    def _bars(value: object) -> int:
        bars = _integer(value)
        if bars not in BARS_PER_TURN:
            raise ControlError(
                f"bars must be one of {', '.join(map(str, BARS_PER_TURN))}: {value!r}"
            )
        return bars

    @staticmethod
    def _band_mute(value: object) -> tuple[tuple[str, bool], ...]:
        """``{"drums": true, "piano": false}``: mute or unmute parts of the band."""
        if not isinstance(value, dict) or not value:
            raise ControlError(
                f"band_mute must be an object of parts ({', '.join(PART_NAMES)}) to true/false"
            )
        unknown = sorted(set(value) - set(PART_NAMES))
        if unknown:
            raise ControlError(
                f"band_mute: unknown part(s) {', '.join(map(repr, unknown))} "
                f"(known: {', '.join(PART_NAMES)})"
            )
        return tuple((part, _flag(f"band_mute.{part}", value[part])) for part in sorted(value))

    @staticmethod
    def _panic(value: object) -> bool:
        if value is not True:
            raise ControlError(f"panic must be true: {value!r}")
        return True
