"""The layer rules of docs/ARCHITECTURE: each layer imported in a fresh interpreter.

Importing a layer must not drag in what the layer may not use, so the rules hold
without anyone remembering them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# What a layer's permitted third-party libraries load by themselves is not the layer's
# doing: torch, for one, imports asyncio. Those modules form each layer's baseline.
ALLOWED_LIBRARIES: dict[str, tuple[str, ...]] = {
    "improv.model": ("torch", "numpy"),
}

FORBIDDEN: dict[str, tuple[str, ...]] = {
    "improv.music": ("torch", "mido", "rtmidi", "asyncio", "aiomqtt", "paho"),
    "improv.tokens": ("torch", "mido", "rtmidi", "asyncio", "aiomqtt", "paho"),
    "improv.craft": (
        "torch",
        "mido",
        "rtmidi",
        "asyncio",
        "aiomqtt",
        "paho",
        "improv.model",
        "improv.engine",
        "improv.io",
    ),
    "improv.model": ("asyncio", "mido", "rtmidi", "aiomqtt", "paho"),
    "improv.io": ("torch", "improv.model"),
    "improv.engine.turns": ("torch", "mido", "rtmidi", "aiomqtt", "improv.model"),
}


def _loaded_after(imports: list[str]) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {imports!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def _import_modules(package: str) -> list[str]:
    """All modules of a package (or the module itself), by walking the source tree."""
    import importlib.util
    import pkgutil

    spec = importlib.util.find_spec(package)
    assert spec is not None, f"{package} is missing"
    if spec.submodule_search_locations is None:
        return [package]
    return [package] + [
        info.name
        for info in pkgutil.walk_packages(spec.submodule_search_locations, prefix=package + ".")
    ]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_what_it_may(layer: str) -> None:
    baseline = _loaded_after(list(ALLOWED_LIBRARIES.get(layer, ())))
    loaded = _loaded_after(_import_modules(layer)) - baseline
    offending = sorted(
        forbidden
        for forbidden in FORBIDDEN[layer]
        if forbidden in loaded or any(m.startswith(forbidden + ".") for m in loaded)
    )
    assert not offending, f"{layer} imports {offending}"


@pytest.mark.parametrize("layer", sorted(ALLOWED_LIBRARIES))
def test_layer_source_does_not_import_forbidden_directly(layer: str) -> None:
    """Where a baseline hides a module (torch loads asyncio), read the imports instead."""
    import ast
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec(layer)
    assert spec is not None and spec.submodule_search_locations is not None
    offending: list[str] = []
    for path in Path(next(iter(spec.submodule_search_locations))).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[layer]):
                    offending.append(f"{path.name}: {name}")
    assert not offending, f"{layer} imports {offending}"
