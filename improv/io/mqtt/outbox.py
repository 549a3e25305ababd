"""The bridge's outbox: bounded, O(1) to fill, with a drop policy per kind of message.

The agent fills it from the music's own code path, so every ``put`` is constant time and
never waits; the bridge's task empties it as fast as the broker takes messages. When the
broker is slow or gone, the kinds give way in order of how little they are worth late:
a beat is stale after one beat and is dropped first; the state only matters as its latest
value, so it is coalesced; phrases, metrics and control results are kept up to a bound,
the oldest dropped beyond it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from improv.io.mqtt.settings import OutboxLimits


class Kind(StrEnum):
    """Kinds of outgoing message, each with its own drop policy."""

    BEAT = "beat"
    STATE = "state"
    PHRASE = "phrase"
    METRICS = "metrics"
    RESULT = "result"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message waiting to go out. ``body`` is encoded by the bridge's task, not here."""

    kind: Kind
    topic: str
    body: Any
    t: float
    ts: float
    qos: int = 0
    retain: bool = False


@dataclass(slots=True)
class OutboxCounts:
    """What went through the outbox, per kind: queued, dropped, coalesced."""

    queued: dict[Kind, int] = field(default_factory=lambda: dict.fromkeys(Kind, 0))
    dropped: dict[Kind, int] = field(default_factory=lambda: dict.fromkeys(Kind, 0))
    coalesced: int = 0


class Outbox:
    """Bounded outgoing messages; ``pop`` serves results, state, beats, then the rest.

    ``online`` tells it whether a broker is there at all: while it is not, beats are
    dropped on arrival (nobody will want them later), the others wait within bounds.
    """

    def __init__(self, limits: OutboxLimits | None = None) -> None:
        self.limits = limits or OutboxLimits()
        self.counts = OutboxCounts()
        self.online = False
        self.ready = asyncio.Event()
        self._beats: deque[Outgoing] = deque()
        self._state: Outgoing | None = None
        self._kept: deque[Outgoing] = deque()
        self._results: deque[Outgoing] = deque()

    def __len__(self) -> int:
        waiting = len(self._beats) + len(self._kept) + len(self._results)
        return waiting + (self._state is not None)

    def put(self, item: Outgoing) -> bool:
        """Queue a message, dropping by policy; False when ``item`` itself was dropped."""
        kind = item.kind
        self.counts.queued[kind] += 1
        if kind is Kind.STATE:
            if self._state is not None:
                self.counts.coalesced += 1
            self._state = item
        elif kind is Kind.BEAT:
            if not self.online:
                self.counts.dropped[kind] += 1
                return False
            self._bounded(self._beats, item, self.limits.beats)
        elif kind is Kind.RESULT:
            self._bounded(self._results, item, self.limits.results)
        else:
            self._bounded(self._kept, item, self.limits.kept)
        self.ready.set()
        return True

    def pop(self) -> Outgoing | None:
        """The next message to publish, or None when nothing waits."""
        if self._results:
            return self._results.popleft()
        if self._state is not None:
            item, self._state = self._state, None
            return item
        if self._beats:
            return self._beats.popleft()
        if self._kept:
            return self._kept.popleft()
        return None

    def requeue(self, item: Outgoing) -> None:
        """Put back a message whose publishing failed, ahead of the others of its kind.

        A beat is not retried (it is stale by the time the broker is back) and a state
        is not retried when a newer one already waits.
        """
        if item.kind is Kind.BEAT:
            self.counts.dropped[Kind.BEAT] += 1
        elif item.kind is Kind.STATE:
            if self._state is None:
                self._state = item
        else:
            target = self._results if item.kind is Kind.RESULT else self._kept
            target.appendleft(item)
            bound = self.limits.results if item.kind is Kind.RESULT else self.limits.kept
            while len(target) > bound:
                self.counts.dropped[target.pop().kind] += 1
        self.ready.set()

    def drop_beats(self) -> None:
        """Forget waiting beats (the broker went away: they will be stale when it is back)."""
        self.counts.dropped[Kind.BEAT] += len(self._beats)
        self._beats.clear()

    def _bounded(self, queue: deque[Outgoing], item: Outgoing, bound: int) -> None:
        if len(queue) >= bound:
            self.counts.dropped[queue.popleft().kind] += 1
        queue.append(item)
