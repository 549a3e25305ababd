"""Does the built-in synth disturb improv's timing? Send error with and without it, in one run.

``improv bench synth`` alternates rounds of improv's real sender process: one sending
into nothing with no synth at all, one sending into nothing *and* feeding a synth
process started for the round (an audio output when there is one; else FluidSynth's
file driver, which renders in real time into a temporary file, so the synth's load is
the same), the order swapped every round so both meet the same machine. Each
round plays a jam's stream: two-note chords on every sixteenth (improv), a click on
every beat (the metronome), and, in the synth's rounds, a performer's eighth notes fed
from this process as an input's tap would. It reports per variant the send error
(p50/p99/max, messages over 1 ms late) and, for the synth, how late each part's
messages reached it.

Then it measures the **audio onset error**: when each of improv's notes is heard in the
synth's audio against the time it was scheduled for. The audio must be captured to
be measured, so this round always uses FluidSynth's file driver, at 48 kHz in blocks of
48 frames (1 ms, the driver's timer keeping real time; a live output's blocks are 64
frames). improv's notes, one at a time (one pitch, so every attack has the same shape),
are sent by the real sender process into the synth; their onsets are found in the file
(the first sample at a tenth of the hit's peak after silence). The file's start is not
known to the millisecond, so the errors are reported about their median (the
constant latency taken out): ``audio_onset`` in the JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

VARIANTS = ("without synth", "with synth")
FILE_SETTINGS: dict[str, int | float | str] = {"audio.period-size": 441}
"""A 10 ms period: the file driver's millisecond timer then keeps real time."""
ONSET_SETTINGS: dict[str, int | float | str] = {
    "synth.sample-rate": 48000.0,
    "audio.period-size": 48,
    "synth.reverb.active": 0,
    "synth.chorus.active": 0,
}
"""The onset round's file driver: blocks of 1 ms, which its timer keeps in real time;
no reverb or chorus, whose tails would hide where the next hit begins."""
ONSET_HITS = 60
ONSET_SPACING_S = 0.25


@dataclass(frozen=True, slots=True)
class Figures:
    variant: str
    messages: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    late: int  # over 1 ms


