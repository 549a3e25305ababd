"""The live console view of ``improv jam`` and its closing summary table.

The view is a :class:`~improv.engine.agent.JamObserver`: the agent's calls only update a
few fields (cheap, on the loop thread); rich's own refresh thread draws them a few
times a second.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from improv.engine.agent import JamObserver, JamSummary
from improv.music.notes import Phrase
from improv.music.pitch import pitch_name

_ROLE_STYLE = {"call": "cyan", "answer": "magenta"}


class JamView(JamObserver):
    """Bar, beat, chord, who is playing, and the latest notes of each player."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.bar = 0
        self.beat = 0.0
        self.chord: str | None = None
        self.turn = "listening"
        self.state: dict[str, Any] = {}
        self.turns = 0
        self.notes: dict[str, deque[str]] = {"call": deque(maxlen=16), "answer": deque(maxlen=16)}
        self.last_metrics: dict[str, Any] = {}

    def on_state(self, state: dict[str, Any]) -> None:
        self.state = state
        self.turn = state.get("turn", self.turn)

    def on_beat(self, bar: int, beat: float, chord: str | None) -> None:
        self.bar, self.beat, self.chord = bar, beat, chord

    def on_note(self, role: str, pitch: int, velocity: int, at: float) -> None:
        if velocity > 0:
            self.notes[role].append(pitch_name(pitch))

    def on_phrase(self, role: str, phrase: Phrase, turn: int) -> None:
        if role == "answer":
            self.turns = turn

    def on_metrics(self, metrics: dict[str, Any]) -> None:
        self.last_metrics = metrics

    def __rich__(self) -> RenderableType:
        counting = self.bar < 0
        where = Table.grid(padding=(0, 2))
        where.add_row(
            Text("count-in" if counting else f"bar {self.bar + 1}", style="bold"),
            Text(f"beat {int(self.beat) + 1}"),
            Text(self.chord or "-", style="bold yellow"),
            Text(self.turn, style=_ROLE_STYLE["answer" if self.turn == "answering" else "call"]),
            _slot_text(self.state),
            Text(f"turn {self.turns}"),
            Text(f"{self.state.get('tempo', '')} BPM  {self.state.get('model', '')}", style="dim"),
        )
        lines: list[RenderableType] = [where]
        for role, label in (("call", "you  "), ("answer", "improv")):
            lines.append(
                Text.assemble((f"{label} ", _ROLE_STYLE[role]), " ".join(self.notes[role]))
            )
        metrics = self.last_metrics
        if metrics:
            lines.append(
                Text(
                    f"last turn: {metrics.get('notes_out')} notes, send error p99 "
                    f"{_ms(metrics.get('send_error_ms_p99'))}, headroom "
                    f"{_ms(metrics.get('generation_headroom_ms_min'))}, misses "
                    f"{metrics.get('deadline_misses')}",
                    style="dim",
                )
            )
        return Panel(Group(*lines), title=self.title, title_align="left")


def _slot_text(state: dict[str, Any]) -> Text:
    """Whose slot it is and how many bars of it remain: "yours, 3 bars left"."""
    slot = state.get("slot")
    if slot is None:
        return Text("")
    owner = "yours" if slot == "performer" else "improv's"
    left = state.get("slot_bars_left")
    bars = "" if left is None else f", {left} bar{'s' if left != 1 else ''} left"
    return Text(owner + bars, style=_ROLE_STYLE["answer" if slot == "improv" else "call"])


def _ms(value: object) -> str:
    return f"{value:.3f} ms" if isinstance(value, float) else "-"


def summary_table(summary: JamSummary) -> Table:
    table = Table(title="improv jam", title_justify="left", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in summary.as_dict().items():
        table.add_row(name, "-" if value is None else str(value))
    return table
