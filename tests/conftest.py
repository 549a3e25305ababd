"""Shared fixtures live in tests/fixtures/ (one module per real component).

scripts/test.sh gives the realtime tests one rerun (pytest-rerunfailures): on a shared
two-core machine the rest of the suite can stall a JACK client or the agent's loop now
and then. A rerun is never silent: the first attempt's failure is printed in full at the
end, under "failed first attempts".
"""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.fixtures.data",
    "tests.fixtures.jack",
    "tests.fixtures.mqtt",
]

_reruns: list[pytest.TestReport] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.outcome == "rerun":
        _reruns.append(report)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _reruns:
        return
    terminalreporter.section("failed first attempts (rerun)")
    for report in _reruns:
        terminalreporter.write_line(f"--- {report.nodeid} ({report.when})")
        terminalreporter.write_line(report.longreprtext)
        for title, content in report.sections:
            if "jackd" in title or "log" in title:
                terminalreporter.write_line(f"[{title}]\n{content}")
