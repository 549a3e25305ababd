"""Files the user names: read with a size limit, written without harm.

Every command reads its inputs (configs, MIDI files, checkpoints) through
:func:`check_input` first, so a device (``/dev/zero``), a folder or a file too large
is one clear line before a byte is read, and writes its outputs through
:func:`check_output` (at start, before any work) and :func:`atomic_write` (a
temporary file beside the target, then a rename, never over something that is not a
regular file: ``--out /dev/full`` as root must not replace the device node).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from improv.errors import UsageError

MiB = 1 << 20


def check_input(path: Path, limit: int, what: str) -> int:
    """The size of a regular file of at most ``limit`` bytes; else a :class:`UsageError`
    that names ``what`` (an option, say ``--config``) and the path."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{what} {path}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{what} {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{what} {path}: a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"{what} {path}: not a regular file")
    if info.st_size > limit:
        raise UsageError(
            f"{what} {path}: too large ({info.st_size / MiB:.1f} MiB > {limit / MiB:g} MiB)"
        )
    return info.st_size


def read_limited(path: Path, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (never more are read)."""
    check_input(path, limit, what)
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise UsageError(f"{what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:  # it grew since the check
        raise UsageError(f"{what} {path}: too large (> {limit / MiB:g} MiB)")
    return data


def check_output(path: Path, what: str) -> Path:
    """Refuse, before any work, an output that could not be written: a folder, a
    device, a folder without write permission, a parent that cannot be made (made
    here when it can)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise UsageError(f"{what} {path}: {exc.strerror or exc}") from None
    if info is not None:
        if stat.S_ISDIR(info.st_mode):
            raise UsageError(f"{what} {path}: a folder; give a file name")
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{what} {path}: not a regular file; give a file name")
    try:  # writing is the only sure test (root ignores permission bits, /proc does not)
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".{path.name}.probe-{os.getpid()}"
        with open(probe, "xb"):
            pass
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot write there ({exc.strerror or exc})") from None
    return path


def atomic_write(path: Path, write: Callable[[Path], None], what: str = "output") -> Path:
    """Write ``path`` through ``write(temporary path)``, then rename it into place."""
    with atomic_output(path, what) as tmp:
        write(tmp)
    return path


@contextlib.contextmanager
def atomic_output(path: Path, what: str = "output") -> Iterator[Path]:
    """``with atomic_output(p) as tmp:`` write ``tmp``; at the end it replaces ``p``.

    A reader (or a crash) sees the old file or the new one, never half of one; a target
    that exists and is not a regular file is refused, not replaced.
    """
    check_output(path, what)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as done:
            os.fsync(done.fileno())
        os.chmod(tmp, _FILE_MODE)
        check_output(path, what)  # still not a device or a folder
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _file_mode() -> int:
    mask = os.umask(0o022)  # read once, at import (umask has no read-only call)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


CONFIG_LIMIT = 1 * MiB
"""A stage set-up is a page of settings; anything larger is not one."""


def read_toml(path: Path, what: str = "--config") -> dict[str, Any]:
    """A TOML file of at most :data:`CONFIG_LIMIT` bytes, or one clear :class:`UsageError`
    (a device, binary bytes, nesting too deep for the parser, a syntax error)."""
    import tomllib

    data = read_limited(path, CONFIG_LIMIT, what)
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UsageError(f"{what} {path}: not UTF-8 text (byte {exc.start})") from None
    except RecursionError:
        raise UsageError(f"{what} {path}: nested too deeply") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{what} {path}: {exc}") from None
