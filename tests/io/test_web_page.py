"""The live page in a real headless Chromium (playwright): it shows a running jam's notes
as they are played, and its controls steer the jam through the same path as MQTT.

One browser for the module; each test opens its own page. The jam is the real agent
answering the simulated performer through the in-process transport.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from improv.bench.mosquitto import Mosquitto
from improv.bench.web_bench import CHROMIUM, CHROMIUM_ARGS
from improv.engine.agent import Agent, JamObserver, JamSummary
from improv.engine.config import JamConfig
from improv.engine.performer import Call
from improv.engine.responders import Responders, RulesResponder
from improv.engine.session import Ports, Session
from improv.io.control import ControlChange
from improv.io.midi.loopback import RecordingOutput, loopback
from improv.io.mqtt import MqttBridge, MqttSettings
from improv.io.web import WebServer, WebSettings
from improv.music.notes import Note
from tests.fixtures.mqtt import Listener

CALL = Call(tuple(Note(60 + (i * 5) % 12, 90, i * 0.5, 0.4) for i in range(12)), "test")

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None, reason=f"no chromium at {CHROMIUM} (apt install chromium)"
    ),
]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Any]:
    playwright_api = pytest.importorskip("playwright.async_api")
    async with playwright_api.async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Heard(JamObserver):
    """The notes the agent told its observers, in order: (role, pitch, velocity, at)."""

    notes: list[tuple[str, int, int, float]] = field(default_factory=list)

    def on_note(self, role: str, pitch: int, velocity: int, at: float) -> None:
        self.notes.append((role, pitch, velocity, at))


@dataclass
class Jam:
    agent: Agent
    server: WebServer
    heard: Heard
    task: asyncio.Task[JamSummary]


@asynccontextmanager
async def jam(settings: WebSettings | None = None, **config: Any) -> AsyncIterator[Jam]:
    """A short, fast jam (240 BPM, 2-bar trades, 8-bar form) with its live page."""
    options: dict[str, Any] = {"tempo": 240.0, "count_in": 0, "bars": 2, "form": "8-bar"}
    jam_config = JamConfig(**{**options, **config})
    performer_out, agent_in = loopback("performer")
    heard = Heard()
    async with WebServer(settings or WebSettings()) as server:
        session = Session(
            jam_config,
            calls=[CALL],
            observers=[heard],
            ports=Ports(agent_in, RecordingOutput(), performer_out),
            responders=Responders(RulesResponder(), [], "test"),
            web=server,
            handle_signals=False,
        )
        agent = await session.start()
        running = asyncio.create_task(session.run())
        try:
            yield Jam(agent, server, heard, running)
        finally:
            if not running.done():
                agent.request_stop("test")
            await running


async def test_the_page_shows_the_jams_notes_as_they_are_played(browser: Any) -> None:
    async with jam() as live:
        page = await browser.new_page()
        await page.goto(live.server.url)
        # the first answer (bars 2-3) has begun: calls and answers are on the page
        await page.wait_for_function(
            "() => window.improv?.counts.call >= 8 && window.improv.counts.answer >= 4",
            timeout=10_000,
        )
        assert not live.task.done()  # shown while the jam plays, not after
        told = [n for n in live.heard.notes if n[2] > 0]
        shown = await page.evaluate(
            "window.improv.notes.map(n => [n.role, n.pitch, n.velocity, n.at])"
        )
        assert shown, "no notes on the page"
        assert [tuple(n) for n in shown] == told[: len(shown)]  # each one, in order
        assert {n[0] for n in shown} == {"call", "answer"}
        grid = await page.locator("#grid > div").all_inner_texts()
        assert len(grid) == 8 and grid[0].split() == ["1", "F7"]
        assert await page.locator("#turn").inner_text() in ("listening", "answering")
        assert await page.locator("#model-now").inner_text() == "rules (cpu, T 1)"
        assert "BPM" in await page.locator("#tempo-now").inner_text()
        # the roll is drawn: pixels in both colours
        await page.wait_for_function(_DRAWN, timeout=5_000)
        # the first turn's timing figures arrive when it ends
        await page.wait_for_function("() => window.improv?.metrics !== null", timeout=10_000)
        keys = await page.locator("#metrics tr").evaluate_all(
            "rows => rows.map(r => r.dataset.key)"
        )
        assert "send_error_ms_p99" in keys
        await page.close()
    assert live.server.stats.feed_dropped == 0


_DRAWN = """() => {
  const c = document.getElementById("roll");
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let call = 0, answer = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 2] > d[i] + 60 && d[i + 2] > 120) call++;
    if (d[i] > d[i + 2] + 60 && d[i] > 120) answer++;
  }
  return call > 50 && answer > 50;
}"""


async def test_a_tempo_click_changes_the_running_jams_tempo(browser: Any) -> None:
    async with jam() as live:
        page = await browser.new_page()
        await page.goto(live.server.url)
        await page.wait_for_function("() => window.improv?.state !== null", timeout=10_000)
        await page.fill("#tempo", "180")
        await page.click("#set-tempo")
        await page.wait_for_function("() => window.improv?.results.length > 0", timeout=5_000)
        result = (await page.evaluate("window.improv.results"))[-1]
        assert result["ok"] and result["changes"] == {"tempo": 180.0}
        # applied at the next bar line: the agent's clock and the page both say so
        await page.wait_for_function("() => window.improv?.state.tempo === 180", timeout=5_000)
        assert live.agent.clock.bpm_at(live.agent.clock.time_at(live.agent.position())) == 180.0
        assert live.agent.config.tempo == 180.0
        assert await page.locator("#tempo-now").inner_text() == "180 BPM"
        await page.click("#tempo-up")
        await page.wait_for_function("() => window.improv?.state.tempo === 185", timeout=5_000)
        await page.close()
    assert live.server.stats.control_applied == 2


async def test_a_bad_token_is_refused(browser: Any) -> None:
    settings = WebSettings("127.0.0.1", 0, token="the-right-token")
    async with WebServer(settings) as server:
        base = server.url.split("?")[0]
        page = await browser.new_page()
        for url in (base, base + "?token=wrong"):
            response = await page.goto(url)
            assert response.status == 403
            assert "bad or missing token" in await page.content()
        opened = await page.evaluate(_OPEN_SOCKET, base.replace("http", "ws") + "ws?token=wrong")
        assert opened == "refused"
        response = await page.goto(server.url)
        assert response.status == 200
        await page.wait_for_function("() => window.improv?.connected", timeout=5_000)
        assert server.stats.clients == 1
        await page.close()
    assert server.stats.refused_connections == 3


_OPEN_SOCKET = """(url) => new Promise((done) => {
  const ws = new WebSocket(url);
  ws.onopen = () => { ws.close(); done("open"); };
  ws.onerror = () => done("refused");
})"""


async def test_a_bad_control_value_gets_the_same_error_as_over_mqtt(
    browser: Any, mosquitto: Mosquitto
) -> None:
    applied: list[ControlChange] = []
    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port, agent_id="web")
    async with (
        WebServer(WebSettings(), on_control=applied.append) as server,
        MqttBridge(settings, on_control=applied.append) as bridge,
        Listener(mosquitto, "improv/web/") as heard,
    ):
        assert await bridge.wait_connected(10)
        page = await browser.new_page()
        await page.goto(server.url)
        await page.wait_for_function("() => window.improv?.connected", timeout=5_000)
        for field_id, value, payload in (
            ("#tempo", "500", {"tempo": 500}),
            ("#temperature", "5", {"temperature": 5}),
            ("#model", " ", {"model": " "}),
        ):
            before = await page.evaluate("window.improv.results.length")
            await page.fill(field_id, value)
            await page.click(field_id.replace("#", "#set-"))
            await page.wait_for_function(f"() => window.improv?.results.length > {before}")
            on_page = (await page.evaluate("window.improv.results"))[-1]
            rid = f"mqtt-{field_id}"
            await heard.publish("control/set", json.dumps({"id": rid, **payload}))
            over_mqtt = (
                await heard.wait_for("control/result", lambda p, r=rid: p["id"] == r)
            ).json()
            assert not on_page["ok"] and not over_mqtt["ok"]
            assert on_page["error"] == over_mqtt["error"]
            assert on_page["error"] in await page.locator("#result").inner_text()
        await page.close()
    assert applied == []  # refused whole: nothing reached the agent
    assert server.stats.control_refused == 3
