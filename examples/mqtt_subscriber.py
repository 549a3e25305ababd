"""Follow a jam over MQTT: prints every message of one (or every) improv agent as it happens.

    python examples/mqtt_subscriber.py mqtt://localhost        # every agent on a broker
    python examples/mqtt_subscriber.py mqtt://host --prefix improv/stage-left/
    python examples/mqtt_subscriber.py --demo                  # a private broker and a demo jam

With ``--demo`` it starts its own mosquitto on a free port and ``improv jam --demo
--mqtt ...`` against it, so it runs on a machine with no MIDI and no broker set up.
Only aiomqtt and rich are needed to follow a real jam; the topics are in docs/mqtt.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
from rich.console import Console

console = Console(highlight=False)
NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")


def pitch(p: int) -> str:
    return f"{NAMES[p % 12]}{p // 12 - 1}"


def show(agent: str, topic: str, msg: dict[str, Any]) -> None:
    """One line per message; what matters of each payload, coloured by kind."""
    head = f"[dim]{agent}[/] "
    if topic == "status":
        colour = "green" if msg["status"] == "online" else "red"
        console.print(f"{head}[{colour}]{msg['status']}[/] ({msg['reason']}, v{msg['version']})")
    elif topic == "state":
        console.print(
            f"{head}[cyan]state[/] {msg['turn']:<9} {msg['mode']} {msg['tempo']:g} BPM "
            f"{msg['key']} {msg['form']} bar {msg['bar']} chord {msg['chord'] or '-'} "
            f"model {msg['model']} T={msg['temperature']:g}"
        )
    elif topic == "beat":
        mark = "[bold]|[/]" if msg["beat"] == 0 else "."
        console.print(
            f"{head}{mark} bar {msg['bar']:>3} beat {msg['beat']:g}  {msg['chord'] or ''}"
        )
    elif topic.startswith("phrase/"):
        notes = " ".join(f"{pitch(n['pitch'])}@{n['bar']}:{n['beat']:g}" for n in msg["notes"])
        colour = "yellow" if msg["role"] == "answer" else "magenta"
        console.print(
            f"{head}[{colour}]{msg['role']:<6}[/] turn {msg['turn']}: {notes or '(silence)'}"
        )
    elif topic == "metrics":
        console.print(
            f"{head}[blue]metrics[/] turn {msg['turn']}: {msg['notes_out']} notes, send p99 "
            f"{fmt(msg['send_error_ms_p99'])} ms, start {fmt(msg['answer_start_error_ms'])} ms, "
            f"headroom {fmt(msg['generation_headroom_ms_min'])} ms, "
            f"misses {msg['deadline_misses']}, fallback {msg['fallback_notes']}"
        )
    elif topic == "control/result":
        verdict = "[green]ok[/]" if msg["ok"] else f"[red]refused[/]: {msg['error']}"
        console.print(f"{head}control {msg['id']!r} {verdict} {msg.get('changes', '')}")


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


async def follow(url: str, prefix: str | None) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise SystemExit(f"not an MQTT URL: {url}")
    port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    pattern = (prefix.rstrip("/") + "/#") if prefix else "improv/#"
    while True:  # a broker restart is not the end of the show
        try:
            async with aiomqtt.Client(
                parts.hostname,
                port,
                username=parts.username,
                password=parts.password,
                tls_params=aiomqtt.TLSParameters() if parts.scheme == "mqtts" else None,
            ) as client:
                await client.subscribe(pattern, qos=1)
                console.print(f"[dim]following {pattern} on {parts.hostname}:{port}[/]")
                async for message in client.messages:
                    handle(message.topic.value, message.payload, prefix)
        except aiomqtt.MqttError as exc:
            console.print(f"[red]broker: {exc}; retrying in 1 s[/]")
            await asyncio.sleep(1.0)


def handle(topic: str, payload: Any, prefix: str | None) -> None:
    if prefix:
        agent, name = prefix.rstrip("/"), topic.removeprefix(prefix.rstrip("/") + "/")
    else:  # improv/<agent>/<topic...>
        _, agent, name = topic.split("/", 2)
    if name == "control/set":
        return
    try:
        show(agent, name, json.loads(payload))
    except (ValueError, KeyError, TypeError) as exc:
        console.print(f"[red]{topic}: unreadable payload ({exc})[/]")


async def demo() -> None:
    """A private broker and ``improv jam --demo`` publishing to it, followed here."""
    from improv.bench.mosquitto import follow_demo_jam

    await follow_demo_jam(follow)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="mqtt://localhost", help="broker URL")
    parser.add_argument("--prefix", help="follow one agent: its topic prefix")
    parser.add_argument("--demo", action="store_true", help="private broker + demo jam")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(demo() if args.demo else follow(args.url, args.prefix))


if __name__ == "__main__":
    main()
