"""The jam's settings: one dataclass, loadable from TOML, overridden by the command line.

A stage set-up lives in a file (``--config stage.toml``, see ``examples/stage.toml``);
options given on the command line win. Everything is validated here, once, with an
error that names the setting and says what is allowed, so the engine never meets a
bad value mid-jam.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from improv.errors import UsageError
from improv.files import read_toml
from improv.music.pitch import Key, parse_pitch
from improv.music.time import Metre, Swing, Tempo

MODES = ("trade", "phrase")
DEVICES = ("auto", "cpu", "cuda")
BARS_PER_TURN = (2, 4, 8, 12)
CLOCKS = ("internal", "midi")
BARGE_IN = ("yield", "keep")
ALIGNS = ("beat", "half-bar")
SLOTS = ("form", "follow")  # trade mode: fixed slots of the form, or from the call's first note
FIRSTS = ("performer", "improv")  # form slots: whose slot comes first
MIDI_APIS = ("auto", "alsa", "jack", "coremidi", "winmm")


@dataclass(frozen=True, slots=True)
class JamConfig:
    """Every setting of a jam. Channels are 1..16 as musicians count them."""

    tempo: float = 120.0
    key: str = "F"
    form: str = "blues"
    metre: str = "4/4"
    swing: float = 1.0  # long/short ratio of swung eighths: 1 straight, 2 triplet
    mode: str = "trade"
    bars: int = 4
    slots: str = "form"
    first: str = "performer"
    align: str = "beat"  # phrase mode: answers start on the next beat or half bar
    gap: float = 1.0  # phrase mode: silence (beats) that ends a call, adapted to its pace
    barge_in: str = "yield"
    model: str | None = None  # PATH, "markov", "rules"; None: the shipped default
    temperature: float = 1.0
    top_p: float = 0.95
    seed: int | None = None
    channel_in: int | None = None  # None: listen on every channel
    channel_out: int = 1
    range: str = "C3-C6"  # the instrument's range, LO-HI (names or MIDI numbers)
    clock: str = "internal"
    send_clock: bool = False
    metronome: bool = False
    count_in: int = 1  # bars of count-in before the form starts
    thru: bool = False
    choruses: int | None = None  # None: play until stopped
    record: Path | None = None
    midi_api: str = "auto"
    port_in: str | None = None
    port_out: str | None = None
    virtual: bool = False
    lookahead_ms: float = 200.0  # answers are chosen this far ahead (more: more candidates)
    margin_ms: float = 15.0  # a note must be ready this long before it sounds
    device: str = "auto"  # where candidate answers are drafted: cuda when torch sees one
    candidates: int = 32  # at most this many candidate answers per turn
    models_dir: tuple[Path, ...] = ()  # where control requests may load checkpoints from
    band: str | None = None  # "bass,drums,piano" or "none"; None: the demo's band, none on ports
    band_mode: str = "full"  # sparse: two-feel bass, light comping
    band_channels: tuple[tuple[str, int], ...] = ()  # (part, channel 1-16) beside the defaults
    band_programs: tuple[tuple[str, int], ...] = ()  # (part, GM program 1-128)

    def __post_init__(self) -> None:
        try:
            self._check_types()
            self._check()
        except ValueError as exc:
            raise UsageError(f"bad setting: {exc}") from None

    def _check_types(self) -> None:
        for name, kinds in _TYPES.items():
            value = getattr(self, name)
            if value is None and name in _OPTIONAL:
                continue
            if isinstance(value, bool) and bool not in kinds:
                raise ValueError(f"{name} must be {kinds[0].__name__}, not {value!r}")
            if not isinstance(value, kinds):
                raise ValueError(f"{name} must be {kinds[0].__name__}, not {value!r}")

    def _check(self) -> None:
        Tempo(self.tempo)
        Key.parse(self.key)
        Metre.parse(self.metre)
        Swing(self.swing)
        _choice("mode", self.mode, MODES)
        _choice("align", self.align, ALIGNS)
        _choice("slots", self.slots, SLOTS)
        _choice("first", self.first, FIRSTS)
        _choice("barge_in", self.barge_in, BARGE_IN)
        _choice("clock", self.clock, CLOCKS)
        _choice("midi_api", self.midi_api, MIDI_APIS)
        if self.bars not in BARS_PER_TURN:
            raise ValueError(f"bars must be one of {', '.join(map(str, BARS_PER_TURN))}")
        _within("gap", self.gap, 0.25, 8.0)
        _within("temperature", self.temperature, 0.05, 5.0)
        _within("top_p", self.top_p, 0.01, 1.0)
        if self.channel_in is not None:
            _within("channel_in", self.channel_in, 1, 16)
        _within("channel_out", self.channel_out, 1, 16)
        lo, hi = self.pitch_range
        if hi - lo < 12:
            raise ValueError(f"range {self.range!r} must span at least an octave")
        _within("count_in", self.count_in, 0, 8)
        if self.choruses is not None:
            _within("choruses", self.choruses, 1, 10_000)
        _within("lookahead_ms", self.lookahead_ms, 20.0, 5000.0)
        _within("margin_ms", self.margin_ms, 1.0, self.lookahead_ms)
        _choice("device", self.device, DEVICES)
        _within("candidates", self.candidates, 1, 256)
        if self.virtual and (self.port_in or self.port_out):
            raise ValueError("give --virtual or port names, not both")
        if self.model is not None and not self.model.strip():
            raise ValueError("model must be a path, 'markov' or 'rules'")
        self.form_obj()  # unknown forms are refused here, not at the first bar
        self._check_band()
        for folder in self.models_dir:
            if not isinstance(folder, Path) or not folder.is_dir():
                raise ValueError(f"models_dir: no such folder: {folder}")

    def _check_band(self) -> None:
        from improv.craft.band import MODES, PART_NAMES, parse_parts

        parts = parse_parts(self.band) if self.band is not None else ()
        _choice("band_mode", self.band_mode, MODES)
        for table, lo, hi in (("band_channels", 1, 16), ("band_programs", 1, 128)):
            for part, number in getattr(self, table):
                if part not in PART_NAMES:
                    raise ValueError(
                        f"{table}: unknown part {part!r} (known: {', '.join(PART_NAMES)})"
                    )
                if isinstance(number, bool) or not isinstance(number, int):
                    raise ValueError(f"{table}.{part} must be an integer, not {number!r}")
                _within(f"{table}.{part}", number, lo, hi)
        channels = self.band_settings().channels
        used = [channels[p] for p in parts]
        if len(set(used)) < len(used):
            raise ValueError(f"band parts need channels of their own, not {used}")
        if self.channel_out in used:
            raise ValueError(f"channel_out {self.channel_out} is a band part's channel: move one")

    def band_settings(self, parts: str | None = None) -> Any:
        """The band's :class:`~improv.engine.band.BandSettings` (``parts`` when the
        config names none)."""
        from improv.craft.band import parse_parts
        from improv.engine.band import DEFAULT_CHANNELS, BandSettings

        return BandSettings(
            parse_parts(self.band or parts or "none"),
            self.band_mode,
            {**DEFAULT_CHANNELS, **dict(self.band_channels)},
            dict(self.band_programs),
        )

    # --- typed views ----------------------------------------------------------------

    @property
    def key_obj(self) -> Key:
        return Key.parse(self.key)

    @property
    def metre_obj(self) -> Metre:
        return Metre.parse(self.metre)

    @property
    def pitch_range(self) -> tuple[int, int]:
        return parse_range(self.range)

    def form_obj(self) -> Any:
        """The blues form in this key (``improv.music.forms``)."""
        from improv.music.forms import get_form

        try:
            return get_form(self.form, self.key_obj, self.metre_obj)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"form {self.form!r}: {exc}") from None

    def replaced(self, **changes: Any) -> JamConfig:
        """A copy with some settings changed (validated again)."""
        return replace(self, **changes)


_NUMBER = (float, int)
_TYPES: dict[str, tuple[type, ...]] = {
    "tempo": _NUMBER,
    "key": (str,),
    "form": (str,),
    "metre": (str,),
    "swing": _NUMBER,
    "mode": (str,),
    "bars": (int,),
    "slots": (str,),
    "first": (str,),
    "align": (str,),
    "gap": _NUMBER,
    "barge_in": (str,),
    "model": (str,),
    "temperature": _NUMBER,
    "top_p": _NUMBER,
    "seed": (int,),
    "channel_in": (int,),
    "channel_out": (int,),
    "range": (str,),
    "clock": (str,),
    "send_clock": (bool,),
    "metronome": (bool,),
    "count_in": (int,),
    "thru": (bool,),
    "choruses": (int,),
    "record": (Path,),
    "midi_api": (str,),
    "port_in": (str,),
    "port_out": (str,),
    "virtual": (bool,),
    "lookahead_ms": _NUMBER,
    "margin_ms": _NUMBER,
    "device": (str,),
    "candidates": (int,),
    "models_dir": (tuple,),
    "band": (str,),
    "band_mode": (str,),
    "band_channels": (tuple,),
    "band_programs": (tuple,),
}
_OPTIONAL = {"model", "seed", "channel_in", "choruses", "record", "port_in", "port_out", "band"}


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")


def _within(name: str, value: float, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, not {value!r}")
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ValueError(f"{name} must lie in [{lo:g}, {hi:g}], not {value!r}")


_RANGE = re.compile(r"^\s*([^-\s]+)\s*-\s*([^-\s]+)\s*$")


def parse_range(text: str) -> tuple[int, int]:
    """``"C3-C6"`` or ``"48-84"`` -> (48, 84)."""
    match = _RANGE.match(text)
    if match is None:
        raise ValueError(f"range must look like C3-C6 or 48-84, not {text!r}")
    lo, hi = (_pitch(part) for part in match.groups())
    if lo >= hi:
        raise ValueError(f"range {text!r}: low end must be below the high end")
    return lo, hi


def _pitch(text: str) -> int:
    if text.isdigit():
        value = int(text)
        if not 0 <= value <= 127:
            raise ValueError(f"pitch out of MIDI range: {text}")
        return value
    return parse_pitch(text)


# --- loading ---------------------------------------------------------------------------

_FIELDS = {f.name for f in fields(JamConfig)}
_PATHS = {"record"}
_OTHER_TABLES = {"mqtt"}  # ``[mqtt]``: see improv.io.mqtt.settings.mqtt_table


def load_toml(path: Path) -> dict[str, Any]:
    """Settings from a TOML file: top-level keys (``-`` or ``_``), or a ``[jam]`` table
    (an ``[mqtt]`` table beside it holds the broker's settings). A key the jam does not
    know is refused wherever it stands: a misspelt setting must not pass unnoticed."""
    data = read_toml(path)
    band: Any = None
    if isinstance(data.get("jam"), dict):
        band = data.get("band")
        stray = sorted(set(data) - {"jam", "band", *_OTHER_TABLES})
        if stray:
            raise UsageError(
                f"--config {path}: unknown setting(s) beside [jam]: {', '.join(map(repr, stray))}"
            )
        table = data["jam"]
    else:
        table = data
    settings: dict[str, Any] = {}
    for raw, value in table.items():
        if raw in _OTHER_TABLES and isinstance(value, dict):
            continue  # read by their own modules
        if raw == "band" and isinstance(value, dict):
            band = value
            continue
        name = raw.replace("-", "_")
        if name not in _FIELDS:
            raise UsageError(f"--config {path}: unknown setting {raw!r}")
        if name in _PATHS and isinstance(value, str):
            value = path.parent / value  # an absolute value stays as it is
        if name == "models_dir":
            folders = [value] if isinstance(value, str) else value
            if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
                raise UsageError(f"--config {path}: {raw} must be a folder or a list of folders")
            value = tuple(path.parent / folder for folder in folders)
        settings[name] = value
    if band is not None:
        settings.update(_band_table(path, band))
    return settings


def _band_table(path: Path, table: Any) -> dict[str, Any]:
    """``[band]``: ``parts`` (``"bass,drums,piano"``, a list, or ``"none"``), ``mode``,
    ``channels`` and ``programs`` (tables of part = number)."""
    if not isinstance(table, dict):
        raise UsageError(f"--config {path}: [band] must be a table")
    settings: dict[str, Any] = {}
    for key, value in table.items():
        if key == "parts":
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                value = ",".join(value) or "none"
            settings["band"] = value
        elif key == "mode":
            settings["band_mode"] = value
        elif key in ("channels", "programs"):
            if not isinstance(value, dict):
                raise UsageError(f"--config {path}: [band] {key} must be a table of part = number")
            settings[f"band_{key}"] = tuple(value.items())
        else:
            raise UsageError(f"--config {path}: unknown setting {key!r} in [band]")
    return settings


def build_config(path: Path | None = None, **overrides: Any) -> JamConfig:
    """The file's settings (if any), then the overrides that are not None."""
    settings = load_toml(path) if path is not None else {}
    settings.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(settings) - _FIELDS
    if unknown:
        raise UsageError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    try:
        return JamConfig(**settings)
    except TypeError as exc:
        raise UsageError(f"bad setting: {exc}") from None
