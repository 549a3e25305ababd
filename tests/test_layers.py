"""The layer rules of ARCHITECTURE.md, checked statically.

Every module's source is parsed and every import read, function-level ones included,
so a lazy import inside a function cannot slip past the rules. A layer may not import a
forbidden module directly, nor reach it through the project's own modules (the closure
of every import a layer's modules make inside ``improv``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

import improv

ROOT = Path(improv.__file__).resolve().parent

PURE = ("torch", "mido", "rtmidi", "asyncio", "aiomqtt", "paho")

FORBIDDEN: dict[str, tuple[str, ...]] = {
    "improv.music": PURE,
    "improv.tokens": PURE,
    "improv.craft": (*PURE, "improv.model", "improv.engine", "improv.io"),
    "improv.model": ("asyncio", "mido", "rtmidi", "aiomqtt", "paho", "improv.engine", "improv.io"),
    "improv.io": ("torch", "improv.model"),
    "improv.output": ("torch", "aiomqtt", "improv.model", "improv.engine", "improv.craft"),
    "improv.engine.turns": ("torch", "mido", "rtmidi", "aiomqtt", "improv.model"),
    "improv.timebase": (*PURE, "improv.io", "improv.output", "improv.engine", "improv.model"),
    "improv.smf": (*PURE, "improv"),  # the byte format: nothing of the project
}


def _module_name(path: Path) -> str:
    parts = ["improv", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in ROOT.rglob("*.py")}


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute name of a (possibly relative) ``from`` import."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def imports_in(source: str, module: str, path: Path) -> frozenset[str]:
    """Every name a module's source imports, wherever in it the import stands."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, path, node)
            names.add(base)
            # ``from improv.x import y`` may name the module improv.x.y
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(names)


@cache
def imports_of(module: str) -> frozenset[str]:
    path = _modules()[module]
    return imports_in(path.read_text(), module, path)


def _internal(name: str) -> str | None:
    """The project module an imported name refers to, if any."""
    while name:
        if name in _modules():
            return name
        name = name.rpartition(".")[0]
    return None


def reach(module: str) -> dict[str, str]:
    """Every name reachable from ``module`` through project modules, with one module
    that imports it (for the failure message)."""
    seen: dict[str, str] = {}
    stack = [module]
    visited: set[str] = set()
    while stack:
        current = stack.pop()
        if current in visited:
            continue
        visited.add(current)
        for name in imports_of(current):
            seen.setdefault(name, current)
            inner = _internal(name)
            if inner is not None and inner not in visited:
                stack.append(inner)
    return seen


def _layer_modules(layer: str) -> Iterator[str]:
    for name in _modules():
        if name == layer or name.startswith(layer + "."):
            yield name


def _forbidden(name: str, rules: tuple[str, ...]) -> str | None:
    return next((rule for rule in rules if name == rule or name.startswith(rule + ".")), None)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_what_it_may(layer: str) -> None:
    modules = list(_layer_modules(layer))
    assert modules, f"{layer} has no modules"
    offending = sorted(
        f"{module} reaches {name} (imported by {by})"
        for module in modules
        for name, by in reach(module).items()
        if _forbidden(name, FORBIDDEN[layer])
    )
    assert not offending, "\n".join(offending)


def test_the_walk_sees_function_level_and_relative_imports() -> None:
    """The checker itself: an import inside a function and a relative import count."""
    source = "def f():\n    import torch\n\nfrom .pitch import Key\n"
    found = imports_in(source, "improv.music.probe", ROOT / "music" / "probe.py")
    assert "torch" in found
    assert "improv.music.pitch" in found


def test_the_closure_follows_project_modules() -> None:
    """The engine's responders reach torch only through the model layer's lazy imports."""
    reached = reach("improv.engine.responders")
    assert any(name.startswith("improv.model") for name in reached)
    assert "torch" in reached
