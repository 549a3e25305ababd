"""Does the live web page cost the music anything?

``python -m improv.bench.web_bench`` (or ``improv bench web``) plays demo jams one after
the other in one process, alternating without the page and with it: the server running
and ``--clients`` pages attached (real headless Chromium pages drawing the roll when
``/usr/bin/chromium`` and playwright are there, else plain websocket clients in a
process of their own), and compares the jam's MIDI send error (send time minus
scheduled time). The jam is the real agent answering the simulated performer, its notes
sent by the sender process of ``improv jam --demo`` (``--sender thread``: the in-process
sending thread of the tests instead, which shares this process with the page's server).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from improv.engine.agent import JamObserver

if TYPE_CHECKING:
    from improv.engine.agent import Agent

from improv.bench.mqtt_bench import pooled_send_errors

log = logging.getLogger(__name__)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
WS_CLIENTS = """
import asyncio, sys, aiohttp
async def client(url, counts, i):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            async for message in ws:
                counts[i] += 1
async def main():
    n = int(sys.argv[2])
    counts = [0] * n
    tasks = [asyncio.create_task(client(sys.argv[1], counts, i)) for i in range(n)]
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    print(" ".join(map(str, counts)), flush=True)
    for task in tasks:
        task.cancel()
asyncio.run(main())
"""


class _Bars(JamObserver):
    def __init__(self) -> None:
        self.bar = -1
        self.changed = asyncio.Event()

    def on_beat(self, bar: int, beat: float, chord: str | None) -> None:
        self.bar = bar
        self.changed.set()


async def until_bar(agent: Agent, bar: int, running: asyncio.Task[Any]) -> None:
    """Wait until the jam reaches ``bar`` (or ends)."""
    bars = _Bars()
    agent.observers.append(bars)
    while bars.bar < bar and not running.done():
        bars.changed.clear()
        await asyncio.wait(
            [asyncio.ensure_future(bars.changed.wait()), running],
            timeout=5.0,
            return_when=asyncio.FIRST_COMPLETED,
        )
    if running.done():
        running.result()  # an error in the jam ends the benchmark with it


@contextlib.asynccontextmanager
async def browser_pages(url: str, n: int) -> AsyncIterator[list[Any]]:
    """``n`` pages of one headless Chromium showing ``url``."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            pages = []
            for _ in range(n):
                context = await browser.new_context(viewport={"width": 1280, "height": 900})
                page = await context.new_page()
                await page.goto(url)
                pages.append(page)
            yield pages
        finally:
            await browser.close()


