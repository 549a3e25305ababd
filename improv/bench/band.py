"""The band's cost to improv's own timing: demo jams with and without the band, side
by side in one run.

Each round plays ``improv jam --demo`` at each tempo twice, without the band and with
it (the order alternating between rounds, so neither always runs on a warmer machine),
each a child process of its own, and reads its ``--json`` summary: the send error of
improv's own notes (``answer_send_error_ms_*``: its channel only, so the band's notes
are not counted on either side), all messages' send error, the band's notes, and the
note-ons left without a note-off.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from improv.bench.procs import improv_command
from improv.errors import ImprovError

BANDS = {"without": "none", "with": "bass,drums,piano"}
FIGURES = (
    "answer_send_error_ms_p50",
    "answer_send_error_ms_p99",
    "answer_send_error_ms_max",
    "send_error_ms_p99",
    "send_error_ms_max",
    "notes_out",
    "band_notes",
    "deadline_misses",
    "messages_late",
    "stuck_notes",
)


def band_bench(
    tempos: Sequence[float],
    *,
    choruses: int,
    bars: int,
    rounds: int = 1,
    jam_args: Sequence[str] = (),
    on_run: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per jam: tempo, band (``with``/``without``), round and :data:`FIGURES`."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="improv-bench-band-") as folder:
        for round_ in range(rounds):
            for tempo in tempos:
                order = list(BANDS) if round_ % 2 == 0 else list(BANDS)[::-1]
                for band in order:
                    record = Path(folder) / f"{band}-{tempo:g}-{round_}.mid"
                    summary = _jam(tempo, BANDS[band], choruses, bars, record, jam_args)
                    row = {"tempo": tempo, "band": band, "round": round_}
                    row.update({name: summary.get(name) for name in FIGURES})
                    rows.append(row)
                    if on_run is not None:
                        on_run(row)
    return rows


def _jam(
    tempo: float, band: str, choruses: int, bars: int, record: Path, extra: Sequence[str]
) -> dict[str, Any]:
    argv = [
        *("jam", "--demo", "--json", "--tempo", f"{tempo:g}", "--bars", str(bars)),
        *("--choruses", str(choruses), "--band", band, "--record", str(record), *extra),
    ]
    done = subprocess.run(improv_command(argv), capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise ImprovError(f"improv jam at {tempo:g} BPM, band {band}: {tail[0]}")
    summary: dict[str, Any] = json.loads(lines[-1])
    return summary
