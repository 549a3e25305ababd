"""``improv bench latency --calls FILE.mid`` plays the file as ``improv jam --performer``
does: its tempo, key, metre and changes, unless options say otherwise; and says which."""

from __future__ import annotations

from pathlib import Path

import pytest

from improv.bench.calls import FileCalls, plan_calls
from improv.bench.latency import jam_argv
from improv.cli import build_parser
from improv.commands.bench_latency import settings_from_args
from improv.music.time import Metre
from tests.engine.test_performer import _file


def _settings(*argv: str) -> object:
    return settings_from_args(
        build_parser().parse_args(["bench", "latency", "--midi-api", "jack", *argv])
    )


def _argv(settings: object) -> list[str]:
    """The spawned jam's command line."""
    return jam_argv(settings, settings.configs[0], "c", "r")  # type: ignore[arg-type,attr-defined]


def test_the_files_tempo_key_metre_and_changes_are_played(tmp_path: Path) -> None:
    path = _file(tmp_path / "take.mid")  # 150 BPM, 3/4, Bb, four bars of changes
    settings = _settings("--spawn", "--calls", str(path), "--bars", "2")
    plan = settings.plan  # type: ignore[attr-defined]
    assert (plan.tempo, plan.key, str(plan.metre), plan.changes) == (150.0, "Bb", "3/4", path)
    assert settings.configs[0].tempo == 150.0  # type: ignore[attr-defined]
    assert str(settings.metre) == "3/4"  # type: ignore[attr-defined]
    assert "150 BPM in Bb, 3/4" in plan.describe() and "the file's own changes" in plan.describe()
    argv = _argv(settings)
    for option, value in (("--tempo", "150"), ("--key", "Bb"), ("--metre", "3/4")):
        assert argv[argv.index(option) + 1] == value
    assert argv[argv.index("--changes") + 1] == str(path)  # the jam's form: the file's


def test_options_win_over_the_file(tmp_path: Path) -> None:
    path = _file(tmp_path / "take.mid")
    settings = _settings(
        "--spawn", "--calls", str(path), "--tempo", "200", "--key", "C", "--", "--form", "blues"
    )
    plan = settings.plan  # type: ignore[attr-defined]
    assert (plan.tempo, plan.key, plan.form, plan.changes) == (200.0, "C", "blues", None)
    argv = _argv(settings)
    assert "--changes" not in argv and argv.count("--key") == 1
    assert argv[argv.index("--key") + 1] == "C"
    # another metre: the file's changes (written in 3/4) are not the form
    other = plan_calls([path], metre=Metre(4, 4))
    assert other.changes is None and other.form == "blues" and other.tempo == 150.0


def test_calls_move_to_the_key_played(tmp_path: Path) -> None:
    path = _file(tmp_path / "take.mid")
    as_written = FileCalls([path], "trade", 2, Metre(3, 4), "Bb").calls
    in_c = FileCalls([path], "trade", 2, Metre(3, 4), "C").calls
    assert [n.pitch + 2 for n in as_written[0]] == [n.pitch for n in in_c[0]]


def test_the_spawned_jam_reads_the_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``improv jam --changes FILE.mid``: the file's tempo, metre and key where no
    option gives them (its chords are the form: ``performance_form``)."""
    import improv.commands.jam as jam

    path = _file(tmp_path / "take.mid")
    seen: dict[str, object] = {}

    async def no_jam(config: object, args: object) -> tuple[dict[str, object], bool]:
        seen["config"], seen["changes"] = config, args.changes_of  # type: ignore[attr-defined]
        return {}, False  # the figures, and no record written

    monkeypatch.setattr(jam, "_jam", no_jam)
    assert jam.run(build_parser().parse_args(["jam", "--changes", str(path), "--virtual"])) == 0
    config = seen["config"]
    assert (config.tempo, config.key, config.metre) == (150.0, "Bb", "3/4")  # type: ignore[attr-defined]
    assert seen["changes"].form is not None  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", ["5/5", "x"])
def test_a_bad_metre_for_the_jam_is_one_line(bad: str) -> None:
    from improv.errors import UsageError

    with pytest.raises(UsageError, match="--metre"):
        _settings("--spawn", "--", "--metre", bad)
