"""The outbox's drop policy: beats first, state coalesced, the rest kept to a bound."""

from __future__ import annotations

from improv.io.mqtt.outbox import Kind, Outbox, Outgoing
from improv.io.mqtt.settings import OutboxLimits


def msg(kind: Kind, n: int = 0) -> Outgoing:
    return Outgoing(kind, kind.value, n, float(n), float(n))


def drain(box: Outbox) -> list[tuple[Kind, int]]:
    out = []
    while (item := box.pop()) is not None:
        out.append((item.kind, item.body))
    return out


def test_results_then_state_then_beats_then_the_rest() -> None:
    box = Outbox()
    box.online = True
    for item in (msg(Kind.PHRASE, 1), msg(Kind.BEAT, 2), msg(Kind.STATE, 3), msg(Kind.RESULT, 4)):
        box.put(item)
    assert len(box) == 4
    assert drain(box) == [(Kind.RESULT, 4), (Kind.STATE, 3), (Kind.BEAT, 2), (Kind.PHRASE, 1)]
    assert len(box) == 0


def test_beats_are_dropped_while_offline_and_beyond_their_small_bound() -> None:
    box = Outbox(OutboxLimits(beats=2))
    assert not box.put(msg(Kind.BEAT, 1))
    box.online = True
    for n in range(2, 6):
        assert box.put(msg(Kind.BEAT, n))
    assert drain(box) == [(Kind.BEAT, 4), (Kind.BEAT, 5)]
    assert box.counts.dropped[Kind.BEAT] == 3


def test_state_is_coalesced_to_the_latest() -> None:
    box = Outbox()
    for n in range(100):
        box.put(msg(Kind.STATE, n))
    assert drain(box) == [(Kind.STATE, 99)]
    assert box.counts.coalesced == 99
    assert box.counts.dropped[Kind.STATE] == 0


def test_phrases_and_metrics_are_kept_up_to_a_bound_oldest_dropped() -> None:
    box = Outbox(OutboxLimits(kept=3))
    for n in range(5):
        box.put(msg(Kind.PHRASE if n % 2 else Kind.METRICS, n))
    assert [n for _, n in drain(box)] == [2, 3, 4]
    assert box.counts.dropped[Kind.METRICS] == 1
    assert box.counts.dropped[Kind.PHRASE] == 1


def test_a_failed_message_goes_back_first_except_stale_beats_and_old_state() -> None:
    box = Outbox(OutboxLimits(kept=2))
    box.online = True
    box.put(msg(Kind.PHRASE, 1))
    box.put(msg(Kind.PHRASE, 2))
    box.requeue(msg(Kind.PHRASE, 0))  # over the bound: the newest waiting one goes
    box.requeue(msg(Kind.BEAT, 9))
    box.put(msg(Kind.STATE, 5))
    box.requeue(msg(Kind.STATE, 4))  # older than the waiting state
    assert drain(box) == [(Kind.STATE, 5), (Kind.PHRASE, 0), (Kind.PHRASE, 1)]
    assert box.counts.dropped[Kind.BEAT] == 1
    assert box.counts.dropped[Kind.PHRASE] == 1


def test_memory_stays_bounded_under_any_flood() -> None:
    limits = OutboxLimits(beats=4, kept=16, results=8)
    box = Outbox(limits)
    box.online = True
    for n in range(10_000):
        box.put(msg(list(Kind)[n % len(Kind)], n))
    assert len(box) <= limits.beats + limits.kept + limits.results + 1
