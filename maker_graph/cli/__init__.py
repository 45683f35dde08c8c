"""The `maker-graph` command line.

Each sub-command lives in its own module of this package and registers itself
on `app` (from `maker_graph.cli.app`) when imported; `main` imports them all.
"""

from __future__ import annotations

import importlib

from .app import app

__all__ = ["app", "main"]

# One module per concern; a module that is not present is simply not offered.
_COMMAND_MODULES = (
    "hanoi",
    "plan",
    "log",
    "estimate",
    "plot",
    "config",
    "multiply",
    "tree",
)


def load_commands() -> None:
    for name in _COMMAND_MODULES:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise


def main() -> None:
    """Entry point of the `maker-graph` console script."""
    load_commands()
    app()
