"""Keep a long jam's memory flat: fewer glibc malloc arenas.

glibc gives each thread that allocates a heap of its own (an "arena", up to eight per
core); the generator's worker threads allocate and free arrays of many sizes, their
arenas fragment, and a long gig's resident memory creeps up though no Python object is
kept (tracemalloc shows none). Two arenas hold part of it: a flood of 40,000 notes into
a Markov jam grew it by 0.83 KB a note with glibc's default, 0.17 KB with two arenas
(120,000 notes: 0.48 and 0.34 KB; the rest is not found yet).
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's malloc.h


def few_arenas(arenas: int = 2) -> bool:
    """Limit this process to ``arenas`` malloc arenas (before its threads start); False
    where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        log.debug("not glibc: malloc arenas left as they are")
        return False
