"""The MQTT bridge against a real mosquitto: retained state, last will, schemas, control,
a broker that dies mid-jam, and a flood of control requests.

The jam here is a stand-in agent (``FakeJam``): a beat clock at absolute times that
publishes as the agent does and applies control changes at bar lines, so the bridge is
tested alone; ``test_mqtt_jam.py`` runs the real agent end to end.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import jsonschema
import pytest

from improv.bench.mosquitto import Mosquitto
from improv.io.control import ControlChange, ControlError
from improv.io.mqtt import MqttBridge, MqttSettings
from improv.io.mqtt.payloads import SCHEMAS, JamState, TurnMetrics, schema_for_topic
from improv.music.notes import ChordChange, Note, Phrase
from tests.fixtures.mqtt import Listener, TlsFiles

pytestmark = pytest.mark.mqtt


def settings(broker: Mosquitto, agent: str = "t", **options: Any) -> MqttSettings:
    return MqttSettings(host=broker.host, port=broker.port, agent_id=agent, **options)


class FakeJam:
    """A stand-in agent: beats at absolute times; control changes applied at bar lines."""

    def __init__(self, bridge: MqttBridge | None, tempo: float = 480.0) -> None:
        self.bridge = bridge
        self.state: JamState = {
            "mode": "trade",
            "turn": "listening",
            "tempo": tempo,
            "metre": "4/4",
            "key": "F",
            "form": "blues",
            "bar": 0,
            "beat": 0.0,
            "chord": "F7",
            "model": "rules",
            "device": "cpu",
            "temperature": 1.0,
        }
        self.pending: list[ControlChange] = []
        self.applied: list[ControlChange] = []

    def on_control(self, change: ControlChange) -> None:
        if change.model == "missing.pt":
            raise ControlError("no such model: missing.pt")
        self.pending.append(change)

    async def play(self, bars: int) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + 0.01
        for bar in range(bars):
            self._bar_line(bar)
            for beat in range(4):
                await asyncio.sleep(max(0.0, due - loop.time()))
                if self.bridge is not None:
                    self.bridge.publish_beat(bar, float(beat), self.state["chord"])
                due += 60.0 / self.state["tempo"]
            if bar % 2 == 1 and self.bridge is not None:
                self._turn_over(bar)

    def _bar_line(self, bar: int) -> None:
        for change in self.pending:
            if change.tempo is not None:
                self.state["tempo"] = change.tempo
            if change.key is not None:
                self.state["key"] = change.key.name
            if change.mode is not None:
                self.state["mode"] = change.mode
            self.applied.append(change)
        self.pending.clear()
        self.state["bar"] = bar
        self.state["turn"] = "answering" if bar % 4 >= 2 else "listening"
        if self.bridge is not None:
            self.bridge.publish_state(self.state)

    def _turn_over(self, bar: int) -> None:
        assert self.bridge is not None
        notes = [Note(60 + i, 90, i * 0.5, 0.5) for i in range(8)]
        chords = [ChordChange(0.0, "F7", None), ChordChange(4.0, "Bb7", None)]
        phrase = Phrase.of(notes, chords, start_bar=bar - 1)
        self.bridge.publish_phrase("answer" if bar % 4 == 3 else "call", phrase, turn=bar // 2)
        metrics: TurnMetrics = {
            "turn": bar // 2,
            "notes_out": 8,
            "send_error_ms_p50": 0.01,
            "send_error_ms_p99": 0.05,
            "send_error_ms_max": 0.2,
            "answer_start_error_ms": 0.02,
            "generation_ms": 3.5,
            "generation_headroom_ms_min": 150.0,
            "deadline_misses": 0,
            "fallback_notes": 0,
        }
        self.bridge.publish_metrics(metrics)


def has_id(request: object) -> Callable[[dict[str, Any]], bool]:
    return lambda payload: payload["id"] == request


# --- status, state, will ---------------------------------------------------------------


async def test_status_and_state_are_retained_and_shutdown_says_offline(
    mosquitto: Mosquitto,
) -> None:
    async with MqttBridge(settings(mosquitto)) as bridge:
        jam = FakeJam(bridge)
        assert await bridge.wait_connected(10)
        await jam.play(bars=2)
        assert await bridge.flush(5)
        async with Listener(mosquitto, "improv/t/") as late:  # subscribes after the fact
            status = await late.wait_for("status")
            state = await late.wait_for("state")
    assert status.retain and status.json()["status"] == "online"
    assert state.retain and state.json()["bar"] == 1
    async with Listener(mosquitto, "improv/t/") as after:
        status = await after.wait_for("status")
    assert status.json()["status"] == "offline"
    assert status.json()["reason"] == "shutdown"


CRASHING_AGENT = """
import asyncio, sys
from improv.io.mqtt import MqttBridge, MqttSettings

