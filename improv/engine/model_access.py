"""Which models a control request may load: MQTT stays inside its authority.

Anyone on the broker can send ``control/set``; a request must not make the agent read
any file it can reach (``/etc/shadow``, ``/dev/zero``, a planted pickle). A request
may name the built-in models (``rules``, ``markov``), a shipped model (``lstm``), or a
checkpoint inside a model folder the person running the jam configured
(``--models-dir``, ``models-dir`` in the TOML file), links and ``..`` resolved first.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from improv.io.control import ControlError

BUILT_IN = ("rules", "markov")


def allowed_model(spec: str, folders: Sequence[Path]) -> str:
    """``spec`` when a control request may load it; else :class:`ControlError` saying why."""
    from improv.model.registry import SUFFIX, shipped_models

    if spec in BUILT_IN or spec in shipped_models():
        return spec
    if not folders:
        raise ControlError(
            f"model {spec!r}: not a shipped model ({', '.join([*BUILT_IN, *shipped_models()])}) "
            "and no model folder is configured (--models-dir)"
        )
    real = Path(os.path.realpath(spec))
    roots = [Path(os.path.realpath(folder)) for folder in folders]
    if not any(real.is_relative_to(root) for root in roots):
        raise ControlError(f"model {spec!r}: outside the model folders")
    try:
        info = os.stat(real)
    except OSError:
        raise ControlError(f"model {spec!r}: no such file in the model folders") from None
    if not stat.S_ISREG(info.st_mode) or real.suffix != SUFFIX:
        raise ControlError(f"model {spec!r}: not a {SUFFIX} checkpoint file")
    return str(real)
