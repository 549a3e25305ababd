"""Connects an agent to the live web page: what the jam does goes out, control comes in.

The agent tells its observers from the loop thread; :class:`WebObserver` only puts each
message into the server's bounded feed (constant time), and the server's own task does
the encoding and the sending. :func:`attach` also routes the page's controls, read by
the same desk as MQTT's, to :meth:`Agent.apply_control`.
"""

from __future__ import annotations

import math
from typing import Any

from improv.engine.agent import Agent, JamObserver
from improv.io.web.server import WebServer
from improv.music.notes import Phrase


class WebObserver(JamObserver):
    """Forwards the agent's news to a :class:`WebServer`'s feed."""

    def __init__(self, server: WebServer, agent: Agent) -> None:
        self.server = server
        self.agent = agent

    def on_state(self, state: dict[str, Any]) -> None:
        self.server.publish_state(state)

    def on_beat(self, bar: int, beat: float, chord: str | None) -> None:
        at = math.floor(self.agent.position() + 1e-6)  # the jam position the notes use
        self.server.publish_beat(bar, beat, chord, at if math.isfinite(at) else 0.0)

    def on_note(self, role: str, pitch: int, velocity: int, at: float) -> None:
        self.server.publish_note(role, pitch, velocity, at)

    def on_phrase(self, role: str, phrase: Phrase, turn: int) -> None:
        self.server.publish_phrase(role, phrase)

    def on_metrics(self, metrics: dict[str, Any]) -> None:
        self.server.publish_metrics(metrics)


def form_grid(agent: Agent) -> dict[str, Any]:
    """The chords of each bar of the form now in force, and the bar its chorus began
    on (so the page can mark the current bar); read on the server's task."""
    beats = agent.position()
    if not math.isfinite(beats):
        beats = 0.0
    form = agent.timeline.form_at(beats)
    start = agent.timeline.chorus_start(max(beats, 0.0))
    bars = [[s for _, s in bar] or [form.symbol_at(i)] for i, bar in enumerate(form.bars)]
    return {"bars": bars, "origin_bar": round(start / form.metre.beats_per_bar)}


def attach(server: WebServer, agent: Agent) -> WebObserver:
    """Show ``agent``'s jam on ``server``'s page and hand it the page's controls."""
    server.desk.on_control = agent.apply_control
    server.form_grid = lambda _state: form_grid(agent)
    observer = WebObserver(server, agent)
    agent.observers.append(observer)
    return observer
