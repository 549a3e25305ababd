"""``control/set`` with a model: the answer comes after the load, and tells the truth;
only shipped models and files in the configured model folders may be loaded."""

from __future__ import annotations

import asyncio
import gc
import json
import pickle
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from improv.bench.mosquitto import Mosquitto
from improv.engine.agent import Agent
from improv.engine.config import JamConfig
from improv.engine.context import ChordTimeline
from improv.engine.generator import Responder
from improv.engine.mqtt_observer import attach
from improv.engine.responders import RulesResponder, responder_loader, rules_answer
from improv.io.control import ControlChange, ControlError
from improv.io.midi.loopback import RecordingOutput, loopback
from improv.io.mqtt import MqttBridge, MqttSettings
from tests.fixtures.mqtt import Listener

ROOT = Path(__file__).resolve().parents[2]


class _Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("pwned",))


@pytest.mark.mqtt
async def test_model_requests_are_answered_after_the_load_and_truthfully(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(ROOT / "models" / "lstm.pt", models / "mine.pt")
    (models / "evil.pt").write_bytes(pickle.dumps(_Evil()))
    (models / "zero.pt").symlink_to("/dev/zero")
    (models / "shadow.pt").symlink_to("/etc/shadow")
    config = JamConfig(tempo=240.0, count_in=0, bars=2, models_dir=(models,))
    performer_out, agent_in = loopback("performer")
    timeline = ChordTimeline(config.form_obj())
    agent = Agent(
        config,
        midi_in=agent_in,
        midi_out=RecordingOutput(),
        primary=RulesResponder(),
        inline=rules_answer,
        load_responder=responder_loader(config.key_obj, config.metre_obj, timeline),
        timeline=timeline,
        handle_signals=False,
    )
    loop_errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: loop_errors.append(ctx))
    requests = {
        "shadow": "/etc/shadow",
        "zero": "/dev/zero",
        "missing": str(models / "missing.pt"),
        "outside": str(ROOT / "models" / "lstm.pt"),  # a real model, but not in a model folder
        "dotdot": str(models / ".." / "models" / ".." / "x.pt"),
        "linked zero": str(models / "zero.pt"),
        "linked shadow": str(models / "shadow.pt"),
        "pickle": str(models / "evil.pt"),
        "mine": str(models / "mine.pt"),
        "shipped": "lstm",
        "rules": "rules",
    }
    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port, agent_id="models")
    async with Listener(mosquitto, "improv/models/") as heard, MqttBridge(settings) as bridge:
        attach(bridge, agent)
        await agent.open_output()
        running = asyncio.create_task(agent.run())
        try:
            assert await bridge.wait_connected(10)
            results = {}
            for rid, spec in requests.items():  # one at a time: each answer names its load
                await heard.publish("control/set", json.dumps({"id": rid, "model": spec}))
                got = await heard.wait_for("control/result", lambda p, r=rid: p["id"] == r)
                results[rid] = got.json()
            await heard.publish("control/set", json.dumps({"id": "big", "tempo": 10**400}))
            big = (await heard.wait_for("control/result", lambda p: p["id"] == "big")).json()
        finally:
            agent.request_stop("test")
            await running
            performer_out.close()
    for rid in ("shadow", "zero", "missing", "outside", "dotdot", "linked zero"):
        assert not results[rid]["ok"], (rid, results[rid])
        assert "model" in results[rid]["error"], results[rid]
    for rid in ("linked shadow", "pickle"):
        assert not results[rid]["ok"], (rid, results[rid])
    assert all(results[rid]["ok"] for rid in ("mine", "shipped", "rules")), results
    assert not big["ok"] and "out of range" in big["error"] and "internal" not in big["error"]
    gc.collect()
    assert not loop_errors, loop_errors  # no "Future exception was never retrieved"


async def test_many_model_requests_load_one_at_a_time_and_the_last_wins() -> None:
    started = threading.Semaphore(0)
    release = threading.Event()
    loading: list[str] = []
    concurrent = [0, 0]  # now, most
    lock = threading.Lock()

    def load(spec: str) -> Responder:
        with lock:
            concurrent[0] += 1
            concurrent[1] = max(concurrent[1], concurrent[0])
            loading.append(spec)
        started.release()
        release.wait(10)
        with lock:
            concurrent[0] -= 1
        responder = RulesResponder()
        responder.name = spec
        return responder

    _, agent_in = loopback("performer")
    agent = Agent(
        JamConfig(tempo=240.0),
        midi_in=agent_in,
        midi_out=RecordingOutput(),
        primary=RulesResponder(),
        inline=rules_answer,
        load_responder=load,
        handle_signals=False,
    )
    answers = [agent.apply_control(ControlChange(model="rules")) for _ in range(100)]
    await asyncio.to_thread(started.acquire)  # the first load runs
    release.set()
    outcomes = await asyncio.gather(*[a for a in answers if a is not None], return_exceptions=True)
    assert len(outcomes) == 100
    assert concurrent[1] == 1 and len(loading) == 2  # the first, then the last one waiting
    replaced = [o for o in outcomes if isinstance(o, ControlError)]
    assert len(replaced) == 98 and "replaced" in str(replaced[0])
    assert outcomes[0] is None and outcomes[-1] is None
