"""``improv bench latency``'s new options, checked before anything runs."""

from __future__ import annotations

import os

import pytest

from improv.bench.latency import Harness
from improv.cli import build_parser, main
from improv.commands.bench_latency import settings_from_args


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--in", "a", "--out", "b", "--pid", "999999999"], "no such process"),
        (["--spawn", "--pid", str(os.getpid())], "--pid is for an external agent"),
        (["--in", "a", "--out", "b", "--wait-count-in", "-1"], "--wait-count-in"),
    ],
)
def test_bad_options_say_why(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "latency", *argv]) == 2
    assert says in capsys.readouterr().err


def _settings(*argv: str) -> object:
    return settings_from_args(
        build_parser().parse_args(["bench", "latency", "--midi-api", "jack", *argv])
    )


def test_the_count_in_wait_and_the_pid_reach_the_harness() -> None:
    external = _settings("--in", "a", "--out", "b", "--pid", str(os.getpid()))
    waiting = _settings("--in", "a", "--out", "b", "--wait-count-in", "12.5")
    spawned = _settings("--spawn", "--tempo", "120")
    assert external.pid == os.getpid()  # type: ignore[attr-defined]
    target = type("T", (), {"beat_s": 0.5, "metre": spawned.metre})()  # type: ignore[attr-defined]
    assert Harness(external)._count_in_wait(target) == 0.0  # type: ignore[arg-type]
    assert Harness(waiting)._count_in_wait(target) == 12.5  # type: ignore[arg-type]
    assert Harness(spawned)._count_in_wait(target) == pytest.approx(4.8)  # type: ignore[arg-type]
