"""A tiny external MIDI agent for the harness's tests: it answers each call on the next bar.

Its thread takes every note-on and note-off from its input port and schedules it again
``bars`` bars later on its output port, through improv's precise scheduler: in trade
mode a call starting on a bar line comes back as an answer starting on the bar line
after the call. Knowing exactly what it should play lets a test check the harness.
"""

from __future__ import annotations

import threading

from improv.io.midi import open_input, open_output
from improv.output.scheduler import Scheduler


class EchoAgent:
    """Ports ``<name>:in`` (calls) and ``<name>-out:out`` (answers), virtual."""

    def __init__(self, api: str, bars: int, tempo: float, name: str = "echo") -> None:
        self.delay_s = bars * 4 * 60.0 / tempo
        self.in_port = f"{name}:in"
        self.out_port = f"{name}-out:out"
        self.midi_in = open_input(api=api, virtual=True, client_name=name, port_name="in")
        self.midi_out = open_output(
            api=api, virtual=True, client_name=f"{name}-out", port_name="out"
        )
        self.scheduler = Scheduler(self.midi_out)
        self.notes_out = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="echo-agent", daemon=True)

    def __enter__(self) -> EchoAgent:
        self.scheduler.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self.scheduler.stop(release=True)
        self.midi_in.close()
        self.midi_out.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            event = self.midi_in.poll()
            if event is None:
                self._stop.wait(0.001)  # idle: the event's own time stamp keeps the timing
                continue
            if event.is_note_on or event.is_note_off:
                self.scheduler.schedule(event.time + self.delay_s, event.data)
                self.notes_out += event.is_note_on
