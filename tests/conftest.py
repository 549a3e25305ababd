"""Shared fixtures live in tests/fixtures/ (one module per real component)."""

pytest_plugins = [
    "tests.fixtures.data",
    "tests.fixtures.jack",
    "tests.fixtures.mqtt",
]
