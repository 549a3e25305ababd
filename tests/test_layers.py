"""The layer rules of docs/ARCHITECTURE: each layer imported in a fresh interpreter.

Importing a layer must not drag in what the layer may not use, so the rules hold
without anyone remembering them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FORBIDDEN: dict[str, tuple[str, ...]] = {
    "improv.music": ("torch", "mido", "rtmidi", "asyncio", "aiomqtt", "paho"),
    "improv.tokens": ("torch", "mido", "rtmidi", "asyncio", "aiomqtt", "paho"),
    "improv.model": ("asyncio", "mido", "rtmidi", "aiomqtt", "paho"),
    "improv.io": ("torch", "improv.model"),
    "improv.engine.turns": ("torch", "mido", "rtmidi", "aiomqtt", "improv.model"),
}


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
    modules = _import_modules(layer)
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    offending = sorted(
        forbidden
        for forbidden in FORBIDDEN[layer]
        if forbidden in loaded or any(m.startswith(forbidden + ".") for m in loaded)
    )
    assert not offending, f"{layer} imports {offending}"
