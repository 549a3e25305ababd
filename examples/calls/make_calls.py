"""Make the demo's calls: short blues phrases from improv's rule-based generator.

Run from the repository root: ``.venv/bin/python examples/calls/make_calls.py``. The
calls are in F, on the first bars of a 12-bar blues, one per file, with chord markers.
"""

from pathlib import Path

from improv.craft.rules import BluesGenerator, Voice
from improv.io.midi.files import Track, write_jam
from improv.music.forms import get_form
from improv.music.pitch import Key

HERE = Path(__file__).parent
CALLS = [  # (name, seed, beats, density)
    ("call-1-sparse", 11, 6, 0.35),
    ("call-2-eighths", 12, 7, 0.6),
    ("call-3-busy", 13, 7, 0.85),
    ("call-4-four-bars", 14, 14, 0.55),
]

if __name__ == "__main__":
    key = Key.parse("F")
    form = get_form("blues", key)
    for name, seed, beats, density in CALLS:
        notes = BluesGenerator(seed, key).phrase(
            form.changes(), form.metre, start=0.0, beats=beats, voice=Voice(density=density)
        )
        end = 4 * ((beats + 3) // 4 + 1)
        chords = [c for c in form.changes() if c.onset < end]
        write_jam(HERE / f"{name}.mid", [Track("performer", notes)], bpm=120, chords=chords)
        print(f"{name}.mid: {len(notes)} notes")
