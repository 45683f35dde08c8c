"""The `maker-graph` command line.

Each sub-command lives in its own module of this package and registers itself
on `app` (from `maker_graph.cli.app`) when imported; `main` imports them all.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

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
    a usage box. Ctrl-C or SIGTERM at any moment is one `interrupted` line (with
    the resume command when a run directory is there to resume) and exit code 130.
    """
    import signal
    import sys

    import typer

    # SIGTERM (kill, a container stop) stops a run like Ctrl-C: what was decided is
    # committed and the resume command printed, instead of dying with no word.
    signal.signal(signal.SIGTERM, _terminate_like_interrupt)
    try:
        load_commands()
        command = typer.main.get_command(app)
        _guard_interrupts(command)
        code = command(standalone_mode=False)
    except _Interrupted as stop:
        typer.echo(stop.message, err=True)
        sys.exit(130)
    except KeyboardInterrupt:  # while the commands load, or while click parses
        typer.echo("interrupted", err=True)
        sys.exit(130)
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


class _Interrupted(Exception):
    """A KeyboardInterrupt out of a command body, carried past typer to `main`.

    Typer turns a KeyboardInterrupt from a command into a silent exit code 130 (no
    word on stderr): a Ctrl-C or SIGTERM during a command's imports or model building,
    before the command's own handler, ended with nothing said. An ordinary exception
    passes through typer, so `main` prints the one line.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _guard_interrupts(command: Any) -> None:
    """Wrap the callback of `command` and of every sub-command under it (once)."""
    callback = getattr(command, "callback", None)
    if callback is not None and not getattr(callback, "_guards_interrupts", False):
        command.callback = _guarded(callback)
    for sub in getattr(command, "commands", {}).values():
        _guard_interrupts(sub)


def _guarded(callback: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(*args: Any, **params: Any) -> Any:
        try:
            return callback(*args, **params)
        except KeyboardInterrupt:
            raise _Interrupted(_interrupted_message(params)) from None

    guarded._guards_interrupts = True  # type: ignore[attr-defined]
    return guarded


def _interrupted_message(params: dict[str, Any]) -> str:
    """`interrupted`, plus how to continue when the command resumes a run that exists.

    The commands that run tasks print their own message from their run loop; this one
    is for an interrupt before (or after) it, e.g. while a resume builds its model:
    the run directory then already holds the committed steps.
    """
    import os
    import shlex
    import sys

    if not isinstance(params.get("resume"), bool):
        return "interrupted"  # the command has no --resume flag: nothing to continue
    run_dir, store = params.get("run_dir"), params.get("store")
    exists = run_dir is not None and os.path.isdir(run_dir) and any(os.scandir(run_dir))
    if store is None and not exists:
        return "interrupted"
    argv = [arg for arg in sys.argv[1:] if arg != "--fresh"]  # --fresh would delete it
    if "--resume" not in argv:
        argv.append("--resume")
    if store is not None and str(store).startswith(("postgres://", "postgresql")):
        from ..runlog.postgres import redact

        argv = [redact(arg) if arg == store else arg for arg in argv]
    return f"interrupted; resume with: {shlex.join(['maker-graph', *argv])}"


def _terminate_like_interrupt(signum: int, frame: object) -> None:
    """Hand SIGTERM to whatever handles SIGINT now: asyncio's runner cancels its main
    task (so `finally` blocks commit), plain code gets `KeyboardInterrupt`."""
    import signal

    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)  # type: ignore[arg-type]
    else:
        raise KeyboardInterrupt
