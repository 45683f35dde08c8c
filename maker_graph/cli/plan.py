"""`maker-graph plan`: size a voted run before paying for it (the paper's Fig. 6, per model).

Given the steps of a task and a model's per-step success rate, prints the
smallest margin k that reaches the target success probability, the predicted
probability of solving the whole task, the expected samples and their cost.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .app import app, fail

__all__ = ["plan"]


@app.command()
def plan(
    steps: int | None = typer.Option(None, "--steps", help="Steps of the task (s)."),
    p: float | None = typer.Option(
        None, "--p", help="Per-step success rate of one valid sample."
    ),
    target: float | None = typer.Option(
        None,
        "--target",
        help="Required chance of a flawless run (default 0.95, or the estimate file's).",
    ),
    m: int = typer.Option(1, "--m", help="Task steps per agent call."),
    v: float = typer.Option(1.0, "--v", help="Share of samples that pass the red flags."),
    price_in: float = typer.Option(0.0, "--price-in", help="Price per million input tokens."),
    price_out: float = typer.Option(0.0, "--price-out", help="Price per million output tokens."),
    tokens_in: float = typer.Option(0.0, "--tokens-in", help="Input tokens per sample."),
    tokens_out: float = typer.Option(0.0, "--tokens-out", help="Output tokens per sample."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
    estimate: Annotated[
        Path | None,
        typer.Option(
            "--estimate",
            help="Plan every model of a `maker-graph estimate --json` file (p, v, tokens "
            "and prices from the file; --steps, --target and --price-* override).",
        ),
    ] = None,
) -> None:
    """Choose k for a task and forecast its success probability, samples and cost."""
    from ..scaling import plan as make_plan

    if target is not None and not 0.0 < target < 1.0:
        raise fail(f"--target must be in (0, 1), got {target}")
    if estimate is not None:
        from ..errors import ConfigurationError
        from .estimate import plan_from_estimate

        if steps is not None and steps < 1:
            raise fail(f"--steps must be >= 1, got {steps}")
        try:
            plan_from_estimate(
                estimate,
                steps=steps,
                target=target,
                price_in=price_in,
                price_out=price_out,
                as_json=as_json,
            )
        except ConfigurationError as exc:
            raise fail(str(exc)) from None
        return
    if steps is None or p is None:
        raise fail("give --steps and --p (or --estimate FILE from `maker-graph estimate`)")
    if target is None:
        target = 0.95
    try:
        result = make_plan(
            p,
            steps,
            target=target,
            m=m,
            v=v,
            price_in=price_in,
            price_out=price_out,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
        )
    except (ValueError, TypeError) as exc:
        # The scaling functions name the argument; the CLI user knows it as a flag.
        raise fail(str(exc).splitlines()[0].replace("p=", "--p ", 1)) from None
    data = result.to_dict()
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(f"steps:                 {steps:,} (m = {m} per call)")
    passing = f", red-flag pass rate v: {v:g}" if v != 1 else ""
    typer.echo(f"per-step success p:    {p:g}{passing}")
    typer.echo(f"k_min:                 {result.k_min} (target {target:g})")
    typer.echo(f"predicted p_full:      {result.p_full:.6f}")
    typer.echo(f"error per vote:        {result.step_error:.3e}")
    typer.echo(f"valid samples / step:  {result.valid_samples_per_step:.4f}")
    typer.echo(f"samples / step:        {result.samples_per_step:.4f}")
    typer.echo(f"expected samples:      {result.total_samples:,.0f}")
    if result.cost_per_sample:
        typer.echo(f"cost per sample:       {result.cost_per_sample:.6g}")
        typer.echo(f"expected cost:         {result.total_cost:,.2f}")