@contextlib.contextmanager
def ws_clients(url: str, n: int) -> Any:
    """``n`` websocket clients in a process of their own; yields a function that stops
    them and returns how many messages each received."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WS_CLIENTS, url, str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout
    try:
        if stdout.readline().strip() != "ready":
            raise RuntimeError("the benchmark's websocket clients did not start")

        def stop() -> list[int]:
            stdin.write("\n")
            stdin.flush()
            return [int(x) for x in stdout.readline().split()]

        yield stop
    finally:
        proc.kill()
        proc.wait()


async def jam_once(
    *, tempo: float, choruses: int, model: str, clients: int, kind: str, sender: str
) -> dict[str, Any]:
    """One demo jam; with ``clients`` > 0, its live page served to that many clients."""
    import numpy as np

    from improv.engine.config import JamConfig
    from improv.engine.session import Ports, Session, generated_calls
    from improv.io.midi.loopback import RecordingOutput, loopback
    from improv.io.web import WebServer, WebSettings
    from improv.output.sender import OutputSpec

    config = JamConfig(tempo=tempo, model=model, count_in=0, seed=1)
    performer_out, agent_in = loopback("performer")
    out = OutputSpec(discard=True) if sender == "process" else RecordingOutput()
    ports = Ports(agent_in, out, performer_out)
    result: dict[str, Any] = {"clients": clients, "kind": kind if clients else ""}
    async with contextlib.AsyncExitStack() as stack:
        server: WebServer | None = None
        pages: list[Any] = []
        stop_clients = None
        if clients:
            server = await stack.enter_async_context(WebServer(WebSettings()))
        session = Session(
            config,
            calls=generated_calls(config),
            ports=ports,
            web=server,
            handle_signals=False,
        )
        agent = await session.start()
        if server is not None:
            if kind == "browser":
                pages = await stack.enter_async_context(browser_pages(server.url, clients))
            else:
                stop_clients = stack.enter_context(ws_clients(server.url + "ws", clients))
            if not await server.wait_clients(clients, 30.0):
                raise RuntimeError(f"{clients} clients did not connect")
        started = time.perf_counter()
        running = asyncio.create_task(session.run(), name="jam")
        try:
            # the errors are read while the sender still runs (a sender process takes
            # its figures with it when it ends)
            await until_bar(agent, choruses * config.form_obj().n_bars, running)
            errors = agent.scheduler.send_errors() * 1000.0
            agent.request_stop("bench")
            summary = await running
        finally:
            if not running.done():
                agent.request_stop("bench")
                await asyncio.gather(running, return_exceptions=True)
        seconds = time.perf_counter() - started
        if server is not None:
            stats = server.stats
            result.update(
                sent=stats.sent,
                sent_per_s=round(stats.sent / seconds, 1),
                feed_dropped=stats.feed_dropped,
                client_dropped=stats.client_dropped,
            )
        if pages:
            result["received"] = [await p.evaluate("window.improv.messages") for p in pages]
        elif stop_clients is not None:
            result["received"] = stop_clients()
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
    )
    return result


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    kind = args.kind
    if kind == "auto":
        kind = "browser" if _have_browser() else "ws"
    runs = []
    for index in range(2 * args.repeat):
        clients = args.clients if index % 2 == 1 else 0
        log.info("run %d of %d: %d %s clients", index + 1, 2 * args.repeat, clients, kind)
        runs.append(
            await jam_once(
                tempo=args.tempo,
                choruses=args.choruses,
                model=args.model,
                clients=clients,
                kind=kind,
                sender=args.sender,
            )
        )
    return {
        "tempo": args.tempo,
        "choruses": args.choruses,
        "model": args.model,
        "sender": args.sender,
        "kind": kind,
        "clients": args.clients,
        **pooled_send_errors([r for r in runs if not r["clients"]], "without_page"),
        **pooled_send_errors([r for r in runs if r["clients"]], "with_page"),
        "runs": [{k: v for k, v in r.items() if k != "errors"} for r in runs],
    }


def _have_browser() -> bool:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return False
    return shutil.which(CHROMIUM) is not None


def report(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"improv bench web: {result['model']}, {result['tempo']:g} BPM, "
        f"{result['choruses']} choruses a run, {result['sender']} sender, "
        f"{result['clients']} {result['kind']} clients with the page"
    )
    for column in ("run", "page", "send p50 ms", "send p99 ms", "send max ms", "misses"):
        table.add_column(column, justify="right")
    for column in ("sent/s", "dropped", "received"):
        table.add_column(column, justify="right")
    for index, run in enumerate(result["runs"], 1):
        dropped = run.get("feed_dropped", 0) + run.get("client_dropped", 0)
        table.add_row(
            str(index),
            f"{run['clients']} {run['kind']}" if run["clients"] else "off",
            f"{run['send_error_ms_p50']:.4f}",
            f"{run['send_error_ms_p99']:.4f}",
            f"{run['send_error_ms_max']:.4f}",
            str(run["deadline_misses"]),
            str(run.get("sent_per_s", "")),
            str(dropped) if run["clients"] else "",
            " ".join(map(str, run.get("received", []))),
        )
    console = Console()
    console.print(table)
    console.print(
        f"send_error_ms p99: {result['send_error_ms_p99_without_page']:.4f} without the page, "
        f"{result['send_error_ms_p99_with_page']:.4f} with; max "
        f"{result['send_error_ms_max_without_page']:.4f} / "
        f"{result['send_error_ms_max_with_page']:.4f} (over every message of the runs)"
    )


def run(args: argparse.Namespace) -> int:
    from improv.errors import UsageError

    if args.repeat < 1 or args.choruses < 1 or not 1 <= args.clients <= 16:
        raise UsageError("--repeat and --choruses must be at least 1, --clients 1..16")
    if args.kind == "browser" and not _have_browser():
        raise UsageError(f"--kind browser needs playwright and {CHROMIUM}")
    result = asyncio.run(bench(args))
    if args.json:
        print(json.dumps(result))
    else:
        report(result)
    return 0


def main(argv: list[str] | None = None) -> int:
    from improv.commands.bench_web import add_arguments

    parser = argparse.ArgumentParser(
        prog="python -m improv.bench.web_bench", description=__doc__.splitlines()[0]
    )
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
