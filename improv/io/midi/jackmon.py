"""Watch a JACK server through libjack (ctypes): is it up, and has it gone away?

rtmidi does not say when the JACK server dies: its clients keep answering from stale
shared memory. A port-less monitor client with ``jack_on_shutdown`` does, so the MIDI
watchdog can re-create its clients once the server is back. We load the libjack that
python-rtmidi itself uses (its wheel bundles one) so both speak the same protocol.
libjack's own error chatter ("Cannot connect to server socket" on every probe) is
silenced by pointing its error and info hooks at libc's ``strlen``, a C function with
the right signature and no effect, so no Python code runs on JACK's threads for it.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import glob
import logging
import os
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

log = logging.getLogger(__name__)

_NO_START_SERVER = 0x01

client_lock = threading.RLock()
"""Held around every JACK client open and close in this process (ours and rtmidi's)."""
_ShutdownCallback = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


@cache
def _lib() -> Any:
    """libjack as python-rtmidi loads it, else the system's; None when there is none."""
    candidates: list[str] = []
    try:
        import rtmidi

        base = os.path.dirname(os.path.dirname(rtmidi.__file__))
        candidates += sorted(glob.glob(os.path.join(base, "python_rtmidi*", "libjack*.so*")))
    except ImportError:
        pass
    system = ctypes.util.find_library("jack")
    if system:
        candidates.append(system)
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.jack_client_open.restype = ctypes.c_void_p
        lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p]
        lib.jack_client_close.argtypes = [ctypes.c_void_p]
        lib.jack_on_shutdown.argtypes = [ctypes.c_void_p, _ShutdownCallback, ctypes.c_void_p]
        if not os.environ.get("IMPROV_JACK_VERBOSE"):
            strlen = ctypes.cast(ctypes.CDLL(ctypes.util.find_library("c")).strlen, ctypes.c_void_p)
            lib.jack_set_error_function.argtypes = [ctypes.c_void_p]
            lib.jack_set_info_function.argtypes = [ctypes.c_void_p]
            lib.jack_set_error_function(strlen)
            lib.jack_set_info_function(strlen)
        return lib
    return None


def available() -> bool:
    """Whether libjack can be loaded at all."""
    return _lib() is not None


def server_running() -> bool:
    """Whether the JACK server named by ``$JACK_DEFAULT_SERVER`` answers (never starts one)."""
    lib = _lib()
    if lib is None:
        return False
    with client_lock:
        client = lib.jack_client_open(b"improv-probe", _NO_START_SERVER, None)
        if not client:
            return False
        lib.jack_client_close(client)
    return True


def _server_socket() -> Path | None:
    """The server's request socket (JACK2 on Linux: /dev/shm/jack_NAME_UID_0), if found."""
    name = os.environ.get("JACK_DEFAULT_SERVER") or "default"
    for folder in ("/dev/shm", "/tmp"):
        path = Path(folder) / f"jack_{name}_{os.getuid()}_0"
        if path.exists():
            return path
    return None


class Monitor:
    """A port-less JACK client whose :attr:`alive` turns False when the server goes.

    Two signals, because neither alone is reliable: libjack's ``jack_on_shutdown``
    (it does not always fire for a client that never activated) and the server's
    socket file vanishing or being replaced by a new server's.
    """

    _open: ClassVar[set[Monitor]] = set()
    _open_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, lib: Any, client: int, on_gone: Callable[[], None] | None) -> None:
        self._lib = lib
        self._client: int | None = client
        self._gone = threading.Event()
        self._on_gone = on_gone
        self._socket = _server_socket()
        self._inode = self._socket.stat().st_ino if self._socket else 0
        self._callback = _ShutdownCallback(self._on_shutdown)  # kept alive with self
        lib.jack_on_shutdown(client, self._callback, None)
        with Monitor._open_lock:
            Monitor._open.add(self)

    @classmethod
    def open(cls, on_gone: Callable[[], None] | None = None) -> Monitor | None:
        """A monitor on the current server, or None if libjack or the server is missing.

        ``on_gone`` is called (on a JACK thread) as soon as libjack reports the shutdown.
        """
        lib = _lib()
        if lib is None:
            return None
        with client_lock:
            client = lib.jack_client_open(b"improv-monitor", _NO_START_SERVER, None)
            if not client:
                return None
            return cls(lib, client, on_gone)

    def _on_shutdown(self, _arg: object) -> None:
        self._gone.set()
        if self._on_gone is not None:
            self._on_gone()

    @property
    def alive(self) -> bool:
        if self._gone.is_set():
            return False
        if self._socket is not None:
            try:
                if self._socket.stat().st_ino != self._inode:
                    return False  # a new server took the name
            except OSError:
                return False
        return True

    def close(self, timeout: float = -1) -> None:
        """Close the client (about a second when the server has already died).

        With a ``timeout``, give up (leaving the client open) if another thread holds
        the client lock that long: at exit, a hung client must not hang the process.
        """
        if not client_lock.acquire(timeout=timeout):
            return
        try:
            with Monitor._open_lock:
                Monitor._open.discard(self)
            client, self._client = self._client, None
            if client is not None:
                self._lib.jack_client_close(client)
        finally:
            client_lock.release()


@atexit.register
def _close_all() -> None:
    # No JACK thread may call back into a finalising interpreter.
    for monitor in list(Monitor._open):
        monitor.close(timeout=1.0)
