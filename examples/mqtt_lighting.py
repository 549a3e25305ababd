"""A tiny lighting desk: follows an improv agent's ``beat`` and ``state`` over MQTT and
turns them into colours on the console (one lamp per beat of the bar).

    python examples/mqtt_lighting.py mqtt://localhost --prefix improv/stage-left/
    python examples/mqtt_lighting.py --demo       # a private broker and a demo jam

The turn picks the colour (the performer's call: blue, the agent's answer: amber, idle:
grey); each beat lights its lamp, the downbeat brightest, and the light fades until the
next beat. A real desk would send the same values out as DMX or OSC.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
from rich.live import Live
from rich.text import Text

COLOURS = {"listening": (40, 110, 255), "answering": (255, 150, 20), "idle": (90, 90, 90)}
FADE_S = 0.6


class Desk:
    """What the lights show now, from the latest beat and state."""

    def __init__(self) -> None:
        self.turn = "idle"
        self.beats_per_bar = 4
        self.beat = -1.0
        self.bar = 0
        self.chord = ""
        self.tempo = 0.0
        self.flash_at = 0.0
        self.accent = 0.0
        self.online = False

    def update(self, topic: str, msg: dict[str, Any]) -> None:
        if topic == "state":
            self.turn, self.tempo = msg["turn"], msg["tempo"]
            self.beats_per_bar = max(1, round(float(msg["metre"].split("/")[0])))
        elif topic == "beat":
            self.beat, self.bar, self.chord = msg["beat"], msg["bar"], msg["chord"] or ""
            self.flash_at = time.monotonic()
            self.accent = 1.0 if msg["beat"] == 0 else 0.6
        elif topic == "status":
            self.online = msg["status"] == "online"

    def render(self) -> Text:
        fade = max(0.0, 1.0 - (time.monotonic() - self.flash_at) / FADE_S)
        r, g, b = COLOURS.get(self.turn, COLOURS["idle"])
        text = Text()
        for lamp in range(self.beats_per_bar):
            level = 0.15 + 0.85 * self.accent * fade if lamp == int(self.beat) else 0.08
            colour = f"rgb({int(r * level)},{int(g * level)},{int(b * level)})"
            text.append("  ████████  ", style=colour)
        status = "" if self.online else "  (agent offline)"
        text.append(
            f"\n  {self.turn:<9} bar {self.bar:>3}  {self.chord:<8} {self.tempo:g} BPM{status}",
            style="bold",
        )
        return text


async def run(url: str, prefix: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise SystemExit(f"not an MQTT URL: {url}")
    port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    prefix = prefix.rstrip("/") + "/"
    desk = Desk()
    with Live(desk.render(), refresh_per_second=30) as live:

        async def repaint() -> None:
            while True:
                live.update(desk.render())
                await asyncio.sleep(1 / 30)

        painter = asyncio.create_task(repaint())
        try:
            while True:
                try:
                    async with aiomqtt.Client(
                        parts.hostname,
                        port,
                        username=parts.username,
                        password=parts.password,
                        tls_params=aiomqtt.TLSParameters() if parts.scheme == "mqtts" else None,
                    ) as client:
                        for topic in ("beat", "state", "status"):
                            await client.subscribe(prefix + topic)
                        async for message in client.messages:
                            with contextlib.suppress(ValueError, KeyError, TypeError):
                                topic = message.topic.value.removeprefix(prefix)
                                desk.update(topic, json.loads(message.payload))
                except aiomqtt.MqttError:
                    desk.online = False
                    await asyncio.sleep(1.0)
        finally:
            painter.cancel()


async def demo() -> None:
    """A private broker and ``improv jam --demo`` publishing to it, followed here."""
    from improv.bench.mosquitto import follow_demo_jam

    await follow_demo_jam(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="mqtt://localhost", help="broker URL")
    parser.add_argument("--prefix", default="improv/demo/", help="the agent's topic prefix")
    parser.add_argument("--demo", action="store_true", help="private broker + demo jam")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(demo() if args.demo else run(args.url, args.prefix))


if __name__ == "__main__":
    main()
