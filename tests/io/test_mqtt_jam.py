"""End to end: the real agent, played by the simulated performer through the in-process
transport, published over a real mosquitto and steered through ``control/set``."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import PIPE

import jsonschema
import numpy as np
import pytest

from improv.bench.mosquitto import Mosquitto
from improv.engine.agent import Agent, JamSummary
from improv.engine.config import JamConfig
from improv.engine.mqtt_observer import attach
from improv.engine.performer import Call, SimulatedPerformer
from improv.engine.responders import RulesResponder, rules_answer
from improv.io.mqtt import MqttBridge, MqttSettings
from improv.io.mqtt_payloads import schema_for_topic
from improv.io.transport import RecordingOutput, loopback
from improv.music.notes import Note
from tests.fixtures.mqtt import Listener

pytestmark = pytest.mark.mqtt

CALL = Call(tuple(Note(60 + (i * 5) % 12, 90, i * 0.5, 0.4) for i in range(12)), "test")


@dataclass
class Jam:
    agent: Agent
    bridge: MqttBridge
    task: asyncio.Task[JamSummary]


@asynccontextmanager
async def jam(broker: Mosquitto, **config: object) -> AsyncIterator[Jam]:
    """A real agent answering a simulated performer, its jam published on ``broker``."""
    options: dict[str, object] = {"tempo": 240.0, "count_in": 0, "bars": 2, **config}
    performer_out, agent_in = loopback("performer")
    agent = Agent(
        JamConfig(**options),  # type: ignore[arg-type]
        midi_in=agent_in,
        midi_out=RecordingOutput(),
        primary=RulesResponder(),
        inline=rules_answer,
        handle_signals=False,
    )
    performer = SimulatedPerformer(agent, performer_out, [CALL])
    agent.observers.append(performer)
    settings = MqttSettings(host=broker.host, port=broker.port, agent_id="jam")
    async with MqttBridge(settings) as bridge:
        attach(bridge, agent)
        playing = asyncio.create_task(performer.run())
        running = asyncio.create_task(agent.run())
        try:
            yield Jam(agent, bridge, running)
        finally:
            if not running.done():
                agent.request_stop("test")
            await running
            playing.cancel()


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
    # a dozen messages each: medians, and a generous bound on the worst (the host's
    # stalls reach a millisecond or two now and then; the benchmarks measure the tails)
    assert np.median(down) < np.median(up) + 0.5, (up, down)
    assert down.max() < 10.0, down
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
