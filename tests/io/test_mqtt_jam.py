"""End to end: the real agent, played by the simulated performer through the in-process
transport, published over a real mosquitto and steered through ``control/set``."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import PIPE
from typing import Any

import jsonschema
import numpy as np
import pytest

from improv.bench.mosquitto import Mosquitto
from improv.engine.agent import Agent, JamSummary
from improv.engine.config import JamConfig
from improv.engine.context import ChordTimeline
from improv.engine.generator import AnswerRequest, Responder
from improv.engine.performer import Call
from improv.engine.responders import (
    Responders,
    RulesResponder,
    TokenResponder,
    build_responders,
)
from improv.engine.session import Ports, Session
from improv.io.midi.loopback import RecordingOutput, loopback
from improv.io.mqtt import MqttBridge, MqttSettings
from improv.io.mqtt.payloads import schema_for_topic
from improv.music.forms import get_form
from improv.music.notes import Note
from improv.music.pitch import Key
from tests.fixtures.mqtt import Listener

pytestmark = pytest.mark.mqtt

CALL = Call(tuple(Note(60 + (i * 5) % 12, 90, i * 0.5, 0.4) for i in range(12)), "test")


@dataclass
class Jam:
    agent: Agent
    bridge: MqttBridge
    task: asyncio.Task[JamSummary]


@asynccontextmanager
async def jam(
    broker: Mosquitto, primary: Responder | None = None, **config: object
) -> AsyncIterator[Jam]:
    """A real agent answering a simulated performer, its jam published on ``broker``."""
    options: dict[str, object] = {"tempo": 240.0, "count_in": 0, "bars": 2, **config}
    jam_config = JamConfig(**options)  # type: ignore[arg-type]
    timeline = ChordTimeline(jam_config.form_obj())
    if isinstance(primary, TokenResponder):
        timeline = primary.chords  # the models read the jam's own chords
    performer_out, agent_in = loopback("performer")
    settings = MqttSettings(host=broker.host, port=broker.port, agent_id="jam")
    async with MqttBridge(settings) as bridge:
        session = Session(
            jam_config,
            calls=[CALL],
            ports=Ports(agent_in, RecordingOutput(), performer_out),
            responders=Responders(primary or RulesResponder(), [], "test"),
            timeline=timeline,
            bridge=bridge,
            own_bridge=False,
            handle_signals=False,
        )
        agent = await session.start()
        running = asyncio.create_task(session.run())
        try:
            yield Jam(agent, bridge, running)
        finally:
            if not running.done():
                agent.request_stop("test")
            await running


async def test_the_real_jam_publishes_valid_payloads_and_takes_control(
    mosquitto: Mosquitto,
) -> None:
    async with Listener(mosquitto, "improv/jam/") as heard:
        async with jam(mosquitto, choruses=1, form="8-bar") as live:
            assert await live.bridge.wait_connected(10)
            await heard.wait_for("beat", lambda p: p["bar"] >= 1)
            await heard.publish("control/set", json.dumps({"id": "up", "tempo": 300}))
            await heard.publish("control/set", json.dumps({"id": "bad", "tempo": 200, "bars": 5}))
            ok = await heard.wait_for("control/result", lambda p: p["id"] == "up")
            bad = await heard.wait_for("control/result", lambda p: p["id"] == "bad")
            changed = await heard.wait_for("state", lambda p: p["tempo"] == 300)
            summary = await live.task
        await heard.wait_for("status", lambda p: p["status"] == "offline")
    assert ok.json()["ok"] and not bad.json()["ok"]
    assert changed.json()["beat"] == 0.0  # a tempo change lands on a bar line
    assert summary.turns >= 2
    topics = set()
    for message in heard.messages:
        if message.topic != "control/set":
            jsonschema.validate(message.json(), schema_for_topic(message.topic))
            topics.add(message.topic)
    assert {"status", "state", "beat", "phrase/call", "phrase/answer", "metrics"} <= topics
    answers = [m.json() for m in heard.on("phrase/answer")]
    assert sum(len(a["notes"]) for a in answers) == summary.notes_out


class KeyedResponder(TokenResponder):
    """The Markov model, noting the key its token stream is in whenever it drafts."""

    drafts: list[tuple[float, int, int]]

    def respond(self, request: AnswerRequest, played: Sequence[Note], position: float) -> Any:
        self.drafts.append((request.start, self._encoder.key, self.tonic))
        return super().respond(request, played, position)


def _keyed(config: JamConfig) -> KeyedResponder:
    timeline = ChordTimeline(config.form_obj())
    markov = build_responders("markov", config.key_obj, config.metre_obj, timeline).primary
    assert isinstance(markov, TokenResponder)
    keyed = KeyedResponder(
        markov.model, name="markov", key=config.key_obj, metre=config.metre_obj, chords=timeline
    )
    keyed.drafts = []
    return keyed


async def test_a_key_change_reaches_the_models_token_stream_at_the_next_bar_line(
    mosquitto: Mosquitto,
) -> None:
    keyed = _keyed(JamConfig(form="8-bar"))
    async with (
        Listener(mosquitto, "improv/jam/") as heard,
        jam(mosquitto, keyed, form="8-bar", choruses=1) as live,
    ):
        assert await live.bridge.wait_connected(10)
        # bar 2: the answer to the call in bars 0-1 is playing; it lasts to bar 4
        await heard.wait_for("beat", lambda p: p["bar"] == 2 and p["beat"] >= 1.0)
        await heard.publish("control/set", json.dumps({"id": "k", "key": "Bb"}))
        result = await heard.wait_for("control/result", lambda p: p["id"] == "k")
        await heard.wait_for("beat", lambda p: p["bar"] == 3)
        beat = next(m.json() for m in heard.on("beat") if m.json()["bar"] == 3)
        await live.task
    assert result.json()["ok"]
    assert beat["chord"] == "Eb7"  # bar 3 of the 8-bar form, in Bb
    drafted = {start: (key, tonic) for start, key, tonic in keyed.drafts}
    assert drafted[8.0] == (5, 5)  # the answer began in F ...
    assert drafted[12.0] == (10, 10)  # ... its rest, from the bar line, is drafted in Bb


async def test_tempo_and_form_changes_reach_the_whole_stack(mosquitto: Mosquitto) -> None:
    async with (
        Listener(mosquitto, "improv/jam/") as heard,
        jam(mosquitto, form="8-bar", choruses=2) as live,
    ):
        agent = live.agent
        assert await live.bridge.wait_connected(10)
        await heard.wait_for("beat", lambda p: p["bar"] >= 1)
        change = {"id": "tf", "tempo": 300, "form": "minor-blues"}
        await heard.publish("control/set", json.dumps(change))
        await heard.wait_for("state", lambda p: p["tempo"] == 300)
        lead_300 = agent.state.params.lead_beats
        await heard.wait_for("beat", lambda p: p["bar"] == 8)  # the next chorus
        await live.task
    slots = {(m.json()["slot"], m.json()["slot_bars_left"]) for m in heard.on("state")}
    assert {("performer", 2), ("performer", 1), ("improv", 2), ("improv", 1)} <= slots
    minor = get_form("minor-blues", Key.parse("F"))
    at_chorus = next(m.json() for m in heard.on("beat") if m.json()["bar"] == 8)
    assert at_chorus["chord"] == minor.symbol_at(0, 0.0)  # the new form, from its chorus
    assert lead_300 == pytest.approx((200 + 15) / 1000 * 300 / 60)  # the turns' lead too
    later = [m.json() for m in heard.on("phrase/answer") if m.json()["start_bar"] >= 8]
    symbols = {c["symbol"] for a in later for c in a["chords"]}
    assert symbols and symbols <= {minor.symbol_at(0, b * 4.0) for b in range(12)}


async def test_the_music_does_not_notice_the_broker_dying_and_coming_back(
    mosquitto: Mosquitto,
) -> None:
    loop = asyncio.get_running_loop()
    async with jam(mosquitto) as live:
        agent = live.agent
        assert await live.bridge.wait_connected(10)
        await asyncio.sleep(4.0)  # two turns with the broker
        sent_up = len(agent.scheduler.send_errors())
        misses_up = agent.generator.stats.deadline_misses
        await asyncio.to_thread(mosquitto.kill)
        await asyncio.sleep(4.0)  # two turns without
        sent_down = len(agent.scheduler.send_errors())
        misses_down = agent.generator.stats.deadline_misses
        await asyncio.to_thread(mosquitto.start)
        back = loop.time()
        async with Listener(mosquitto, "improv/jam/") as heard:
            state = await heard.wait_for("state", timeout=5)
        agent.request_stop("test")
        await live.task
    errors = agent.scheduler.send_errors() * 1000.0
    up, down = errors[:sent_up], errors[sent_up:sent_down]
    assert len(up) > 10 and len(down) > 10
    # a dozen messages each: medians (a host stall makes any single one late; the tails
    # are the benchmarks': improv bench mqtt)
    assert np.median(down) < np.median(up) + 0.5, (up, down)
    assert misses_up == misses_down == 0
    assert state.at - back < 2.0
    assert live.bridge.stats.connections == 2


async def test_improv_jam_mqtt_on_the_command_line(mosquitto: Mosquitto, tmp_path: Path) -> None:
    argv = ["jam", "--demo", "--model", "rules", "--form", "8-bar", "--tempo", "300"]
    argv += ["--bars", "2", "--choruses", "1", "--record", str(tmp_path / "jam.mid"), "--json"]
    argv += ["--mqtt", mosquitto.url, "--mqtt-id", "cli"]
    async with Listener(mosquitto, "improv/cli/") as heard:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "improv.cli", *argv, stdout=PIPE, stderr=PIPE
        )
        await heard.wait_for("status", lambda p: p["status"] == "online", timeout=60)
        await heard.publish("control/set", json.dumps({"id": 1, "key": "Bb"}))
        result = await heard.wait_for("control/result", timeout=30)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        await heard.wait_for("status", lambda p: p["status"] == "offline", timeout=10)
    assert result.json()["ok"]
    summary = json.loads(out)
    answers = [m.json() for m in heard.on("phrase/answer")]
    assert sum(len(a["notes"]) for a in answers) == summary["notes_out"]
    assert heard.on("beat") and heard.on("metrics")
