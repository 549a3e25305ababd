"""The MQTT benchmark's broker round trip, on a real mosquitto (the jam part runs in
``tests/io/test_mqtt_jam.py``; the figures come from running the benchmark)."""

from __future__ import annotations

import pytest

from improv.bench.mosquitto import Mosquitto
from improv.bench.mqtt_bench import round_trip
from improv.io.mqtt.settings import MqttSettings

pytestmark = pytest.mark.mqtt


async def test_round_trip_measures_every_message(mosquitto: Mosquitto) -> None:
    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port, agent_id="bench")
    result = await round_trip(settings, 50, gap_s=0.001)
    assert result["round_trip_received"] == 50
    assert 0 < result["round_trip_ms_p50"] <= result["round_trip_ms_p99"]
    assert result["round_trip_ms_p99"] <= result["round_trip_ms_max"] < 1000
