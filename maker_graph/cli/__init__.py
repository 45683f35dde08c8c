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
    """Entry point of the `maker-graph` console script.

    A bad flag or value (an unknown option, a value of the wrong type) is one
    `error: ...` line and exit code 2, like the commands' own checks, instead of
    a usage box.
    """
    import signal
    import sys

    import typer

    # SIGTERM (kill, a container stop) stops a run like Ctrl-C: what was decided is
    # committed and the resume command printed, instead of dying with no word.
    signal.signal(signal.SIGTERM, _terminate_like_interrupt)
    load_commands()
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except typer.TyperException as exc:  # click's usage errors, as typer ships them
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare command: show its help
            exc.show()  # type: ignore[attr-defined]
        else:
            ctx = getattr(exc, "ctx", None)
            where = f"{ctx.command_path} --help" if ctx is not None else "--help"
            message = exc.format_message()  # type: ignore[attr-defined]
            typer.echo(f"error: {message} (see {where})", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except OSError as exc:  # the environment (a path, a disk), never worth a traceback
        where = f": {exc.filename}" if exc.filename else ""
        typer.echo(f"error: {exc.strerror or exc}{where}", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _terminate_like_interrupt(signum: int, frame: object) -> None:
    """Hand SIGTERM to whatever handles SIGINT now: asyncio's runner cancels its main
    task (so `finally` blocks commit), plain code gets `KeyboardInterrupt`."""
    import signal

    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)  # type: ignore[arg-type]
    else:
        raise KeyboardInterrupt
