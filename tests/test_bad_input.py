"""Bad input on the real command line: one clear line on stderr, exit 2 (or 1), bounded.

Each case builds its hostile input in a temporary folder and runs ``improv`` as a user
would (a subprocess), so what is checked is what a user sees: the exit code, a single
line on stderr without a traceback, a time bound, and (where it matters) that a device
or a folder given as an output is left as it was.
"""

from __future__ import annotations

import os
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LSTM = ROOT / "models" / "lstm.pt"
TIME_LIMIT_S = 60.0  # start-up with torch on a loaded machine; a file read in full takes minutes


def _midi_notes(path: Path, notes: int) -> Path:
    """A type-0 MIDI file of ``notes`` short notes, written as raw bytes (fast)."""
    body = b"\x00\x90\x3c\x40\x01\x80\x3c\x00" * notes + b"\x00\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480)
    path.write_bytes(header + b"MTrk" + struct.pack(">I", len(body)) + body)
    return path


def _checkpoint(path: Path, **config: object) -> Path:
    """The shipped LSTM checkpoint with some of its config replaced."""
    import torch

    raw = torch.load(LSTM, map_location="cpu", weights_only=True)
    raw["config"].update(config)
    torch.save(raw, path)
    return path


def _toml(text: str | bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / "stage.toml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return path

    return make


@dataclass(frozen=True)
class Case:
    argv: Callable[[Path], list[str]]
    code: int
    says: str  # a word the message must hold (case-insensitive)


def _jam(*extra: str) -> list[str]:
    return ["jam", "--demo", "--json", "--choruses", "1", *extra]


def _perform(path: str) -> list[str]:
    return ["jam", "--json", "--choruses", "1", "--performer", path]


def _cfg(text: str | bytes) -> Callable[[Path], list[str]]:
    return lambda tmp: _jam("--config", str(_toml(text)(tmp)))


def _model(**config: object) -> Callable[[Path], list[str]]:
    return lambda tmp: _jam("--model", str(_checkpoint(tmp / "bad.pt", **config)))


CASES: dict[str, Case] = {
    "binary toml": Case(_cfg(b"\xff\xfe\x00tempo = 1\x80\x81"), 2, "config"),
    "nested toml": Case(_cfg("a = " + "[" * 100_000 + "]" * 100_000), 2, "config"),
    "config /dev/zero": Case(lambda tmp: _jam("--config", "/dev/zero"), 2, "regular file"),
    "config folder": Case(lambda tmp: _jam("--config", str(tmp)), 2, "config"),
    "config huge": Case(_cfg("# " + "x" * (2 << 20)), 2, "too large"),
    "key beside [jam]": Case(_cfg("tempoo = 100\n[jam]\ntempo = 100\n"), 2, "tempoo"),
    "table beside [jam]": Case(_cfg("[jam]\ntempo = 100\n[mqt]\nurl = 'x'\n"), 2, "mqt"),
    "checkpoint unknown key": Case(_model(n_wings=3), 1, "n_wings"),
    "checkpoint negative size": Case(_model(n_hidden=-5), 1, "n_hidden"),
    "checkpoint string size": Case(_model(n_hidden="many"), 1, "n_hidden"),
    "checkpoint 64 TB": Case(_model(n_hidden=4_000_000), 1, "too large"),
    "checkpoint /dev/zero": Case(lambda tmp: _jam("--model", "/dev/zero"), 2, "checkpoint"),
    "performer 4M notes": Case(
        lambda tmp: _perform(str(_midi_notes(tmp / "big.mid", 4_000_000))),
        2,
        "too large",
    ),
    "performer /dev/zero": Case(lambda tmp: _perform("/dev/zero"), 2, "regular file"),
    "eval 4M notes": Case(
        lambda tmp: [
            "eval",
            "--model",
            str(LSTM),
            "--data",
            str(_midi_notes(tmp / "big.mid", 4_000_000).parent),
        ],
        2,
        "too large",
    ),
    "train lr nan": Case(
        lambda tmp: ["train", "--lr", "nan", "--steps", "1", "--out", str(tmp / "m.pt")],
        2,
        "--lr",
    ),
    "train lr negative": Case(
        lambda tmp: ["train", "--lr", "-1", "--steps", "1", "--out", str(tmp / "m.pt")],
        2,
        "--lr",
    ),
    "train dropout 2": Case(
        lambda tmp: ["train", "--dropout", "2", "--steps", "1", "--out", str(tmp / "m.pt")],
        2,
        "--dropout",
    ),
    "train out /dev/full": Case(
        lambda tmp: ["train", "--steps", "1", "--out", "/dev/full"], 2, "regular file"
    ),
    "eval plot /dev/full": Case(
        lambda tmp: ["eval", "--model", "markov", "--plot", "/dev/full"], 2, "regular file"
    ),
    "record folder": Case(lambda tmp: _jam("--record", str(tmp)), 2, "record"),
    "record /dev/full": Case(lambda tmp: _jam("--record", "/dev/full"), 2, "regular file"),
    "record unwritable": Case(
        lambda tmp: _jam("--record", "/proc/improv-test/jam.mid"), 2, "record"
    ),
}


def run_improv(argv: list[str], cwd: Path, timeout: float = TIME_LIMIT_S) -> tuple[int, str, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "improv.cli", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return result.returncode, result.stderr, time.monotonic() - start


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    argv = case.argv(tmp_path)
    devices = {p: os.stat(p) for p in ("/dev/full", "/dev/zero")}
    code, stderr, seconds = run_improv(argv, tmp_path)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert code == case.code, f"exit {code}: {stderr[-2000:]}"
    assert len(lines) == 1, stderr[-2000:]
    assert case.says.lower() in lines[0].lower(), lines[0]
    assert seconds < TIME_LIMIT_S
    for path, before in devices.items():  # never renamed over, never replaced
        after = os.stat(path)
        assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev, path
