"""``--mqtt``: listen to the agents' ``beat`` and ``phrase`` topics, stamping each receipt.

Receipt times are taken on the harness's event loop when a message is handed over,
on the same monotonic clock as the MIDI ports, so a message can be set against the
note or beat it reports on the wire (:func:`improv.bench.measure.mqtt_delays`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from typing import Any

from improv.errors import UsageError
from improv.timebase import now

log = logging.getLogger(__name__)

Received = tuple[float, str, dict[str, Any]]


class MqttWatcher:
    """Subscribes to ``<prefix>beat`` and ``<prefix>phrase/+`` for every prefix."""

    def __init__(self, url: str, prefixes: Sequence[str]) -> None:
        from improv.io.mqtt import MqttSettings

        try:
            self.settings = MqttSettings.from_url(url)
        except ValueError as exc:
            raise UsageError(f"--mqtt: {exc}") from None
        self.prefixes = [p if p.endswith("/") else p + "/" for p in prefixes]
        self.received: list[Received] = []
        self.subscribed = asyncio.Event()
        self.error: str | None = None

    def for_prefix(self, prefix: str) -> list[Received]:
        """Messages under one prefix (``+`` matches one level)."""
        parts = prefix.rstrip("/").split("/")
        return [m for m in self.received if _matches(parts, m[1].split("/"))]

    async def run(self) -> None:
        """Receive until cancelled; a broker that is not there is logged, not fatal."""
        import aiomqtt

        try:
            async with aiomqtt.Client(
                self.settings.host,
                self.settings.port,
                username=self.settings.username,
                password=self.settings.password,
                tls_context=self.settings.tls_context(),
                timeout=self.settings.timeout_s,
            ) as client:
                for prefix in self.prefixes:
                    await client.subscribe(prefix + "beat")
                    await client.subscribe(prefix + "phrase/+")
                self.subscribed.set()
                async for message in client.messages:
                    t = now()
                    payload: Any = None
                    with contextlib.suppress(ValueError, TypeError):
                        payload = json.loads(bytes(message.payload or b""))
                    if isinstance(payload, dict):
                        self.received.append((t, message.topic.value, payload))
        except aiomqtt.MqttError as exc:
            self.error = str(exc)
            where = f"{self.settings.host}:{self.settings.port}"
            log.warning("--mqtt: no broker at %s: %s", where, exc)
            self.subscribed.set()


def _matches(pattern: list[str], topic: list[str]) -> bool:
    if len(topic) < len(pattern):
        return False
    return all(p in ("+", t) for p, t in zip(pattern, topic, strict=False))
