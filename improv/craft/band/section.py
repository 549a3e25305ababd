"""The parts of the band together: made by name, planned a bar at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from improv.craft.band.bass import WalkingBass
from improv.craft.band.drums import SwingDrums
from improv.craft.band.part import BarContext, Part
from improv.craft.band.piano import CompingPiano
from improv.music.notes import Note

PART_NAMES = ("bass", "drums", "piano")
"""The parts ``--band`` may name, in the order a band is written down."""
_MAKERS: dict[str, Callable[[], Part]] = {
    "bass": WalkingBass,
    "drums": SwingDrums,
    "piano": CompingPiano,
}


def parse_parts(text: str) -> tuple[str, ...]:
    """``"bass,drums,piano"`` (any order, any subset) or ``"none"``: the part names, in
    :data:`PART_NAMES` order; a clear ValueError names an unknown one."""
    words = [w.strip().lower() for w in text.split(",") if w.strip()]
    if words == ["none"]:
        return ()
    if not words:
        raise ValueError("band must name parts (bass,drums,piano) or be 'none'")
    unknown = sorted(set(words) - set(PART_NAMES))
    if unknown:
        raise ValueError(
            f"band: unknown part(s) {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(PART_NAMES)}, or none)"
        )
    return tuple(name for name in PART_NAMES if name in words)


class RhythmSection:
    """The named parts; :meth:`plan` gives each one's notes for a bar."""

    def __init__(self, parts: Iterable[str | Part]) -> None:
        self.parts: dict[str, Part] = {}
        for part in parts:
            made = _MAKERS[part]() if isinstance(part, str) else part
            self.parts[made.name] = made

    def plan(self, bar: BarContext) -> dict[str, list[Note]]:
        return {name: part.plan(bar) for name, part in self.parts.items()}

    def reset(self) -> None:
        for part in self.parts.values():
            part.reset()
