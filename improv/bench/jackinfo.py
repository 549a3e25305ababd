"""What the JACK server says about itself: its period, and whether a port is connected.

The period bounds the quantisation JACK's MIDI transport adds (an event waits for the
next process cycle), so the report states it next to the measured transport latency.
Port connections tell when a spawned agent has attached to the harness's ports.
Uses the libjack :mod:`improv.io.midi.jackmon` loads, so both speak to the same server.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from improv.io.midi import jackmon

_NO_START_SERVER = 0x01


@dataclass(frozen=True, slots=True)
class JackPeriod:
    frames: int
    rate: int

    @property
    def ms(self) -> float:
        return 1000.0 * self.frames / self.rate


def _open() -> tuple[Any, int] | None:
    lib = jackmon._lib()
    if lib is None:
        return None
    client = lib.jack_client_open(b"improv-bench-info", _NO_START_SERVER, None)
    return (lib, client) if client else None


@contextmanager
def _info_client() -> Iterator[tuple[Any, int] | None]:
    """A short-lived client of the running server (None without one), closed after use."""
    with jackmon.client_lock:
        opened = _open()
        if opened is None:
            yield None
            return
        try:
            yield opened
        finally:
            opened[0].jack_client_close(opened[1])


def period() -> JackPeriod | None:
    """The running server's period (frames, sample rate); None without a server."""
    with _info_client() as opened:
        if opened is None:
            return None
        lib, client = opened
        fn = lib.jack_get_buffer_size
        fn.restype, fn.argtypes = ctypes.c_uint32, [ctypes.c_void_p]
        rate_fn = lib.jack_get_sample_rate
        rate_fn.restype, rate_fn.argtypes = ctypes.c_uint32, [ctypes.c_void_p]
        return JackPeriod(int(fn(client)), int(rate_fn(client)))


def connections(port: str) -> int | None:
    """How many connections a JACK port has (None: no server or no such port)."""
    with _info_client() as opened:
        if opened is None:
            return None
        lib, client = opened
        by_name = lib.jack_port_by_name
        by_name.restype, by_name.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p]
        connected = lib.jack_port_connected
        connected.restype, connected.argtypes = ctypes.c_int, [ctypes.c_void_p]
        handle = by_name(client, port.encode())
        return int(connected(handle)) if handle else None


_XrunCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)


class XrunCounter:
    """Counts the server's xruns while open: cycles a client did not finish in time.

    On an overloaded machine a non-real-time JACK server runs late; a late client's
    MIDI is then lost or replaced by the previous cycle's, which the harness would
    otherwise blame on the agent. The count comes from JACK's notification thread.
    """

    def __init__(self) -> None:
        self.count = 0
        self.times: list[float] = []  # monotonic, when each was reported
        self._lib: Any = None
        self._client: int | None = None
        self._callback = _XrunCallback(self._on_xrun)  # kept alive with self

    def _on_xrun(self, _arg: object) -> int:
        self.count += 1
        self.times.append(time.monotonic())
        return 0

    def open(self) -> bool:
        with jackmon.client_lock:
            opened = _open()
            if opened is None:
                return False
            lib, client = opened
            lib.jack_set_xrun_callback.argtypes = [ctypes.c_void_p, _XrunCallback, ctypes.c_void_p]
            lib.jack_activate.argtypes = [ctypes.c_void_p]
            lib.jack_set_xrun_callback(client, self._callback, None)
            if lib.jack_activate(client) != 0:
                lib.jack_client_close(client)
                return False
            self._lib, self._client = lib, client
        return True

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with jackmon.client_lock:
                self._lib.jack_deactivate.argtypes = [ctypes.c_void_p]
                self._lib.jack_deactivate(client)
                self._lib.jack_client_close(client)
