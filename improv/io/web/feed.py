"""The agent's side of the web page: a bounded queue, constant time to fill.

The agent's observer hook puts into it from the music's own code path; the server's
task takes everything out and does the encoding and the sending. When nobody empties
it fast enough, the oldest messages go (a live view wants the latest), and each one
dropped is counted.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Final

FEED_LIMIT: Final = 2048
"""Messages waiting for the server's task; about a minute of a dense jam."""


class Feed:
    """Bounded, drop-oldest messages (``(kind, body)``) for the server's task."""

    def __init__(self, limit: int = FEED_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"feed limit must be at least 1: {limit}")
        self._items: deque[tuple[str, Any]] = deque(maxlen=limit)
        self.ready = asyncio.Event()
        self.put_count = 0
        self.dropped = 0

    def put(self, kind: str, body: Any) -> None:
        """Queue one message; never waits (the oldest goes when full, counted)."""
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
        self._items.append((kind, body))
        self.put_count += 1
        self.ready.set()

    def take(self) -> list[tuple[str, Any]]:
        """Everything waiting, oldest first; the queue is empty after."""
        items = list(self._items)
        self._items.clear()
        self.ready.clear()
        return items

    def __len__(self) -> int:
        return len(self._items)
