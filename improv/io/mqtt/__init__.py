"""The MQTT bridge: publishes the jam (status, state, beats, phrases, metrics) and takes
control requests, without ever holding up the music.

The agent calls plain, constant-time methods (:meth:`MqttBridge.publish_beat` and
friends) that only put into a bounded :class:`~improv.io.mqtt.outbox.Outbox`; the
bridge's own task encodes and publishes, and survives a slow, absent or restarting
broker: it reconnects with capped, jittered backoff and re-announces ``status`` and the
retained ``state`` once back. ``docs/mqtt.md`` documents the topics.

Everything here runs on the agent's event loop thread: call the ``publish_*`` methods
from it, never from another thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import secrets
import time
from argparse import Namespace
from collections.abc import Callable, Collection
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self, cast

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from improv import __version__
from improv.io.control import ControlHandler
from improv.io.control_desk import ControlDesk
from improv.io.mqtt.outbox import Kind, Outbox, Outgoing
from improv.io.mqtt.payloads import (
    JamState,
    Role,
    TurnMetrics,
    encode,
    envelope,
    metrics_body,
    phrase_body,
)
from improv.io.mqtt.settings import MqttSettings, settings_from_args
from improv.music.notes import Phrase

__all__ = ["BridgeStats", "MqttBridge", "MqttSettings", "bridge_from_args"]

log = logging.getLogger(__name__)

MAX_INCOMING: Final = 1024
"""Control requests waiting to be read; more are dropped and counted (a flood, not a tech)."""
MAX_PACKET_BYTES: Final = 16384
"""Largest packet the broker may send us (MQTT 5): bigger requests never reach memory."""
DROP_LOG_INTERVAL_S: Final = 5.0
IN_FLIGHT: Final = 16
"""Publishes awaiting acknowledgement at once, so that a link with a long round trip
still keeps up; paho's own window (20) is larger."""


@dataclass(frozen=True, slots=True)
class BridgeStats:
    """What the bridge did so far; ``dropped`` counts per kind of message (``control``:
    requests discarded unread because a flood filled the incoming queue)."""

    connected: bool
    connections: int
    published: int
    dropped: dict[str, int]
    coalesced: int
    waiting: int
    control_applied: int
    control_refused: int


class _Incoming(asyncio.Queue[aiomqtt.Message]):
    """aiomqtt's bounded queue of received messages, counting what a full queue discards."""

    def __init__(self, maxsize: int, *, on_drop: Callable[[], None]) -> None:
        super().__init__(maxsize)
        self._on_drop = on_drop

    def put_nowait(self, item: aiomqtt.Message) -> None:
        if self.full():
            self._on_drop()
        super().put_nowait(item)


class _DropLog:
    """Logs drops at most every few seconds, with counts, so a dead broker cannot flood
    the log: a warning while connected (the broker is slow, or a flood came in), for
    information while away (dropping beats is then the plan, and was announced)."""

    def __init__(self, counts: Callable[[], dict[str, int]], online: Callable[[], bool]) -> None:
        self._counts = counts
        self._online = online
        self._reported: dict[str, int] = {}
        self._next = 0.0

    def check(self, now: float, *, force: bool = False) -> None:
        if now < self._next and not force:
            return
        counts = self._counts()
        new = {name: n - self._reported.get(name, 0) for name, n in counts.items()}
        if any(new.values()):
            text = ", ".join(f"{n} {name}" for name, n in new.items() if n)
            if self._online():
                log.warning("mqtt: dropped %s message(s): broker slow, or a flood", text)
            else:
                log.info("mqtt: dropped %s message(s) while the broker is away", text)
            self._reported = counts
            self._next = now + DROP_LOG_INTERVAL_S


