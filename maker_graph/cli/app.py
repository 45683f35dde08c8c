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
