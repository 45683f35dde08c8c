"""The root Typer application that every sub-command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="maker-graph",
    help="Run, plan and inspect MAKER-voted LangGraph tasks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one clear line to stderr and return the Exit to raise (never a traceback)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def check_output_file(path: str, option: str) -> None:
    """Refuse, before any work, an output path that cannot be written as a file.

    A directory, a parent that is a file, or a place that cannot be written would
    otherwise fail only after the whole run, as a traceback.

    Raises:
        typer.Exit: after one `error:` line (exit code 2).
    """
    import os

    target = os.path.abspath(path)
    if os.path.isdir(target):
        raise fail(f"{option} {path}: is a directory; name a file")
    if os.path.exists(target):
        if not os.access(target, os.W_OK):
            raise fail(f"{option} {path}: the file is not writable")
        return
    # Missing parents are created when the file is written: check the nearest that exists.
    parent = os.path.dirname(target)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise fail(f"{option} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK):
        raise fail(f"{option} {path}: cannot create files in {parent}")