async def main() -> None:
    settings = MqttSettings(host=sys.argv[1], port=int(sys.argv[2]), agent_id="crash")
    async with MqttBridge(settings) as bridge:
        await bridge.wait_connected(10)
        print("online", flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_last_will_says_offline_when_the_agent_dies_uncleanly(
    mosquitto: Mosquitto,
) -> None:
    async with Listener(mosquitto, "improv/crash/") as heard:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(CRASHING_AGENT),
                mosquitto.host,
                str(mosquitto.port),
            ],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
            assert line.strip() == b"online"
            online = await heard.wait_for("status", lambda p: p["status"] == "online")
            proc.send_signal(signal.SIGKILL)
            offline = await heard.wait_for("status", lambda p: p["status"] == "offline")
        finally:
            proc.kill()
            proc.wait()
    assert offline.json()["reason"] == "lost"
    assert online.json()["agent"] == "crash"


# --- schemas ---------------------------------------------------------------------------


async def test_every_published_payload_validates_against_its_schema(
    mosquitto: Mosquitto,
) -> None:
    async with Listener(mosquitto, "improv/t/") as heard:
        jam = FakeJam(None)
        async with MqttBridge(settings(mosquitto), on_control=jam.on_control) as bridge:
            jam.bridge = bridge
            assert await bridge.wait_connected(10)
            await heard.publish("control/set", json.dumps({"id": "a", "key": "Bb"}))
            await heard.publish("control/set", json.dumps({"id": "b", "bars": 3}))
            await heard.publish("control/set", b"\x00garbage")
            await jam.play(bars=4)
            await heard.wait_for("control/result", lambda p: p["id"] is None)
            assert await bridge.flush(5)
        await heard.wait_for("status", lambda p: p["status"] == "offline")
    seen: set[str] = set()
    for message in heard.messages:
        if message.topic == "control/set":
            continue  # the test's own requests, garbage included
        jsonschema.validate(message.json(), schema_for_topic(message.topic))
        seen.add(message.topic)
    assert seen == set(SCHEMAS) - {"control/set"}


# --- control ---------------------------------------------------------------------------


async def test_control_changes_are_applied_at_the_bar_or_refused_with_a_reason(
    mosquitto: Mosquitto,
) -> None:
    async with Listener(mosquitto, "improv/t/") as heard:
        # left on the broker by someone: must not act again on every (re)connection
        await heard.publish("control/set", json.dumps({"id": 5, "pause": True}), retain=True)
        jam = FakeJam(None, tempo=240.0)
        async with MqttBridge(settings(mosquitto), on_control=jam.on_control) as bridge:
            jam.bridge = bridge
            assert await bridge.wait_connected(10)
            play = asyncio.create_task(jam.play(bars=1000))
            requests = [
                {"id": 1, "tempo": 150, "key": "Bb"},
                {"id": 2, "tempo": 150, "key": "H"},  # refused whole: tempo stays
                {"id": 3, "mode": "phrase", "volume": 11},
                {"id": 4, "model": "missing.pt"},  # the agent itself refuses
            ]
            for request in requests:
                await heard.publish("control/set", json.dumps(request))
            results = {}
            for rid in (1, 2, 3, 4, 5):
                result = await heard.wait_for("control/result", has_id(rid))
                results[rid] = result.json()
            state = await heard.wait_for("state", lambda p: p["tempo"] == 150)
            play.cancel()
    assert results[1]["ok"] and results[1]["changes"] == {"tempo": 150.0, "key": "Bb"}
    assert not results[2]["ok"] and "key" in results[2]["error"]
    assert not results[3]["ok"] and "volume" in results[3]["error"]
    assert not results[4]["ok"] and "missing.pt" in results[4]["error"]
    assert not results[5]["ok"] and "retained" in results[5]["error"]
    assert [c.id for c in jam.applied] == [1]
    assert state.json()["key"] == "Bb"
    assert bridge.stats.control_applied == 1
    assert bridge.stats.control_refused == 4


def handled(bridge: MqttBridge) -> int:
    stats = bridge.stats
    return stats.control_applied + stats.control_refused + stats.dropped["control"]


