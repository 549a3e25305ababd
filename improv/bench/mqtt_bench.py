"""Does MQTT cost the music anything? And how quick is the broker?

``python -m improv.bench.mqtt_bench`` (or ``improv bench mqtt``) measures, on a private
mosquitto on loopback (or ``--broker URL``):

- the jam's MIDI send error (send time minus scheduled time) with and without the MQTT
  bridge, runs alternating so that the machine's drift hits both alike. With MQTT every
  topic is on, a subscriber in another process takes everything, and ``--extra-hz``
  more messages a second are published on top of the jam's own (full rate and then
  some);
- the broker round trip: a ``beat`` handed to the bridge until a subscriber has it.

The jam is the real agent answering the simulated performer through the in-process
transport, as in ``improv jam --demo``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from improv.bench.mosquitto import Mosquitto
from improv.io.mqtt.settings import MqttSettings

if TYPE_CHECKING:
    from improv.io.mqtt import MqttBridge

log = logging.getLogger(__name__)

SUBSCRIBER = """
import asyncio, sys, aiomqtt
async def main() -> None:
    count = 0
    async with aiomqtt.Client(sys.argv[1], int(sys.argv[2])) as client:
        await client.subscribe(sys.argv[3] + "#", qos=1)
        print("ready", flush=True)
        reader = asyncio.create_task(asyncio.to_thread(sys.stdin.readline))
        messages = aiter(client.messages)
        while True:
            got = asyncio.ensure_future(anext(messages))
            done, _ = await asyncio.wait({got, reader}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                got.cancel()
                break
            count += 1
    print(count, flush=True)
asyncio.run(main())
"""


@contextlib.contextmanager
def subscriber(settings: MqttSettings) -> Iterator[subprocess.Popen[str]]:
    """A subscriber to everything under the prefix, in a process of its own (as a lighting
    desk would be); writing a line to its stdin makes it print its count and exit."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SUBSCRIBER,
            settings.host,
            str(settings.port),
            settings.topic_prefix,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the benchmark's subscriber did not start")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def received(proc: subprocess.Popen[str]) -> int:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    return int(proc.stdout.readline())


async def jam_once(
    *,
    tempo: float,
    choruses: int,
    model: str,
    settings: MqttSettings | None,
    extra_hz: float,
    desk: bool = True,
) -> dict[str, Any]:
    """One demo jam; with ``settings``, published at full rate (to a subscriber process
    on this machine unless not ``desk``)."""
    import numpy as np

    from improv.engine.config import JamConfig
    from improv.engine.session import Ports, Session, generated_calls
    from improv.io.midi.loopback import RecordingOutput, loopback
    from improv.io.mqtt import MqttBridge

    config = JamConfig(tempo=tempo, choruses=choruses, model=model, count_in=0, seed=1)
    performer_out, agent_in = loopback("performer")
    ports = Ports(agent_in, RecordingOutput(), performer_out)
    result: dict[str, Any] = {"mqtt": settings is not None}
    async with contextlib.AsyncExitStack() as stack:
        bridge: MqttBridge | None = None
        consumer: subprocess.Popen[str] | None = None
        if settings is not None:
            if desk:
                consumer = stack.enter_context(subscriber(settings))
            bridge = await stack.enter_async_context(MqttBridge(settings))
        session = Session(
            config,
            calls=generated_calls(config),
            ports=ports,
            bridge=bridge,
            own_bridge=False,
            handle_signals=False,
        )
        agent = await session.start()
        if settings is not None and bridge is not None and not await bridge.wait_connected(10):
            raise RuntimeError(f"no broker at {settings.host}:{settings.port}")
        tasks = []
        if bridge is not None and extra_hz > 0:
            tasks.append(asyncio.create_task(_extra(bridge, extra_hz), name="extra"))
        started = time.perf_counter()
        try:
            summary = await session.run()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        seconds = time.perf_counter() - started
        if bridge is not None:
            await bridge.flush(5.0)
            stats = bridge.stats
            result.update(
                published=stats.published,
                published_per_s=round(stats.published / seconds, 1),
                dropped=sum(stats.dropped.values()),
            )
        if consumer is not None:
            await asyncio.sleep(0.5)  # the subscriber's last messages
            result["received"] = received(consumer)
    errors = agent.scheduler.send_errors() * 1000.0
    result["errors"] = errors
    result.update(
        notes_out=summary.notes_out,
        messages_sent=len(errors),
        send_error_ms_p50=round(float(np.percentile(errors, 50)), 4),
        send_error_ms_p99=round(float(np.percentile(errors, 99)), 4),
        send_error_ms_max=round(float(errors.max()), 4),
        answer_start_error_ms_p99=summary.answer_start_error_ms_p99,
        deadline_misses=summary.deadline_misses,
        fallback_notes=summary.fallback_notes,
        generation_headroom_ms_min=summary.generation_headroom_ms_min,
    )
    return result


async def _extra(bridge: MqttBridge, hz: float) -> None:
    """More beats than any jam makes, to load the bridge beyond its real rate."""
    n = 0
    due = time.monotonic()
    while True:
        n += 1
        bridge.publish_beat(n, 0.0, "X7")
        due += 1.0 / hz
        await asyncio.sleep(max(0.0, due - time.monotonic()))


async def round_trip(settings: MqttSettings, n: int, gap_s: float) -> dict[str, Any]:
    """``publish_beat`` on the bridge -> a subscriber on the same machine has it (ms)."""
    import aiomqtt
    import numpy as np

    from improv.io.mqtt import MqttBridge

    delays: list[float] = []
    arrived = asyncio.Event()
    async with aiomqtt.Client(settings.host, settings.port) as client:
        await client.subscribe(settings.topic_prefix + "beat", qos=0)

        async def listen() -> None:
            async for message in client.messages:
                sent = json.loads(message.payload)["t"]
                delays.append((time.monotonic() - sent) * 1000.0)
                arrived.set()

        listener = asyncio.create_task(listen())
        async with MqttBridge(settings) as bridge:
            if not await bridge.wait_connected(10):
                raise RuntimeError(f"no broker at {settings.host}:{settings.port}")
            for i in range(n):
                arrived.clear()
                bridge.publish_beat(i, 0.0, None)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), 1.0)
                await asyncio.sleep(gap_s)
        listener.cancel()
    values = np.array(delays)
    return {
        "round_trip_messages": n,
        "round_trip_received": len(delays),
        "round_trip_ms_p50": round(float(np.percentile(values, 50)), 4),
        "round_trip_ms_p99": round(float(np.percentile(values, 99)), 4),
        "round_trip_ms_max": round(float(values.max()), 4),
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        if args.broker:
            settings = MqttSettings.from_url(args.broker, agent_id="bench")
        else:
            broker = stack.enter_context(Mosquitto())
            settings = MqttSettings(host=broker.host, port=broker.port, agent_id="bench")
        runs = []
        for index in range(2 * args.repeat):
            with_mqtt = index % 2 == 1
            log.info(
                "run %d of %d: %s MQTT",
                index + 1,
                2 * args.repeat,
                "with" if with_mqtt else "without",
            )
            runs.append(
                await jam_once(
                    tempo=args.tempo,
                    choruses=args.choruses,
                    model=args.model,
                    settings=settings if with_mqtt else None,
                    extra_hz=args.extra_hz,
                    desk=args.subscriber,
                )
            )
        trip = await round_trip(settings, args.round_trips, gap_s=0.002)
    return {
        "tempo": args.tempo,
        "choruses": args.choruses,
        "model": args.model,
        "extra_hz": args.extra_hz,
        "subscriber": args.subscriber,
        **pooled_send_errors([r for r in runs if not r["mqtt"]], "without_mqtt"),
        **pooled_send_errors([r for r in runs if r["mqtt"]], "with_mqtt"),
        **trip,
        "runs": [{k: v for k, v in r.items() if k != "errors"} for r in runs],
    }


def pooled_send_errors(runs: list[dict[str, Any]], suffix: str) -> dict[str, Any]:
    """Send error over every message of the runs of one kind, and their deadline misses."""
    import numpy as np

    errors = np.concatenate([r["errors"] for r in runs])
    return {
        f"send_error_ms_p50_{suffix}": round(float(np.percentile(errors, 50)), 4),
        f"send_error_ms_p99_{suffix}": round(float(np.percentile(errors, 99)), 4),
        f"send_error_ms_max_{suffix}": round(float(errors.max()), 4),
        f"runs_send_error_ms_p99_{suffix}": [r["send_error_ms_p99"] for r in runs],
        f"deadline_misses_{suffix}": sum(r["deadline_misses"] for r in runs),
        f"messages_{suffix}": int(errors.size),
    }


def report(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"improv bench mqtt: {result['model']}, {result['tempo']:g} BPM, "
        f"{result['choruses']} choruses a run, +{result['extra_hz']:g} msg/s with MQTT, "
        f"subscriber {'on' if result['subscriber'] else 'off'}"
    )
    for column in (
        "run",
        "MQTT",
        "send p50 ms",
        "send p99 ms",
        "send max ms",
        "misses",
        "published/s",
        "dropped",
        "received",
    ):
        table.add_column(column, justify="right")
    for index, run in enumerate(result["runs"], 1):
        table.add_row(
            str(index),
            "on" if run["mqtt"] else "off",
            f"{run['send_error_ms_p50']:.4f}",
            f"{run['send_error_ms_p99']:.4f}",
            f"{run['send_error_ms_max']:.4f}",
            str(run["deadline_misses"]),
            str(run.get("published_per_s", "")),
            str(run.get("dropped", "")),
            str(run.get("received", "")),
        )
    console = Console()
    console.print(table)
    console.print(
        f"send_error_ms_p99: {result['send_error_ms_p99_without_mqtt']:.4f} without MQTT, "
        f"{result['send_error_ms_p99_with_mqtt']:.4f} with (over every message of the runs)\n"
        f"broker round trip (publish_beat -> subscriber, loopback): "
        f"p50 {result['round_trip_ms_p50']:.3f} ms, p99 {result['round_trip_ms_p99']:.3f} ms, "
        f"max {result['round_trip_ms_max']:.3f} ms "
        f"({result['round_trip_received']}/{result['round_trip_messages']})"
    )


def run(args: argparse.Namespace) -> int:
    from improv.errors import UsageError

    if args.repeat < 1 or args.choruses < 1 or args.round_trips < 10:
        raise UsageError("--repeat and --choruses must be at least 1, --round-trips 10")
    try:
        result = asyncio.run(bench(args))
    except FileNotFoundError as exc:  # no mosquitto
        raise UsageError(f"{exc}; or give --broker URL") from None
    if args.json:
        print(json.dumps(result))
    else:
        report(result)
    return 0
