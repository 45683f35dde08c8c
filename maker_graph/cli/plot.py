"""`maker-graph plot`: the paper's plots for a run (`--run-dir`) or an estimate (`--estimate`).

maker-graph plot --run-dir runs/demo            # -> runs/demo/plots/*.png, *.svg
maker-graph plot --estimate est.json --out img  # -> img/*.png, *.svg
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigurationError
from .app import app, fail

__all__ = ["plot_command"]


@app.command("plot")
def plot_command(
    run_dir: Annotated[
        Path | None,
        typer.Option(
            "--run-dir",
            help="A run directory: undecided steps per round, samples "
            "per step, red flags along the run.",
        ),
    ] = None,
    estimate_file: Annotated[
        Path | None,
        typer.Option(
            "--estimate",
            help="An estimate file (`maker-graph estimate --json`): "
            "error vs length, collisions vs cap, p_full vs k, cost vs steps.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Output directory (default: RUN_DIR/plots, or "
            "ESTIMATE-plots next to the estimate file).",
        ),
    ] = None,
    formats: Annotated[
        list[str] | None,
        typer.Option(
            "--format", help="png, svg or pdf; repeat for several (default: png and svg)."
        ),
    ] = None,
) -> None:
    """Draw the plots of a run or of a pilot estimate (PNG and SVG)."""
    if (run_dir is None) == (estimate_file is None):
        raise fail("give exactly one of --run-dir DIR or --estimate FILE")
    chosen = tuple(formats or ("png", "svg"))
    bad = [f for f in chosen if f not in ("png", "svg", "pdf")]
    if bad:
        raise fail(f"--format must be png, svg or pdf, got {', '.join(bad)}")
    from ..plots import plot_estimate, plot_run

    try:
        if estimate_file is not None:
            if not estimate_file.is_file():
                raise fail(f"--estimate {estimate_file} is not a file")
            where = out or estimate_file.with_name(estimate_file.stem + "-plots")
            paths = plot_estimate(estimate_file, where, formats=chosen)
        elif run_dir is not None:
            if not run_dir.is_dir():
                raise fail(f"--run-dir {run_dir} is not a directory")
            paths = plot_run(run_dir, out, formats=chosen)
    except ConfigurationError as exc:
        raise fail(str(exc)) from None
    for path in paths:
        typer.echo(str(path))
