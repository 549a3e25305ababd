"""The one clock of improv: every event time, schedule and report is in these seconds.

Below every layer (the MIDI and MQTT edges, the sender, the engine, the benchmarks all
read it), so that a time taken on one side of a thread or process boundary means the
same on the other: ``time.monotonic`` is system-wide on Linux and macOS.
"""

from __future__ import annotations

import time

now = time.monotonic
