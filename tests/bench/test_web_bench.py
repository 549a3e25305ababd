"""The web page benchmark, run whole (``-m bench``): one run without the page and one
with three websocket clients, each client receiving the jam as it goes."""

from __future__ import annotations

import argparse

import pytest

from improv.bench.web_bench import bench

pytestmark = pytest.mark.bench


async def test_the_benchmark_compares_runs_with_and_without_the_page() -> None:
    args = argparse.Namespace(
        tempo=300.0, choruses=1, model="rules", repeat=1, clients=3, kind="ws", sender="thread"
    )
    result = await bench(args)
    without, with_page = result["runs"]
    assert without["clients"] == 0 and with_page["clients"] == 3
    assert with_page["feed_dropped"] == 0 and with_page["client_dropped"] == 0
    assert len(with_page["received"]) == 3 and min(with_page["received"]) > 100
    assert result["messages_without_page"] > 20 and result["messages_with_page"] > 20
    print(
        f"send error p99 {result['send_error_ms_p99_without_page']:.3f} ms without the page, "
        f"{result['send_error_ms_p99_with_page']:.3f} ms with three clients"
    )
