"""The ``improv`` command: thin; each subcommand lives in ``improv.commands.<name>``.

A command module exposes ``register(subparsers)``, which adds its parser and sets
``run=function(args) -> int``. Modules are discovered, so adding a command is adding a
file; heavy imports (torch, mido) happen inside ``run`` so ``improv --help`` is quick.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import signal
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.logging import RichHandler

from improv import __version__, commands
from improv.errors import ImprovError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="improv", description="A real-time blues improvisation partner."
    )
    parser.add_argument("--version", action="version", version=f"improv {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or "_" in info.name:
            continue  # helpers and sub-commands (bench_model ...) register themselves
        module = importlib.import_module(f"improv.commands.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        code: int = args.run(args)
    except ImprovError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        return exc.exit_code
    except Terminated:
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return code


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, a service manager): a command stops as on Ctrl-C, running
    its clean-up (children stopped, files closed), then exits 143."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


if __name__ == "__main__":
    sys.exit(main())
