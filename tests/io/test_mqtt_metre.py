"""A metre change through ``control/set`` reaches the whole stack at the next bar line:
the clock, the chords, the turns, the models' token stream, the metronome, the record
and MQTT ``state``; a metre the jam cannot take is refused with the reason. Through a
real mosquitto, the real agent and the Markov model's token stream."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mido
import pytest

from improv.bench.mosquitto import Mosquitto
from improv.engine.config import JamConfig
from improv.engine.context import ChordTimeline
from improv.engine.generator import AnswerRequest
from improv.engine.responders import Responders, TokenResponder, build_responders
from improv.engine.session import Ports, Session
from improv.io.midi.loopback import RecordingOutput, loopback
from improv.io.mqtt import MqttBridge, MqttSettings
from improv.music.forms import get_form
from improv.music.notes import Note
from improv.music.time import Metre
from tests.fixtures.mqtt import Listener
from tests.io.test_mqtt_jam import CALL

pytestmark = [pytest.mark.mqtt, pytest.mark.realtime]

TEMPO = 300.0
BEAT_S = 60.0 / TEMPO


class BarCounting(TokenResponder):
    """The Markov model, noting the bars its token stream counts whenever it drafts."""

    drafts: list[tuple[float, str, int, int]]

    def respond(self, request: AnswerRequest, played: Sequence[Note], position: float) -> Any:
        bars = (self._encoder._tpb, self._grammar.ticks_per_bar)
        self.drafts.append((request.start, str(request.metre), *bars))
        return super().respond(request, played, position)


async def test_a_metre_change_reaches_the_whole_stack_at_the_next_bar_line(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    record = tmp_path / "jam.mid"
    config = JamConfig(tempo=TEMPO, count_in=0, bars=2, form="8-bar", metronome=True, record=record)
    timeline = ChordTimeline(config.form_obj())
    markov = build_responders("markov", config.key_obj, config.metre_obj, timeline).primary
    assert isinstance(markov, TokenResponder)
    model = BarCounting(
        markov.model, name="markov", key=config.key_obj, metre=config.metre_obj, chords=timeline
    )
    model.drafts = []
    out = RecordingOutput()
    performer_out, agent_in = loopback("performer")
    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port, agent_id="jam")
    async with Listener(mosquitto, "improv/jam/") as heard, MqttBridge(settings) as bridge:
        session = Session(
            config,
            calls=[CALL],
            ports=Ports(agent_in, out, performer_out),
            responders=Responders(model, [], "test"),
            timeline=timeline,
            bridge=bridge,
            own_bridge=False,
            handle_signals=False,
        )
        agent = await session.start()
        running = asyncio.create_task(session.run())
        try:
            assert await bridge.wait_connected(10)
            await heard.wait_for("beat", lambda p: p["bar"] == 2 and p["beat"] >= 1.0)
            for rid, metre in (("bad", "5/5"), ("long", "13/4"), ("m", "3/4")):
                await heard.publish("control/set", json.dumps({"id": rid, "metre": metre}))
            results = {
                rid: (await heard.wait_for("control/result", lambda p, r=rid: p["id"] == r)).json()
                for rid in ("bad", "long", "m")
            }
            again = {"id": "again", "metre": "6/8"}  # while the first waits for its bar line
            await heard.publish("control/set", json.dumps(again))
            refused = await heard.wait_for("control/result", lambda p: p["id"] == "again")
            changed = await heard.wait_for("state", lambda p: p["metre"] == "3/4")
            first = len(heard.messages)
            await heard.wait_for("phrase/answer", lambda p: p["metre"] == "3/4", timeout=15)
            await heard.wait_for("beat", lambda p: p["beat"] == 2.0, after=first)
        finally:
            agent.request_stop("test")
            await running
    # refused whole and truthfully; the good one taken
    assert not results["bad"]["ok"] and "metre" in results["bad"]["error"]
    assert not results["long"]["ok"] and "12 beats at most" in results["long"]["error"]
    assert results["m"]["ok"]
    assert not refused.json()["ok"] and "due at the next bar line" in refused.json()["error"]
    # MQTT state and beats: bars of three from a bar line after the request (past what
    # is scheduled ahead: bar 3 or 4)
    assert changed.json()["beat"] == 0.0
    ((at, to, metre),) = agent.metre_changes
    assert at in (12.0, 16.0) and str(metre) == "3/4" and to % 3 == 0
    beats = [m for m in heard.on("beat")]
    before = [m for m in beats if m.json()["bar"] * 4 + m.json()["beat"] < at]
    after = [m for m in beats if m.at > before[-1].at]
    assert {m.json()["beat"] for m in after} == {0.0, 1.0, 2.0}
    # the chords go on from the same bar of the form, in bars of three
    bar = int(at // 4)
    assert after[0].json()["chord"] == get_form("8-bar", "F", Metre(3, 4)).symbol_at(bar)
    # the turns trade slots of two 3/4 bars; the models count 36-tick bars
    assert agent.state.params.beats_per_bar == 3.0
    assert agent.state.params.turn_beats == 6.0
    late = [d for d in model.drafts if d[0] >= to]
    assert late and all(d[1:] == ("3/4", 36, 36) for d in late)
    assert all(d[0] % 3 == 0 for d in late)  # answers start on 3/4 bar lines
    # the metronome accents every third click from the change; one click a beat across
    # it (the jump in positions takes no time: no beat lost, none gained)
    clicks = [e for e in out.events if e.is_note_on and e.channel == 9]
    accents = [e.time for e in clicks if e.pitch == 76]
    change_time = agent.clock.time_at(to)
    spans = [round((b - a) / BEAT_S) for a, b in itertools.pairwise(accents)]
    cut = next(i for i, t in enumerate(accents) if t >= change_time - 1e-3)
    assert set(spans[:cut]) == {4} and set(spans[cut:]) == {3}
    steps = [b.time - a.time for a, b in itertools.pairwise(clicks)]
    assert min(steps) > BEAT_S - 0.02 and max(steps) < BEAT_S + 0.02
    # the record: 4/4, then 3/4 from the change, the beats as they sounded
    assert session.record_written
    signatures = []
    tick = 0
    for message in mido.MidiFile(record).tracks[0]:
        tick += message.time
        if message.type == "time_signature":
            signatures.append((tick, f"{message.numerator}/{message.denominator}"))
    per_beat = mido.MidiFile(record).ticks_per_beat
    assert signatures == [(0, "4/4"), (int(at) * per_beat, "3/4")]
