"""The rhythm section: walking bass, drums and comping piano, each a pure :class:`Part`.

- :mod:`improv.craft.band.part`: what a part is given for a bar (:class:`BarContext`)
  and the :class:`Part` protocol (the seam where a learned model could replace a part).
- :mod:`improv.craft.band.listening`: what the band hears of the soloists.
- :mod:`improv.craft.band.bass`, :mod:`~improv.craft.band.drums`,
  :mod:`~improv.craft.band.piano`: the players.
- :mod:`improv.craft.band.section`: the parts together, by name.

The engine (:mod:`improv.engine.band`) plans a bar ahead and schedules the notes.
"""

from improv.craft.band.listening import Listener, Listening
from improv.craft.band.part import MODES, BarContext, Part
from improv.craft.band.section import PART_NAMES, RhythmSection, parse_parts

__all__ = [
    "MODES",
    "PART_NAMES",
    "BarContext",
    "Listener",
    "Listening",
    "Part",
    "RhythmSection",
    "parse_parts",
]
