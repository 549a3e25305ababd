"""Fuzz benchmark: a million hostile MIDI messages through JACK into a running jam.

``python -m improv.bench.fuzz [--messages N] [--model markov] [--json]`` (a JACK server
must run: ``jackd -d dummy -r 48000 -p 64``). A jam (trade mode, two bars) listens on
a JACK input; a child process (so it never takes the jam's GIL) connects to that input
and sends ``N`` messages as fast as JACK takes them: random bytes, sysex cut short
(no 0xF7), and floods of valid note pairs. Then, on the jam's own clock, the
performer plays a normal call. The figures: the flood's rate, what the input dropped,
found malformed and coalesced, the jam's resident memory before, at the peak and
after, and whether the model itself (not a fallback) answered the call after the
flood, the first call it could. ``--rounds R`` floods R times, a call after each, and
gives the memory after each round: bounded input structures show as a growth that
stops (``rss_mb_by_round``), a leak as one that does not.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from improv.engine.agent import Agent, JamObserver
from improv.engine.config import JamConfig
from improv.engine.session import Ports, Session
from improv.engine.turns import slot_at
from improv.io import midi
from improv.music.notes import Note, Phrase
from improv.output.scheduler import Scheduler
from improv.output.sender import OutputSpec

log = logging.getLogger(__name__)

FLOOD_CLIENT = "improv-fuzz"


def packets(rng: random.Random) -> Iterator[list[int]]:
    """Endless hostile input, one rtmidi message at a time (at most 3 bytes, or sysex):
    runs of random bytes, of sysex cut short and of valid note pairs, in about equal
    shares of the messages."""
    while True:
        kind = rng.random()
        if kind < 0.33:  # random bytes: status, data, real-time, undefined, anything
            for _ in range(rng.randint(1, 400)):
                yield [rng.randrange(256) for _ in range(rng.randint(1, 3))]
        elif kind < 0.66:  # sysex cut short (no 0xF7)
            for _ in range(rng.randint(1, 400)):
                yield [0xF0, *(rng.randrange(128) for _ in range(rng.randint(0, 24)))]
        else:  # a flood of valid notes
            for _ in range(rng.randint(1, 200)):
                pitch = rng.randrange(128)
                yield [0x90, pitch, rng.randint(1, 127)]
                yield [0x80, pitch, 0]


def flood(port: str, count: int, seed: int) -> dict[str, float]:
    """The child's job: ``count`` messages into ``port``, paced by JACK's ring buffer."""
    out = midi.open_output(port, api="jack", client_name=FLOOD_CLIENT, wait_s=5.0)
    rt = out.port.rt
    full: list[str] = []
    rt.set_error_callback(lambda _kind, message, _data: full.append(message))
    source = packets(random.Random(seed))
    sent = refused = 0
    started = time.perf_counter()
    try:
        while sent < count:
            for _ in range(min(64, count - sent)):  # a burst, then room for JACK to drain
                message = next(source)
                rt.send_message(message)
                if full:  # rtmidi: the ring buffer is full; this one is lost
                    full.clear()
                    refused += 1
                    break
                sent += 1
            time.sleep(0.0002)
    finally:
        out.close()
    return {"sent": sent, "refused": refused, "seconds": time.perf_counter() - started}


@dataclass(slots=True)
class FuzzFigures:
    messages_sent: int = 0
    refused_by_jack: int = 0  # the flood's ring buffer was full: not sent
    flood_seconds: float = 0.0
    messages_per_s: float = 0.0
    received: int = 0
    dropped_in: int = 0
    malformed_in: int = 0
    notes_in: int = 0
    notes_coalesced: int = 0
    rss_mb_before: float = 0.0
    rss_mb_peak: float = 0.0
    rss_mb_after: float = 0.0
    py_blocks_before: int = 0  # Python objects' memory blocks (RSS also holds native)
    py_blocks_after: int = 0
    model: str = ""
    answer_notes_before: int = 0  # of the answer to the same call before the flood
    answer_notes: int = 0  # of the first answer after the flood
    answer_fallback_notes: int = 0
    answered_by_model: bool = False  # every round's call (the first it could) by the model
    rss_mb_by_round: list[float] = field(default_factory=list)  # after each flood + call


class _Turns(JamObserver):
    def __init__(self) -> None:
        self.answers: list[tuple[Phrase, int]] = []
        self.metrics: dict[int, dict[str, Any]] = {}
        self.answered = asyncio.Event()

    def on_phrase(self, role: str, phrase: Phrase, turn: int) -> None:
        if role == "answer":
            self.answers.append((phrase, turn))
            self.answered.set()

    def on_metrics(self, metrics: dict[str, Any]) -> None:
        self.metrics[metrics["turn"]] = metrics


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def call_notes(bar_beats: float) -> list[Note]:
    """A plain call: an eighth-note line over six beats."""
    return [Note(62 + (i * 3) % 8, 90, bar_beats + 0.5 * i, 0.4) for i in range(12)]


async def run(
    messages: int, model: str = "markov", seed: int = 1, tempo: float = 160.0, rounds: int = 1
) -> FuzzFigures:
    """The whole benchmark on the JACK server ``$JACK_DEFAULT_SERVER`` names."""
    config = JamConfig(tempo=tempo, bars=2, count_in=0, model=model, seed=seed)
    performer = midi.open_output(virtual=True, api="jack", client_name="fuzz-performer")
    listener = midi.open_input(virtual=True, api="jack", client_name="fuzz-listener")
    agent_in = midi.open_input("fuzz-performer", api="jack", guard_sysex=True)
    turns = _Turns()
    session = Session(
        config,
        observers=[turns],
        ports=Ports(agent_in, OutputSpec("fuzz-listener", api="jack")),
        handle_signals=False,
    )
    responders = await session.prepare()
    agent = await session.start()
    player = Scheduler(performer, switch_interval_s=None)
    figures = FuzzFigures(model=responders.primary.name)
    jam = asyncio.create_task(session.run())
    try:
        await asyncio.wait_for(agent.started.wait(), 30.0)
        player.start()
        per_bar = config.metre_obj.beats_per_bar
        turn, notes = await _call_and_answer(agent, player, turns, per_bar)  # warm-up
        figures.answer_notes_before = int(turns.metrics.get(turn, {}).get("notes_out", notes))
        gc.collect()
        figures.py_blocks_before = sys.getallocatedblocks()
        figures.rss_mb_before = figures.rss_mb_peak = rss_mb()
        figures.answered_by_model = True  # each round's call, by the model
        for _ in range(rounds):
            await _flood_and_call(agent, player, turns, per_bar, figures, messages, seed)
            seed += 1
            gc.collect()
            figures.rss_mb_by_round.append(round(rss_mb(), 1))
        gc.collect()
        figures.py_blocks_after = sys.getallocatedblocks()
        figures.rss_mb_after = rss_mb()
        figures.rss_mb_peak = max(figures.rss_mb_peak, figures.rss_mb_after)
    finally:
        player.stop(release=True)
        agent.request_stop("bench")
        summary = await asyncio.wait_for(jam, 30.0)
        for port in (listener, performer):
            port.close()
    figures.received = agent_in.stats.received
    figures.dropped_in = summary.dropped_in
    figures.malformed_in = summary.malformed_in
    figures.notes_in = summary.notes_in
    figures.notes_coalesced = summary.notes_coalesced
    for name in ("rss_mb_before", "rss_mb_peak", "rss_mb_after"):
        setattr(figures, name, round(getattr(figures, name), 1))
    return figures


async def _flood_and_call(
    agent: Agent,
    player: Scheduler,
    turns: _Turns,
    per_bar: float,
    figures: FuzzFigures,
    messages: int,
    seed: int,
) -> None:
    """One round: the flood from a child process, then a call; the figures add up."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "improv.bench.fuzz",
            "--child",
            "improv-in:in",
            "--messages",
            str(messages),
            "--seed",
            str(seed),
        ],
        stdout=subprocess.PIPE,
    )
    while child.poll() is None:
        figures.rss_mb_peak = max(figures.rss_mb_peak, rss_mb())
        await asyncio.sleep(0.25)
    out, _ = child.communicate()
    sent = json.loads(out.decode().strip().splitlines()[-1])
    figures.messages_sent += int(sent["sent"])
    figures.refused_by_jack += int(sent["refused"])
    figures.flood_seconds = round(figures.flood_seconds + sent["seconds"], 2)
    figures.messages_per_s = round(figures.messages_sent / max(1e-9, figures.flood_seconds))
    turn, notes = await _call_and_answer(agent, player, turns, per_bar)
    metrics = turns.metrics.get(turn, {})
    figures.answer_notes = int(metrics.get("notes_out", notes))
    fallback = int(metrics.get("fallback_notes", 0))
    figures.answer_fallback_notes += fallback
    figures.answered_by_model &= figures.answer_notes > 0 and fallback == 0


