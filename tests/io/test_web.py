"""The live page's server without a browser: addresses, tokens, origins, the bounded
feed, and ``improv jam --web`` on the real command line."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import aiohttp
import pytest

from improv.errors import UsageError
from improv.io.control import ControlChange
from improv.io.web import WebServer, WebSettings, parse_address
from improv.io.web.feed import Feed
from improv.music.notes import Note, Phrase
from tests.test_bad_input import run_improv


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("8080", ("127.0.0.1", 8080)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:9000", ("::1", 9000)),
    ],
)
def test_addresses_are_read(text: str, address: tuple[str, int]) -> None:
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["", "http", "80000", ":80", "host:", "-1", "1.2.3.4:x"])
def test_bad_addresses_are_refused(text: str) -> None:
    with pytest.raises(UsageError, match="--web"):
        parse_address(text)


def test_a_token_is_asked_for_off_loopback_only() -> None:
    assert WebSettings.for_address("8080").token is None
    assert WebSettings.for_address("[::1]:8080").token is None
    away = WebSettings.for_address("0.0.0.0:8080")
    other = WebSettings.for_address("0.0.0.0:8080")
    assert away.token and other.token and away.token != other.token and len(away.token) >= 20
    server = WebServer(away)
    assert server.url == f"http://0.0.0.0:8080/?token={away.token}"


def test_the_feed_never_waits_and_counts_what_it_drops() -> None:
    feed = Feed(limit=100)
    start = time.perf_counter()
    for i in range(10_000):
        feed.put("note", i)
    per_put = (time.perf_counter() - start) / 10_000
    assert feed.dropped == 9_900 and len(feed) == 100
    assert [body for _, body in feed.take()] == list(range(9_900, 10_000))  # the latest kept
    assert len(feed) == 0 and not feed.ready.is_set()
    assert per_put < 20e-6


async def test_the_agents_side_only_queues_and_the_server_sends_to_every_page() -> None:
    async with WebServer(WebSettings(), feed_limit=64) as server:
        ws_url = server.url.replace("http", "ws") + "ws"
        async with aiohttp.ClientSession() as session:
            sockets = [await session.ws_connect(ws_url) for _ in range(3)]
            assert (await sockets[0].receive_json())["type"] == "hello"
            assert await server.wait_clients(3, 5.0)
            sent = server.stats.sent
            server.publish_state({"tempo": 120.0, "form": "blues"})
            server.publish_note("call", 60, 90, 4.0)
            server.publish_phrase("answer", Phrase.of([Note(62, 80, 0.5, 1.0)], start_bar=2))
            assert server.stats.sent == sent  # nothing is sent on the agent's call
            for ws in sockets:
                kinds = [(await ws.receive_json(timeout=5))["type"]]
                while kinds[-1] != "phrase":
                    kinds.append((await ws.receive_json(timeout=5))["type"])
                assert kinds[-3:] == ["state", "note", "phrase"]
            late = await session.ws_connect(ws_url)  # a page that joins now catches up
            replay = [(await late.receive_json(timeout=5)) for _ in range(4)]
            assert [m["type"] for m in replay] == ["hello", "state", "note", "phrase"]
            assert replay[3]["notes"] == [[62, 80, 8.5, 1.0]]  # in jam beats
            for ws in [*sockets, late]:
                await ws.close()
    assert server.stats.feed_dropped == 0


async def test_a_socket_from_another_origin_is_refused() -> None:
    async with WebServer(WebSettings()) as server:
        ws_url = server.url.replace("http", "ws") + "ws"
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(ws_url, origin="http://evil.example")
            assert refused.value.status == 403
            own = await session.ws_connect(ws_url, origin=f"http://127.0.0.1:{server.port}")
            await own.close()
    assert server.stats.refused_connections == 1


async def test_controls_from_a_page_reach_the_handler_and_answer_that_page() -> None:
    applied: list[ControlChange] = []
    async with WebServer(WebSettings(), on_control=applied.append) as server:
        ws_url = server.url.replace("http", "ws") + "ws"
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(ws_url)
            await ws.send_str(json.dumps({"id": 7, "tempo": 150, "mute": True}))
            await ws.send_bytes(b"\xff not json")
            results = []
            while len(results) < 2:
                message = await ws.receive_json(timeout=5)
                if message["type"] == "result":
                    results.append(message)
            await ws.close()
    assert results[0] == {
        "type": "result",
        "id": 7,
        "ok": True,
        "changes": {"tempo": 150.0, "mute": True},
    }
    assert results[1] == {"type": "result", "id": None, "ok": False, "error": results[1]["error"]}
    assert "UTF-8" in results[1]["error"]
    assert applied == [ControlChange(id=7, tempo=150.0, mute=True)]


def test_bad_web_addresses_on_the_command_line_are_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for argv, says in (
            (["--web", "nowhere:port"], "the port must be a number"),
            (["--web", f"127.0.0.1:{port}"], "cannot listen"),
        ):
            cmd = ["jam", "--demo", "--json", "--choruses", "1", "--model", "rules", *argv]
            code, stderr, _ = run_improv(cmd, tmp_path)
            lines = [line for line in stderr.splitlines() if line.strip()]
            assert code == 2 and "Traceback" not in stderr, stderr[-2000:]
            assert len(lines) == 1 and says in lines[0], stderr[-2000:]


async def test_nothing_is_left_listening_after_close() -> None:
    server = WebServer(WebSettings())
    await server.start()
    port = server.port
    await server.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
