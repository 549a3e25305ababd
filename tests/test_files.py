"""Files the user names: inputs checked before reading, outputs written without harm."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from improv.errors import UsageError
from improv.files import atomic_output, atomic_write, check_input, read_limited, read_toml


def test_inputs_are_checked_before_a_byte_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * 101)
    with pytest.raises(UsageError, match="not a regular file"):
        check_input(Path("/dev/zero"), 100, "--config")
    with pytest.raises(UsageError, match="a folder"):
        check_input(tmp_path, 100, "--config")
    with pytest.raises(UsageError, match="too large"):
        read_limited(big, 100, "--config")
    with pytest.raises(UsageError, match="no such file"):
        check_input(tmp_path / "nothing", 100, "--config")
    assert read_limited(big, 101, "--config") == b"x" * 101


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (b"\xff\xfetempo = 1", "not UTF-8"),
        (b"a = " + b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
        (b"tempo = ", "--config"),
    ],
)
def test_bad_toml_is_one_usage_error(tmp_path: Path, text: bytes, error: str) -> None:
    path = tmp_path / "stage.toml"
    path.write_bytes(text)
    with pytest.raises(UsageError, match=error):
        read_toml(path)


def test_an_output_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "out.mid"
    target.write_text("old")

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(target, fail)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.mid"]
    with atomic_output(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["out.mid"]
    assert stat.S_IMODE(target.stat().st_mode) & 0o044  # readable as files usually are


def test_devices_and_folders_are_never_replaced(tmp_path: Path) -> None:
    before = os.stat("/dev/full")
    for path, error in ((Path("/dev/full"), "not a regular file"), (tmp_path, "a folder")):
        with pytest.raises(UsageError, match=error), atomic_output(path) as tmp:
            tmp.write_text("x")
    after = os.stat("/dev/full")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    with pytest.raises(UsageError, match="cannot write there"):
        atomic_write(Path("/proc/improv-test/out.mid"), lambda tmp: tmp.write_text("x"))
