"""Fixtures of the engine tests: ``wiring``, the ports between a test and its agent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.engine.rig import jack_wiring


@pytest.fixture(params=["loopback", pytest.param("jack", marks=pytest.mark.jack)])
def wiring(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """:class:`Rig` arguments for the ports between the test and the agent."""
    if request.param == "loopback":
        yield {}
        return
    request.getfixturevalue("jack_server")
    with jack_wiring() as ports:
        yield ports
