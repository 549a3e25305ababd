"""The live view says whose slot it is and how many bars of it remain."""

from __future__ import annotations

from rich.console import Console

from improv.commands.jam_view import JamView


def _render(view: JamView) -> str:
    console = Console(width=120, record=True)
    console.print(view)
    return console.export_text()


def test_the_view_shows_the_slot_and_the_bars_left() -> None:
    view = JamView("jam")
    view.on_state({"turn": "listening", "slot": "performer", "slot_bars_left": 3})
    assert "yours, 3 bars left" in _render(view)
    view.on_state({"turn": "answering", "slot": "improv", "slot_bars_left": 1})
    assert "improv's, 1 bar left" in _render(view)
    view.on_state({"turn": "idle", "slot": None, "slot_bars_left": None})
    text = _render(view)
    assert "yours" not in text and "improv's" not in text