class MqttBridge:
    """Publishes a jam to an MQTT broker and hands control requests to the agent.

    Use as an async context manager around the jam (or :meth:`start` and
    :meth:`close`). Entering starts the bridge's task and returns at once, broker or
    not; leaving flushes what waits (briefly), publishes ``status`` offline and
    disconnects cleanly.
    """

    def __init__(
        self,
        settings: MqttSettings,
        *,
        on_control: ControlHandler | None = None,
        forms: Collection[str] | None = None,
    ) -> None:
        self.settings = settings
        self.prefix = settings.topic_prefix
        self._desk = ControlDesk(on_control=on_control, forms=forms, edge="mqtt")
        self._connected = asyncio.Event()
        self._tls = settings.tls_context()
        self._outbox = Outbox(settings.limits)
        self._drops = _DropLog(self._dropped, self._connected.is_set)
        self._state: Outgoing | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._connections = 0
        self._warned = False  # about being without a broker, since the last connection
        self._published = 0
        self._control_dropped = 0
        self._bad_kinds: set[Kind] = set()
        self._client_id = f"improv-{settings.agent_id}-{secrets.token_hex(4)}"

    @property
    def on_control(self) -> ControlHandler | None:
        """The agent's handler of validated changes (set by ``mqtt_observer.attach``)."""
        return self._desk.on_control

    @on_control.setter
    def on_control(self, handler: ControlHandler | None) -> None:
        self._desk.on_control = handler

    # --- the agent's side: constant time, never waits ------------------------------

    def publish_state(self, state: JamState) -> None:
        """The jam's state changed (or a bar began): retained, only the latest is kept."""
        self._state = self._make(Kind.STATE, "state", dict(state), qos=1, retain=True)
        self._outbox.put(self._state)

    def publish_beat(
        self,
        bar: int,
        beat: float,
        chord: str | None,
        *,
        beats_per_bar: float | None = None,
        tempo: float | None = None,
    ) -> None:
        """A beat is falling now."""
        body: dict[str, Any] = {"bar": bar, "beat": beat, "chord": chord}
        if beats_per_bar is not None:
            body["beats_per_bar"] = beats_per_bar
        if tempo is not None:
            body["tempo"] = tempo
        self._outbox.put(self._make(Kind.BEAT, "beat", body))

    def publish_phrase(self, role: Role, phrase: Phrase, turn: int | None = None) -> None:
        """A phrase (the performer's call or the agent's answer) has finished."""
        self._outbox.put(self._make(Kind.PHRASE, f"phrase/{role}", (role, phrase, turn), qos=1))

    def publish_metrics(self, metrics: TurnMetrics) -> None:
        """A turn has finished: its timing figures."""
        self._outbox.put(self._make(Kind.METRICS, "metrics", dict(metrics), qos=1))

    def _make(
        self, kind: Kind, topic: str, body: Any, *, qos: int = 0, retain: bool = False
    ) -> Outgoing:
        t = time.monotonic()
        self._drops.check(t)
        return Outgoing(kind, topic, body, t, time.time(), qos, retain)

    # --- observation ---------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout: float | None = None) -> bool:
        """Wait until the broker is there (for examples and tests; the jam never waits)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        return self.connected

    async def flush(self, timeout: float) -> bool:
        """Wait until every waiting message is out (or ``timeout``); True when empty."""
        deadline = time.monotonic() + timeout
        while self._outbox and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return not self._outbox

    def _dropped(self) -> dict[str, int]:
        dropped = {kind.value: n for kind, n in self._outbox.counts.dropped.items()}
        dropped["control"] = self._control_dropped
        return dropped

    @property
    def stats(self) -> BridgeStats:
        counts = self._outbox.counts
        return BridgeStats(
            connected=self.connected,
            connections=self._connections,
            published=self._published,
            dropped=self._dropped(),
            coalesced=counts.coalesced,
            waiting=len(self._outbox),
            control_applied=self._desk.applied,
            control_refused=self._desk.refused,
        )

    def topic(self, name: str) -> str:
        return self.prefix + name

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Start the bridge's task; returns at once, broker or not."""
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._run(), name="mqtt-bridge")

    async def close(self) -> None:
        """Flush what waits (briefly), publish ``status`` offline and disconnect."""
        self._closing = True
        self._outbox.ready.set()
        task, self._task = self._task, None
        if task is None:
            return
        if not self.connected:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, self.settings.close_timeout_s)
        self._connected.clear()
        self._outbox.online = False
        self._drops.check(time.monotonic(), force=True)

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

    async def _run(self) -> None:
        """Connect, serve, and on any loss wait a capped, jittered backoff and retry."""
        delay = self.settings.reconnect_min_s
        while not self._closing:
            try:
                async with self._client() as client:
                    delay = self.settings.reconnect_min_s
                    await self._serve(client)
            except aiomqtt.MqttError as exc:
                where = f"{self.settings.host}:{self.settings.port}"
                self._lost(f"broker {where} unreachable or lost ({exc})")
            except Exception:
                # A bug here must not stop the music; say so loudly and start over.
                log.exception("mqtt: bridge failed; reconnecting")
                self._lost("bridge error")
            if self._closing:
                break
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, self.settings.reconnect_max_s)

    def _client(self) -> aiomqtt.Client:
        settings = self.settings
        will = aiomqtt.Will(
            self.topic("status"), self._status("offline", "lost"), qos=1, retain=True
        )
        properties = Properties(PacketTypes.CONNECT)
        properties.MaximumPacketSize = MAX_PACKET_BYTES
        client_log = logging.getLogger(f"{__name__}.client")
        client_log.setLevel(logging.ERROR)  # paho's chatter; our own log says what matters
        return aiomqtt.Client(
            settings.host,
            settings.port,
            username=settings.username,
            password=settings.password,
            identifier=self._client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            properties=properties,
            will=will,
            keepalive=settings.keepalive_s,
            timeout=settings.timeout_s,
            tls_context=self._tls,
            max_queued_incoming_messages=MAX_INCOMING,
            queue_type=cast(
                "type[asyncio.Queue[aiomqtt.Message]]",
                functools.partial(_Incoming, on_drop=self._incoming_dropped),
            ),
            logger=client_log,
        )

    def _incoming_dropped(self) -> None:
        self._control_dropped += 1
        self._drops.check(time.monotonic())

    def _status(self, status: str, reason: str) -> bytes:
        body = {"status": status, "reason": reason, "agent": self.settings.agent_id}
        body["version"] = __version__
        return encode(envelope(time.monotonic(), time.time(), body))

    async def _serve(self, client: aiomqtt.Client) -> None:
        """One connection: announce, then publish and receive until it ends."""
        await client.publish(
            self.topic("status"), self._status("online", "connected"), qos=1, retain=True
        )
        await client.subscribe(self.topic("control/set"), qos=1)
        if self._state is not None:
            self._outbox.requeue(self._state)  # a restarted broker forgot the retained one
        self._drops.check(time.monotonic(), force=True)  # what went while away: info
        self._connections += 1
        self._warned = False
        self._outbox.online = True
        self._connected.set()
        log.info(
            "mqtt: connected to %s:%d as %s", self.settings.host, self.settings.port, self.prefix
        )
        drain = asyncio.create_task(self._drain(client), name="mqtt-drain")
        receive = asyncio.create_task(self._receive(client), name="mqtt-receive")
        try:
            done, _ = await asyncio.wait((drain, receive), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (drain, receive):
                task.cancel()
            await asyncio.gather(drain, receive, return_exceptions=True)
        for task in done:
            task.result()  # re-raise what ended the connection

    def _lost(self, why: str) -> None:
        self._drops.check(time.monotonic(), force=True)  # what went while connected: warning
        if not self._warned:
            log.warning("mqtt: %s; the music goes on, reconnecting", why)
            self._warned = True
        else:
            log.debug("mqtt: %s", why)
        self._connected.clear()
        self._outbox.online = False
        self._outbox.drop_beats()

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Publish what the outbox holds, up to :data:`IN_FLIGHT` awaiting the broker's
        acknowledgement at once; on closing, say goodbye once all is out."""
        outbox = self._outbox
        flying: dict[asyncio.Task[None], Outgoing] = {}

        def landed(_: asyncio.Task[None]) -> None:
            outbox.ready.set()

        try:
            while True:
                self._settle(flying)
                item = outbox.pop() if len(flying) < IN_FLIGHT else None
                if item is None:
                    self._drops.check(time.monotonic())
                    if self._closing and not flying and not outbox:
                        offline = self._status("offline", "shutdown")
                        await client.publish(self.topic("status"), offline, qos=1, retain=True)
                        return
                    outbox.ready.clear()
                    await outbox.ready.wait()
                    continue
                try:
                    payload = self._encode(item)
                except (TypeError, ValueError) as exc:
                    self._unencodable(item, exc)
                    continue
                task = asyncio.create_task(
                    client.publish(
                        self.topic(item.topic), payload, qos=item.qos, retain=item.retain
                    )
                )
                task.add_done_callback(landed)
                flying[task] = item
        finally:
            for task, item in flying.items():
                task.cancel()
                outbox.requeue(item)  # not acknowledged: it goes again on the next connection

    def _settle(self, flying: dict[asyncio.Task[None], Outgoing]) -> None:
        """Count acknowledged publishes; a failed one ends the connection (and is retried)."""
        for task in [task for task in flying if task.done()]:
            item = flying.pop(task)
            error = None if task.cancelled() else task.exception()
            if task.cancelled() or error is not None:
                self._outbox.requeue(item)
                raise error or aiomqtt.MqttError("publish cancelled")
            self._published += 1

    def _unencodable(self, item: Outgoing, exc: Exception) -> None:
        """A bug upstream (a value JSON cannot hold): said once per kind, then counted."""
        self._outbox.counts.dropped[item.kind] += 1
        if item.kind not in self._bad_kinds:
            self._bad_kinds.add(item.kind)
            log.error(
                "mqtt: cannot encode a %s message (%s); such messages are dropped", item.kind, exc
            )

    @staticmethod
    def _encode(item: Outgoing) -> bytes:
        body = item.body
        if item.kind is Kind.PHRASE:
            body = phrase_body(*body)
        elif item.kind is Kind.METRICS:
            body = metrics_body(body)
        return encode(envelope(item.t, item.ts, body))

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            if isinstance(payload, str):
                payload = payload.encode()
            elif not isinstance(payload, bytes | bytearray):
                payload = b""
            self.handle_control(bytes(payload), retained=message.retain)

    def handle_control(self, payload: bytes, *, retained: bool = False) -> None:
        """Validate one ``control/set`` payload, hand it to the agent, queue the answer
        (the one control path, :class:`~improv.io.control_desk.ControlDesk`)."""
        if retained:
            self._answer(self._desk.refusal(None, payload, "retained control requests are ignored"))
        else:
            self._desk.handle(payload, self._answer)

    def _answer(self, result: dict[str, Any]) -> None:
        self._outbox.put(self._make(Kind.RESULT, "control/result", result, qos=1))


# --- command line ----------------------------------------------------------------------


def bridge_from_args(
    args: Namespace,
    *,
    on_control: ControlHandler | None = None,
    forms: Collection[str] | None = None,
) -> MqttBridge | None:
    """The bridge for ``improv jam``'s options, or None when ``--mqtt`` is not given."""
    settings = settings_from_args(args)
    if settings is None:
        return None
    return MqttBridge(settings, on_control=on_control, forms=forms)
