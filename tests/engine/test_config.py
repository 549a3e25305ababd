"""Jam settings: TOML file, command-line overrides, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from improv.engine.config import JamConfig, build_config, parse_range
from improv.errors import UsageError

EXAMPLE = Path(__file__).parents[2] / "examples" / "stage.toml"


def test_the_example_stage_file_loads_and_options_win() -> None:
    config = build_config(EXAMPLE, tempo=150.0, bars=None)
    assert config.tempo == 150.0  # the command line wins
    assert config.key == "Bb" and config.form == "jazz-blues" and config.bars == 4
    assert config.barge_in == "yield" and config.channel_in == 1 and config.top_p == 0.95
    assert config.pitch_range == (53, 84)


def test_flat_keys_relative_record_path(tmp_path: Path) -> None:
    path = tmp_path / "gig.toml"
    path.write_text('tempo = 90\nmode = "phrase"\nrecord = "out/gig.mid"\nsend_clock = true\n')
    config = build_config(path)
    assert config.mode == "phrase" and config.send_clock is True
    assert config.record == tmp_path / "out" / "gig.mid"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tempo = 1000", "tempo"),
        ('tempo = "fast"', "tempo must be float"),
        ("bars = 3", "bars must be one of"),
        ('mode = "solo"', "mode must be one of"),
        ('form = "polka"', "unknown form"),
        ('key = "H"', "not a key"),
        ('range = "C5-C4"', "range"),
        ("channel_out = 17", "channel_out"),
        ("volume = 3", "unknown setting 'volume'"),
        ("tempo = ", "stage.toml"),
    ],
)
def test_bad_settings_are_refused_by_name(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "stage.toml"
    path.write_text(text + "\n")
    with pytest.raises(UsageError, match=message):
        build_config(path)


def test_missing_file_and_conflicts() -> None:
    with pytest.raises(UsageError, match="no such file"):
        build_config(Path("/no/such/stage.toml"))
    with pytest.raises(UsageError, match="virtual"):
        JamConfig(virtual=True, port_in="x")


def test_ranges() -> None:
    assert parse_range("48-84") == (48, 84)
    assert parse_range("C3 - C6") == (48, 84)
    with pytest.raises(ValueError):
        parse_range("C3")