def _next_call_bar(agent: Agent, per_bar: float) -> int:
    """The first bar at least a bar away that begins one of the performer's slots."""
    bars = agent.config.bars
    bar = int(agent.position() // per_bar) + 1
    while bar % bars or slot_at(agent.state, bar * per_bar)[0] != "performer":
        bar += 1
    return bar


async def _call_and_answer(
    agent: Agent, player: Scheduler, turns: _Turns, per_bar: float
) -> tuple[int, int]:
    """Play a call in the performer's next slot of the form (at least a bar away, after
    any answer in progress); wait for its answer. (turn, notes)."""
    while agent.state.turn == "answering":  # an answer (to the flood) is still playing
        turns.answered.clear()
        await asyncio.wait_for(turns.answered.wait(), 30.0)
    bar = _next_call_bar(agent, per_bar)
    start = bar * per_bar
    for note in call_notes(start):
        player.schedule_note(
            note.pitch,
            note.velocity,
            agent.clock.time_at(note.onset),
            agent.clock.time_at(note.end),
            0,
        )
    while True:
        turns.answered.clear()
        await asyncio.wait_for(turns.answered.wait(), 60.0)
        phrase, turn = turns.answers[-1]
        if phrase.start_bar >= bar + agent.config.bars:
            return turn, len(phrase.notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m improv.bench.fuzz", description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--model", default="markov")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1, help="floods, a call after each")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--child", metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    if args.child:
        print(json.dumps(flood(args.child, args.messages, args.seed)), flush=True)
        return 0
    figures = asyncio.run(run(args.messages, args.model, args.seed, rounds=args.rounds))
    if args.json:
        print(json.dumps(asdict(figures)))
    else:
        for name, value in asdict(figures).items():
            print(f"{name:>22}: {value}")
    return 0 if figures.answered_by_model else 1


if __name__ == "__main__":
    sys.exit(main())
