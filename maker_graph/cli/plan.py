"""`maker-graph plan`: size a voted run before paying for it (the paper's Fig. 6, per model).

Given the steps of a task and a model's per-step success rate, prints the
smallest margin k that reaches the target success probability, the predicted
probability of solving the whole task, the expected samples and their cost.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from ._options import PriceIn, PriceOut
from .app import app, fail

__all__ = ["plan"]


@app.command()
def plan(
    steps: int | None = typer.Option(None, "--steps", help="Steps of the task (s)."),
    p: float | None = typer.Option(None, "--p", help="Per-step success rate of one valid sample."),
    target: float | None = typer.Option(
        None,
        "--target",
        help="Required chance of a flawless run (default 0.95, or the estimate file's).",
    ),
    m: int = typer.Option(1, "--m", help="Task steps per agent call."),
    v: float = typer.Option(1.0, "--v", help="Share of samples that pass the red flags."),
    price_in: PriceIn = 0.0,
    price_out: PriceOut = 0.0,
    tokens_in: float = typer.Option(0.0, "--tokens-in", help="Input tokens per sample."),
    tokens_out: float = typer.Option(0.0, "--tokens-out", help="Output tokens per sample."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
    stuck: float = typer.Option(
        0.0,
        "--stuck",
        help="Share of steps on which the model is stuck on one wrong answer "
        "(from `maker-graph estimate`); 0 assumes independent errors.",
    ),
    stuck_error: float = typer.Option(
        1.0,
        "--stuck-error",
        help="Per-sample error rate on stuck steps (default 1: always the same wrong answer).",
    ),
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
    if not 0.0 <= stuck < 1.0 or not 0.0 <= stuck_error <= 1.0:
        raise fail(
            f"--stuck must be in [0, 1) and --stuck-error in [0, 1], got {stuck}, {stuck_error}"
        )
    if stuck > 0:
        _print_stuck(
            data,
            p=p,
            steps=steps,
            target=target,
            v=v,
            stuck=stuck,
            stuck_error=stuck_error,
            as_json=as_json,
        )
        return
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


def _print_stuck(
    independent: dict[str, float],
    *,
    p: float,
    steps: int,
    target: float,
    v: float,
    stuck: float,
    stuck_error: float,
    as_json: bool,
) -> None:
    """The plan when a share of steps is stuck; the independence plan only beside it."""
    from ..correlation import CorrelationFit

    # p is the overall per-sample success rate; the ordinary steps' error is what is left
    # once the stuck steps' share of it is taken out.
    e = max(0.0, min(1.0, ((1.0 - p) - stuck * stuck_error) / (1.0 - stuck)))
    fit = CorrelationFit.assumed(h=stuck, e=e, c=stuck_error)
    chosen, best = fit.search_k(steps, target)
    k = chosen if chosen is not None else best
    err = fit.step_error(k)
    p_full = math.exp(steps * math.log1p(-err)) if err < 1 else 0.0
    samples = fit.valid_samples(k) / v
    data = {
        "reachable": chosen is not None,
        "k_min": chosen,
        "best_k": k,
        "step_error": err,
        "p_full": p_full,
        "irreducible_step_error": fit.irreducible(),
        "samples_per_step": samples,
        "total_samples": samples * steps,
        "stuck": stuck,
        "stuck_error": stuck_error,
        "ordinary_step_error": e,
        "if_independent": independent,
    }
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(
        f"steps:                 {steps:,}; stuck on {stuck:.2%} of steps "
        f"(error {stuck_error:g} there), ordinary-step error {e:.4g}"
    )
    if chosen is None:
        typer.echo(f"k_min:                 none: no margin reaches p_full >= {target:g}")
        typer.echo(
            f"lowest error per vote: {err:.3e} at k = {k} (irreducible "
            f"{fit.irreducible():.3e} as k grows); p_full there {p_full:.3g}"
        )
    else:
        typer.echo(f"k_min:                 {chosen} (target {target:g})")
        typer.echo(f"predicted p_full:      {p_full:.6f}")
        typer.echo(f"error per vote:        {err:.3e}")
        typer.echo(f"samples / step:        {samples:.4f}")
        typer.echo(f"expected samples:      {samples * steps:,.0f}")
    typer.echo(
        f"if errors were independent: k_min {independent['k_min']:.0f}, p_full "
        f"{independent['p_full']:.6f} (what the scaling laws alone would promise)"
    )