async def test_a_flood_of_control_requests_with_garbage_crashes_nothing(
    mosquitto: Mosquitto,
) -> None:
    garbage = [b"", b"{", b"[]", b"\xff" * 100, b'{"tempo": "fast"}', b"x" * 5000, b"null"]
    async with Listener(mosquitto, "improv/t/", ["control/result"]) as heard:
        jam = FakeJam(None)
        async with MqttBridge(settings(mosquitto), on_control=jam.on_control) as bridge:
            jam.bridge = bridge
            assert await bridge.wait_connected(10)
            payloads = [
                json.dumps({"id": f"ok-{i}", "tempo": 60 + i % 200}).encode()
                if i % 3 == 0
                else garbage[i % len(garbage)]
                for i in range(10_000)
            ]
            sent_valid = sum(p.startswith(b'{"id"') for p in payloads)
            for start in range(0, len(payloads), 200):  # as fast as a client can send
                batch = payloads[start : start + 200]
                await asyncio.gather(*(heard.publish("control/set", p, qos=0) for p in batch))
            async with asyncio.timeout(60):  # every request is read or counted as dropped
                while handled(bridge) < 10_000:
                    await asyncio.sleep(0.05)
            await heard.publish("control/set", json.dumps({"id": "last", "key": "G"}))
            await heard.wait_for("control/result", lambda p: p["id"] == "last", timeout=30)
            stats = bridge.stats
            await jam.play(bars=1)  # the jam still plays and applies what was accepted
    assert handled(bridge) == 10_001
    valid_ids = {c.id for c in jam.applied}
    assert "last" in valid_ids
    assert all(isinstance(i, str) and i.startswith("ok-") for i in valid_ids - {"last"})
    assert stats.control_applied == len(jam.applied) <= sent_valid + 1
    assert stats.waiting <= 1 + sum(
        (bridge.settings.limits.beats, bridge.settings.limits.kept, bridge.settings.limits.results)
    )
    results = [m.json() for m in heard.on("control/result")]
    assert all(r["ok"] == (isinstance(r["id"], str)) for r in results)


async def test_huge_requests_never_reach_the_agent_and_break_nothing(
    mosquitto: Mosquitto,
) -> None:
    async with (
        Listener(mosquitto, "improv/t/", ["control/result"]) as heard,
        MqttBridge(settings(mosquitto), on_control=lambda _: None) as bridge,
    ):
        assert await bridge.wait_connected(10)
        await heard.publish("control/set", b'{"id": "big", "model": "' + b"m" * 100_000 + b'"}')
        await heard.publish("control/set", b'{"id": "mid", "model": "' + b"m" * 5_000 + b'"}')
        await heard.publish("control/set", b'{"id": "ok", "mute": true}')
        ok = await heard.wait_for("control/result", lambda p: p["id"] == "ok")
    ids = [m.json()["id"] for m in heard.on("control/result")]
    assert ids == [None, "ok"]  # "mid" refused as too large (unread: no id); "big" never came
    assert "too large" in heard.on("control/result")[0].json()["error"]
    assert ok.json()["ok"]
    assert bridge.stats.connections == 1


# --- a broker that is not there --------------------------------------------------------


async def test_broker_down_at_start_then_up_the_jam_never_waits(mosquitto: Mosquitto) -> None:
    await asyncio.to_thread(mosquitto.kill)
    async with MqttBridge(settings(mosquitto)) as bridge:
        jam = FakeJam(bridge)
        t0 = time.perf_counter()
        for _ in range(10_000):
            bridge.publish_beat(0, 0.0, "F7")
            bridge.publish_state(jam.state)
        per_call_us = (time.perf_counter() - t0) / 20_000 * 1e6
        await jam.play(bars=2)
        assert not bridge.connected
        await asyncio.to_thread(mosquitto.start)
        assert await bridge.wait_connected(5)
        async with Listener(mosquitto, "improv/t/") as heard:
            await heard.wait_for("state")
    assert per_call_us < 200  # constant time, whatever the broker does (generous bound)
    assert bridge.stats.dropped["beat"] >= 10_000
    assert bridge.stats.coalesced >= 9_999


# --- TLS -------------------------------------------------------------------------------


async def test_mqtts_with_a_client_certificate(
    mosquitto_tls: Mosquitto, tls_files: TlsFiles
) -> None:
    tls = settings(
        mosquitto_tls,
        tls=True,
        ca=tls_files.ca,
        cert=tls_files.client_cert,
        key=tls_files.client_key,
    )
    async with MqttBridge(tls) as bridge:
        assert await bridge.wait_connected(10)
    async with MqttBridge(replace(tls, cert=None, key=None)) as refused:
        assert not await refused.wait_connected(1.5)  # the broker wants a certificate