def build_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--rounds", type=int, default=6, help="rounds of each variant")
    parser.add_argument("--seconds", type=float, default=10.0, help="of music per round")
    parser.add_argument("--tempo", type=float, default=240.0, metavar="BPM")
    parser.add_argument("--soundfont", type=Path, metavar="PATH")
    parser.add_argument(
        "--audio-driver", metavar="NAME", help="FluidSynth audio driver (default: the usual)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from improv.errors import UsageError
    from improv.io.synth import find_soundfont
    from improv.io.synth.process import delay_figures

    if args.rounds < 1 or not 1.0 <= args.seconds <= 600.0 or not 30 <= args.tempo <= 400:
        raise UsageError("--rounds at least 1, --seconds 1 to 600, --tempo 30 to 400")
    console = Console(stderr=args.json)
    soundfont = find_soundfont(args.soundfont)
    errors: dict[str, list[float]] = {v: [] for v in VARIANTS}
    delays: dict[str, list[float]] = {}
    cpu: list[float] = []
    audio = ""
    with tempfile.TemporaryDirectory(prefix="improv-bench-synth-") as folder:
        for number in range(args.rounds):
            order = VARIANTS if number % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                if variant == "without synth":  # no synth process at all
                    errors[variant] += _round(None, args.tempo, args.seconds)
                else:
                    synth, audio = _start_synth(soundfont, args.audio_driver, Path(folder))
                    try:
                        errors[variant] += _round(synth, args.tempo, args.seconds)
                        measured, cpu_percent = synth.delays()
                    finally:
                        synth.close()
                    for part, values in measured.items():
                        delays.setdefault(part, []).extend(values)
                    cpu.append(cpu_percent)
                console.print(f"round {number + 1}/{args.rounds}: {variant}", style="dim")
        console.print("audio onsets: improv's notes into the file driver", style="dim")
        onsets = audio_onsets(soundfont, Path(folder))
    delivery = {**delay_figures(delays), "cpu_percent": round(sum(cpu) / len(cpu), 1)}
    figures = [_figures(v, errors[v]) for v in VARIANTS]
    if args.json:
        print(
            json.dumps(
                {
                    "audio": audio,
                    "send": [asdict(f) for f in figures],
                    "synth": delivery,
                    "audio_onset": onsets,
                }
            )
        )
        return 0
    table = Table(title=f"send error, {args.rounds} x {args.seconds:g} s each, audio: {audio}")
    for column in ("variant", "messages", "p50 ms", "p99 ms", "max ms", "over 1 ms"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for f in figures:
        table.add_row(
            f.variant, str(f.messages), f"{f.p50_ms:.3f}", f"{f.p99_ms:.3f}",
            f"{f.max_ms:.3f}", str(f.late),
        )  # fmt: skip
    console.print(table)
    parts = Table(title="messages reaching the synth, ms after their time")
    for column in ("part", "messages", "p50 ms", "p99 ms", "max ms"):
        parts.add_column(column, justify="left" if column == "part" else "right")
    for part, d in delivery.items():
        if not isinstance(d, dict):
            continue
        parts.add_row(
            part, str(d["messages"]), f"{d['delay_ms_p50']:.3f}", f"{d['delay_ms_p99']:.3f}",
            f"{d['delay_ms_max']:.3f}",
        )  # fmt: skip
    console.print(parts)
    console.print(f"the synth's process used {delivery.get('cpu_percent', 0.0)} % of one core")
    console.print(
        f"audio onset error (file driver, 1 ms blocks; about the median latency): "
        f"{onsets['found']} of {onsets['notes']} notes found, "
        f"|error| p50 {onsets['error_ms_p50']} / p99 {onsets['error_ms_p99']} / "
        f"max {onsets['error_ms_max']} ms"
    )
    return 0


def audio_onsets(soundfont: Path, folder: Path) -> dict[str, Any]:
    """improv's notes through the real sender into a synth writing a file in real
    time; each one's onset in the audio against its time."""
    from improv.io.synth.process import SynthProcess
    from improv.output.sender import OutputSpec, ProcessScheduler
    from improv.timebase import now

    wav = folder / "onsets.wav"
    synth = SynthProcess(soundfont, ["file"], {**ONSET_SETTINGS, "audio.file.name": str(wav)})
    synth.start()
    try:
        sender = ProcessScheduler(OutputSpec(discard=True, synth=synth.address)).start()
        try:
            start = now() + 0.5
            times = [start + i * ONSET_SPACING_S for i in range(ONSET_HITS)]
            for t in times:  # one note again and again: every attack the same shape
                sender.schedule_note(64, 100, t, t + 0.06, channel=0)
            time.sleep(max(0.0, times[-1] + 0.4 - now()))
        finally:
            sender.close()
    finally:
        synth.close()
    found = find_onsets(wav)
    return onset_figures(found, times)


def find_onsets(wav: Path) -> list[float]:
    """Seconds from the file's start where a hit begins: the first sample at a tenth of
    the loudest hit's peak after 40 ms under a fortieth of it (up to 5 ms before: the
    attack's own rise)."""
    import wave

    import numpy as np

    with wave.open(str(wav), "rb") as handle:
        rate = handle.getframerate()
        channels = handle.getnchannels()
        frames = handle.readframes(handle.getnframes())
    samples = np.frombuffer(frames, dtype="<i2").reshape(-1, channels).astype(np.float32)
    level = np.abs(samples).max(axis=1)
    if not len(level) or level.max() == 0:
        return []
    threshold, quiet = level.max() / 10.0, level.max() / 40.0
    loud = np.flatnonzero(level >= threshold)
    onsets: list[float] = []
    window, rise = int(0.04 * rate), int(0.005 * rate)
    last = -window
    for index in loud.tolist():
        before = level[max(0, index - window) : max(0, index - rise)]
        if index - last > window and (not len(before) or before.max() < quiet):
            onsets.append(float(index) / rate)
        last = index
    return onsets


def onset_figures(onsets: list[float], times: list[float]) -> dict[str, Any]:
    """Each onset matched to its scheduled time (in order, when every hit was found);
    the errors about their median, in ms."""
    import numpy as np

    figures: dict[str, Any] = {
        "notes": len(times),
        "found": len(onsets),
        "block_ms": 1.0,
        "error_ms_p50": None,
        "error_ms_p99": None,
        "error_ms_max": None,
    }
    if len(onsets) != len(times):
        return figures  # a hit lost or doubled: no pairing to trust
    offsets = (np.asarray(onsets) - (np.asarray(times) - times[0])) * 1e3
    median = float(np.median(offsets))
    errors = np.abs(offsets - median)
    figures.update(
        error_ms_p50=round(float(np.percentile(errors, 50)), 3),
        error_ms_p99=round(float(np.percentile(errors, 99)), 3),
        error_ms_max=round(float(errors.max()), 3),
    )
    return figures


def _start_synth(soundfont: Path, driver: str | None, folder: Path) -> tuple[Any, str]:
    """The synth with an audio output; the file driver where none opens (said so)."""
    from improv.io.synth import SynthUnavailable
    from improv.io.synth.process import SynthProcess

    try:
        synth = SynthProcess(soundfont, [driver] if driver else None).start()
        return synth, synth.driver
    except SynthUnavailable as exc:
        if driver:
            raise
        settings = {**FILE_SETTINGS, "audio.file.name": str(folder / "synth.wav")}
        synth = SynthProcess(soundfont, ["file"], settings).start()
        return synth, f"file (real time; {exc})"


def _round(synth: Any, bpm: float, seconds: float) -> list[float]:
    """One round through a real sender process; its send errors (seconds)."""
    from improv.io.synth.process import PERFORMER_CHANNELS
    from improv.output.sender import OutputSpec, ProcessScheduler
    from improv.timebase import now

    spec = OutputSpec(discard=True, synth=synth.address if synth is not None else None)
    sender = ProcessScheduler(spec).start()
    beat = 60.0 / bpm
    start = now() + 0.5
    try:
        steps = int(seconds / beat * 4)
        for step in range(steps):
            t = start + step * beat / 4
            for pitch in (64 + step % 5, 70 + step % 3):
                sender.schedule_note(pitch, 90, t, t + beat / 4 * 0.9, channel=0)
            if step % 4 == 0:
                sender.schedule_note(76 if step % 16 == 0 else 77, 100, t, t + 0.04, channel=9)
        stop = threading.Event()
        performer = None
        if synth is not None:
            feed = synth.feed(PERFORMER_CHANNELS)
            performer = threading.Thread(
                target=_play_performer, args=(feed, start, beat / 2, stop), daemon=True
            )
            performer.start()
        time.sleep(max(0.0, start + steps * beat / 4 + 0.3 - now()))
        stop.set()
        if performer is not None:
            performer.join()
        return [float(e) for e in sender.send_errors()]
    finally:
        sender.close()


def _play_performer(feed: Any, start: float, step_s: float, stop: threading.Event) -> None:
    """Eighth notes into the synth, as a performer's arrive through the input's tap."""
    from improv.timebase import now

    step = 0
    while not stop.is_set():
        t = start + step * step_s
        time.sleep(max(0.0, t - now()))
        feed.send(bytes((0x90, 55 + step % 7, 80)), t)
        feed.send(bytes((0x80, 55 + (step - 1) % 7, 0)), t)
        step += 1
    feed.close()


def _figures(variant: str, errors: list[float]) -> Figures:
    import numpy as np

    values = np.asarray(errors) * 1e3
    if not len(values):
        return Figures(variant, 0, 0.0, 0.0, 0.0, 0)
    p50, p99 = np.percentile(values, [50, 99])
    return Figures(
        variant,
        len(values),
        round(float(p50), 4),
        round(float(p99), 4),
        round(float(values.max()), 4),
        int((values > 1.0).sum()),
    )
