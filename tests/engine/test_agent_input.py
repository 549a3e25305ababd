"""The agent's input side under hostile input, end to end (loopback and real JACK
ports): nothing the performer sends can make improv deaf, silence its model, or let
what goes out on the wire differ from what is recorded and counted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from tests.engine.rig import Rig, call_notes, jack_wiring, unpaired


@pytest.fixture(params=["loopback", pytest.param("jack", marks=pytest.mark.jack)])
def wiring(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """:class:`Rig` arguments for the ports between the test and the agent."""
    if request.param == "loopback":
        yield {}
        return
    request.getfixturevalue("jack_server")
    with jack_wiring() as ports:
        yield ports


async def test_one_unterminated_sysex_does_not_make_improv_deaf(
    wiring: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """``F0 01 02`` and nothing more: the next call is heard, answered and counted."""
    call = call_notes(6.0)
    with caplog.at_level(logging.WARNING, logger="improv.io.messages"):
        async with Rig(**wiring) as rig:
            rig.performer_out.send(bytes([0xF0, 0x01, 0x02]))
            rig.play(call, at_beat=4.0)  # bars 1-2: no packet ending in F7 follows
            await asyncio.wait_for(rig.recorder.answered.wait(), 8.0)
            summary = await rig.stop()
    assert summary.notes_in == len(call)
    assert summary.malformed_in >= 1
    assert any("unterminated sysex" in r.getMessage() for r in caplog.records)
    assert summary.turns >= 1 and rig.note_ons(0)
    assert not unpaired(rig.received)
