"""The live web page's server: one page, one websocket, the jam pushed as it happens.

``GET /`` serves the page (``static/``, shipped as package data); ``GET /ws`` is the
websocket. The jam comes in through the constant-time ``publish_*`` methods, which only
put into a bounded :class:`~improv.io.web.feed.Feed`; the server's own task encodes each
message once and hands it to every client's bounded queue, and a task per client writes
it out, so a slow browser delays only itself. What a client sends is a ``control/set``
payload, read by the same :class:`~improv.io.control_desk.ControlDesk` as MQTT's; the
result goes back to that client.

Bound to 127.0.0.1 by default. Bound elsewhere, a random token is required in the URL
(``?token=...``) for the page and the websocket alike; a websocket from a page of another
origin is refused either way, so a web site in the player's browser cannot steer the jam.
Everything here runs on the agent's event loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import secrets
from argparse import Namespace
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from importlib import resources
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from improv import __version__
from improv.errors import UsageError
from improv.io.control import MAX_PAYLOAD_BYTES, ControlHandler
from improv.io.control_desk import ControlDesk
from improv.io.web.feed import Feed
from improv.music.notes import Phrase

__all__ = ["WebServer", "WebSettings", "WebStats", "parse_address", "web_from_args"]

log = logging.getLogger(__name__)

DEFAULT_HOST: Final = "127.0.0.1"
MAX_CLIENTS: Final = 32
CLIENT_QUEUE: Final = 2048
"""Messages waiting for one client (the replay of a page that joins fits); a browser
this far behind loses the oldest."""
RECENT_NOTES: Final = 1024
"""Notes and phrases replayed to a page that connects mid-jam (the roll's last minutes)."""
HEARTBEAT_S: Final = 10.0
CLOSE_TIMEOUT_S: Final = 2.0
STATIC: Final = {
    "/": ("index.html", "text/html"),
    "/page.js": ("page.js", "text/javascript"),
    "/page.css": ("page.css", "text/css"),
}
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

FormGrid = Callable[[dict[str, Any]], dict[str, Any]]
"""The form a state is in: ``bars`` (each bar's chord symbols) and ``origin_bar`` (where
its chorus began); called on the server's task, never on the agent's hook."""


@dataclass(frozen=True, slots=True)
class WebSettings:
    """Where to listen; ``token`` None means none is asked for (loopback only)."""

    host: str = DEFAULT_HOST
    port: int = 0
    token: str | None = None

    @classmethod
    def for_address(cls, text: str) -> WebSettings:
        """``[HOST:]PORT`` as ``--web`` takes it; a token when not on loopback."""
        host, port = parse_address(text)
        token = None if is_loopback(host) else secrets.token_urlsafe(16)
        return cls(host, port, token)


def web_from_args(args: Namespace) -> WebServer | None:
    """The server for ``improv jam --web``, or None without it; a bad address fails here."""
    text = getattr(args, "web", None)
    return None if text is None else WebServer(WebSettings.for_address(text))


def parse_address(text: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT``; raises :class:`UsageError`."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep:
        host = DEFAULT_HOST
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if sep and not host:
        raise UsageError(f"--web {text!r}: give [HOST:]PORT, e.g. 8080 or 0.0.0.0:8080")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UsageError(f"--web {text!r}: the port must be a number 0..65535")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class WebStats:
    """What the server did so far: messages queued by the agent and dropped there
    (``feed_dropped``), sent to clients and dropped for slow ones, control results."""

    clients: int
    feed_put: int
    feed_dropped: int
    sent: int
    client_dropped: int
    refused_connections: int
    control_applied: int
    control_refused: int


class _Client:
    """One browser: a bounded queue of encoded messages and the task that writes them."""

    def __init__(self, ws: web.WebSocketResponse, limit: int = CLIENT_QUEUE) -> None:
        self.ws = ws
        self.queue: deque[str] = deque()
        self.limit = limit
        self.ready = asyncio.Event()
        self.dropped = 0
        self.sent = 0

    def put(self, text: str) -> None:
        if len(self.queue) >= self.limit:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(text)
        self.ready.set()

    async def write(self) -> None:
        """Write what is queued until the socket closes (or the browser goes away)."""
        try:
            while not self.ws.closed:
                await self.ready.wait()
                self.ready.clear()
                while self.queue and not self.ws.closed:
                    await self.ws.send_str(self.queue.popleft())
                    self.sent += 1
        except ConnectionError as exc:  # the reader sees the socket end and cleans up
            log.debug("web: a page went away: %s", exc)


class WebServer:
    """Serves the live page of one jam. Use as an async context manager around the jam
    (or :meth:`start` and :meth:`close`); :attr:`url` is what to open."""

    def __init__(
        self,
        settings: WebSettings,
        *,
        on_control: ControlHandler | None = None,
        forms: Collection[str] | None = None,
        form_grid: FormGrid | None = None,
        feed_limit: int | None = None,
    ) -> None:
        self.settings = settings
        self.form_grid = form_grid
        self.desk = ControlDesk(on_control=on_control, forms=forms, edge="web")
        self._feed = Feed(feed_limit) if feed_limit is not None else Feed()
        self._clients: set[_Client] = set()
        self._joined = asyncio.Event()
        self._writers: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._hub: asyncio.Task[None] | None = None
        self._port = settings.port
        self._pages = {path: _static(name) for path, (name, _) in STATIC.items()}
        # what a page that connects now is told first
        self._state: str | None = None
        self._grid: str | None = None
        self._grid_key: tuple[Any, ...] | None = None
        self._metrics: str | None = None
        self._beat: str | None = None
        self._recent: deque[str] = deque(maxlen=RECENT_NOTES)
        self._sent_before = 0  # by clients gone
        self._dropped_before = 0
        self._refused = 0

    # --- the agent's side: constant time, never waits ------------------------------

    def publish_state(self, state: dict[str, Any]) -> None:
        self._feed.put("state", state)

    def publish_beat(self, bar: int, beat: float, chord: str | None, at: float) -> None:
        """A beat falls now: song ``bar`` and ``beat``, jam position ``at`` (beats)."""
        self._feed.put("beat", (bar, beat, chord, at))

    def publish_note(self, role: str, pitch: int, velocity: int, at: float) -> None:
        self._feed.put("note", (role, pitch, velocity, at))

    def publish_phrase(self, role: str, phrase: Phrase) -> None:
        """A finished phrase (the page learns the answer's note lengths from it)."""
        self._feed.put("phrase", (role, phrase))

    def publish_metrics(self, metrics: dict[str, Any]) -> None:
        self._feed.put("metrics", metrics)

    # --- observation ---------------------------------------------------------------

    @property
    def url(self) -> str:
        """The page's address (with the token where one is asked for)."""
        host = self.settings.host
        shown = f"[{host}]" if ":" in host else host
        query = f"?token={self.settings.token}" if self.settings.token else ""
        return f"http://{shown}:{self._port}/{query}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def stats(self) -> WebStats:
        clients = list(self._clients)
        return WebStats(
            clients=len(clients),
            feed_put=self._feed.put_count,
            feed_dropped=self._feed.dropped,
            sent=self._sent_before + sum(c.sent for c in clients),
            client_dropped=self._dropped_before + sum(c.dropped for c in clients),
            refused_connections=self._refused,
            control_applied=self.desk.applied,
            control_refused=self.desk.refused,
        )

    async def wait_clients(self, n: int, timeout: float) -> bool:
        """Wait until ``n`` pages are connected (for benchmarks and tests)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while len(self._clients) < n:
                    self._joined.clear()
                    await self._joined.wait()
        return len(self._clients) >= n

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Listen; raises :class:`UsageError` when the address cannot be bound."""
        if self._runner is not None:
            return
        app = web.Application(client_max_size=MAX_PAYLOAD_BYTES)
        for path in STATIC:
            app.router.add_get(path, self._page)
        app.router.add_get("/ws", self._socket)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.host, self.settings.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            where = f"{self.settings.host}:{self.settings.port}"
            raise UsageError(f"--web {where}: cannot listen ({exc.strerror or exc})") from None
        self._runner = runner
        self._port = _bound_port(runner, self.settings.port)
        self._hub = asyncio.create_task(self._pump(), name="web-hub")
        log.info("web: the live page is at %s", self.url)

    async def close(self) -> None:
        """Send what waits (briefly), close the pages' sockets, stop listening."""
        hub, self._hub = self._hub, None
        if hub is not None:
            self._forward(self._feed.take())
            hub.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hub
        for client in list(self._clients):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    while client.queue and not client.ws.closed:
                        await asyncio.sleep(0.01)
                    await client.ws.close(code=1001, message=b"the jam has ended")
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        for task in list(self._writers):
            task.cancel()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- the server's task -----------------------------------------------------------

    async def _pump(self) -> None:
        """Take what the agent queued, encode each message once, hand it to every page."""
        while True:
            await self._feed.ready.wait()
            self._forward(self._feed.take())
            await asyncio.sleep(0)  # let the writers run before the next batch

    def _forward(self, items: list[tuple[str, Any]]) -> None:
        for kind, body in items:
            try:
                text = self._encode(kind, body)
            except (TypeError, ValueError) as exc:  # a bug upstream: never stop the page
                log.error("web: cannot encode a %s message (%s); dropped", kind, exc)
                continue
            for client in self._clients:
                client.put(text)

    def _encode(self, kind: str, body: Any) -> str:
        if kind == "state":
            text = _json({"type": "state", **body})
            self._state = text
            self._update_grid(body)
        elif kind == "beat":
            bar, beat, chord, at = body
            text = _json({"type": "beat", "bar": bar, "beat": beat, "chord": chord, "at": at})
            self._beat = text
        elif kind == "note":
            role, pitch, velocity, at = body
            msg = {"type": "note", "role": role, "pitch": pitch, "velocity": velocity, "at": at}
            text = _json(msg)
            self._recent.append(text)
        elif kind == "phrase":
            role, phrase = body
            start = phrase.start_bar * phrase.metre.beats_per_bar
            rows = [
                [n.pitch, n.velocity, round(start + n.onset, 4), round(n.duration, 4)]
                for n in phrase.notes
            ]
            text = _json({"type": "phrase", "role": role, "start": start, "notes": rows})
            self._recent.append(text)
        elif kind == "metrics":
            text = _json({"type": "metrics", **body})
            self._metrics = text
        else:
            raise ValueError(f"unknown kind {kind!r}")
        return text

    def _update_grid(self, state: dict[str, Any]) -> None:
        """The form's chords, told again when the form, key or chorus changes."""
        if self.form_grid is None:
            return
        key = (state.get("form"), state.get("key"), state.get("metre"), state.get("chorus"))
        if key == self._grid_key:
            return
        self._grid_key = key
        text = _json({"type": "form", "form": state.get("form"), **self.form_grid(state)})
        self._grid = text
        for client in self._clients:
            client.put(text)

    # --- the handlers ----------------------------------------------------------------

    def _allowed(self, request: web.Request) -> bool:
        token = self.settings.token
        if token is not None:
            given = request.query.get("token", "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return False
        return True

    async def _page(self, request: web.Request) -> web.Response:
        # the script and the style sheet hold nothing of the jam: only the page and its
        # socket ask for the token (the page's own requests for them do not carry it)
        if request.path == "/" and not self._allowed(request):
            self._refused += 1
            return web.Response(status=403, text="improv: bad or missing token\n")
        _, content_type = STATIC[request.path]
        return web.Response(
            body=self._pages[request.path],
            content_type=content_type,
            charset="utf-8",
            headers=SECURITY_HEADERS,
        )

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        if not self._allowed(request):
            self._refused += 1
            return web.Response(status=403, text="improv: bad or missing token\n")
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            self._refused += 1
            return web.Response(status=403, text="improv: a page of another origin\n")
        if len(self._clients) >= MAX_CLIENTS:
            self._refused += 1
            return web.Response(status=503, text="improv: too many pages open\n")
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=4 * MAX_PAYLOAD_BYTES)
        await ws.prepare(request)
        client = _Client(ws)
        self._greet(client)
        self._clients.add(client)
        self._joined.set()
        writer = asyncio.create_task(client.write(), name="web-client")
        self._writers.add(writer)
        writer.add_done_callback(self._writers.discard)

        def answer(result: dict[str, Any]) -> None:
            client.put(_json({"type": "result", **result}))

        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    self.desk.handle(message.data.encode(), answer)
                elif message.type is WSMsgType.BINARY:
                    self.desk.handle(bytes(message.data), answer)
        finally:
            self._clients.discard(client)
            self._sent_before += client.sent
            self._dropped_before += client.dropped
            writer.cancel()
        return ws

    def _greet(self, client: _Client) -> None:
        """What a page needs first: who we are, then the latest of everything."""
        hello = {"type": "hello", "version": __version__, "recent": len(self._recent)}
        client.put(_json(hello))
        for text in (self._state, self._grid, self._metrics, self._beat, *self._recent):
            if text is not None:
                client.put(text)


def _json(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), allow_nan=False)


def _static(name: str) -> bytes:
    return resources.files("improv.io.web").joinpath("static", name).read_bytes()


def _bound_port(runner: web.AppRunner, asked: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return asked
