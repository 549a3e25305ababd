"""Connects an agent to the MQTT bridge: what the jam does goes out, control comes in.

The agent tells its observers about state, beats, phrases and per-turn figures from the
loop thread; :class:`MqttObserver` passes each to the bridge's constant-time
``publish_*`` methods, so observing costs the music nothing. :func:`attach` also routes
the bridge's validated control changes to :meth:`Agent.apply_control`.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from improv.engine.agent import Agent, JamObserver
from improv.io.mqtt import MqttBridge
from improv.io.mqtt.payloads import JamState, TurnMetrics
from improv.music.notes import Phrase

log = logging.getLogger(__name__)


class MqttObserver(JamObserver):
    """Forwards the agent's news to an :class:`MqttBridge` (notes are not published)."""

    def __init__(self, bridge: MqttBridge) -> None:
        self.bridge = bridge

    def on_state(self, state: dict[str, Any]) -> None:
        self.bridge.publish_state(cast(JamState, state))

    def on_beat(self, bar: int, beat: float, chord: str | None) -> None:
        self.bridge.publish_beat(bar, beat, chord)

    def on_phrase(self, role: str, phrase: Phrase, turn: int) -> None:
        if role == "call":
            self.bridge.publish_phrase("call", phrase, turn)
        elif role == "answer":
            self.bridge.publish_phrase("answer", phrase, turn)
        else:
            log.debug("mqtt: phrase of unknown role %r not published", role)

    def on_metrics(self, metrics: dict[str, Any]) -> None:
        self.bridge.publish_metrics(cast(TurnMetrics, metrics))


def attach(bridge: MqttBridge, agent: Agent) -> MqttObserver:
    """Publish ``agent``'s jam on ``bridge`` and hand it the bridge's control requests."""
    bridge.on_control = agent.apply_control
    observer = MqttObserver(bridge)
    agent.observers.append(observer)
    return observer
