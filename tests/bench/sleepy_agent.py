"""A foreign MIDI agent for the harness's tests, run as its own process: no clock at all.

Like a simple Continuator: it records what it hears, and once nothing has sounded
for ``--timeout`` seconds it plays the phrase back (pitches in reverse order, the
rhythm kept) with ``time.sleep`` between messages, so every sleep's overshoot adds up.
It knows no tempo and no bar line: against any grid its answers land anywhere, which
is what the harness's grid-free figures are for. It uses python-rtmidi directly and
nothing of improv's. Its bad habits are optional: ``--end-of-track`` (``FF 2F 00``
after each answer, a MIDI file's end-of-track marker, System Reset on a live port),
``--double`` (every note-on sent twice at once), ``--panic`` (a note-off for every key
when a new call barges in on an answer).

    python tests/bench/sleepy_agent.py --api jack --name sleepy   # ports sleepy:in, sleepy-out:out
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

import rtmidi

APIS = {"jack": rtmidi.API_UNIX_JACK, "alsa": rtmidi.API_LINUX_ALSA}


class SleepyAgent:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        api = APIS[args.api]
        self.midi_in = rtmidi.MidiIn(api, args.name)
        self.midi_in.open_virtual_port("in")
        self.midi_out = rtmidi.MidiOut(api, args.name + "-out")
        self.midi_out.open_virtual_port("out")
        self.lock = threading.Lock()
        self.phrase: list[tuple[float, list[int]]] = []  # (arrival, message)
        self.held: set[int] = set()
        self.last = 0.0
        self.playing = threading.Event()
        self.barged = threading.Event()
        self.stop = threading.Event()
        self.midi_in.set_callback(self.heard)

    def heard(self, event: tuple[list[int], float], _data: object = None) -> None:
        message, _delta = event
        if len(message) < 3 or message[0] & 0xE0 != 0x80:
            return
        now = time.monotonic()
        on = message[0] & 0xF0 == 0x90 and message[2] > 0
        with self.lock:
            if on:
                self.held.add(message[1])
                if self.playing.is_set():
                    self.barged.set()
            else:
                self.held.discard(message[1])
            self.phrase.append((now, list(message)))
            self.last = now

    def run(self) -> None:
        print("ready", flush=True)
        while not self.stop.wait(0.01):
            with self.lock:
                quiet = time.monotonic() - self.last > self.args.timeout
                due = bool(self.phrase) and not self.held and quiet
                phrase, self.phrase = (self.phrase, []) if due else ([], self.phrase)
            if phrase:
                self.play(phrase)

    def play(self, phrase: list[tuple[float, list[int]]]) -> None:
        """The phrase again from now, pitches reversed, each gap slept."""
        pitches = [m[1] for _, m in phrase if m[0] & 0xF0 == 0x90 and m[2] > 0][::-1]
        mapping: dict[int, int] = {}
        self.playing.set()
        self.barged.clear()
        previous = phrase[0][0]
        for t, message in phrase:
            time.sleep(max(0.0, t - previous))  # the naive way: errors add up
            previous = t
            if self.barged.is_set() or self.stop.is_set():
                break
            if message[0] & 0xF0 == 0x90 and message[2] > 0:
                mapping[message[1]] = pitches.pop(0) if pitches else message[1]
                out = [message[0], mapping[message[1]], message[2]]
                self.midi_out.send_message(out)
                if self.args.double:
                    self.midi_out.send_message(out)
            elif message[1] in mapping:
                self.midi_out.send_message([0x80 | message[0] & 0x0F, mapping.pop(message[1]), 0])
        for pitch in mapping.values():  # cut short: release what still sounds
            self.midi_out.send_message([0x80, pitch, 0])
        if self.barged.is_set() and self.args.panic:
            for key in range(128):
                self.midi_out.send_message([0x80, key, 0])
        if self.args.end_of_track:
            self.midi_out.send_message([0xFF, 0x2F, 0x00])
        self.playing.clear()

    def close(self) -> None:
        self.midi_in.close_port()
        self.midi_out.close_port()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", choices=tuple(APIS), default="jack")
    parser.add_argument("--name", default="sleepy")
    parser.add_argument("--timeout", type=float, default=1.0, help="silence that ends a call")
    parser.add_argument("--end-of-track", action="store_true")
    parser.add_argument("--double", action="store_true")
    parser.add_argument("--panic", action="store_true")
    agent = SleepyAgent(parser.parse_args())
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: agent.stop.set())
    try:
        agent.run()
    finally:
        agent.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
