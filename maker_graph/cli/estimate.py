"""`maker-graph estimate`: measure models on random steps, then plan the full run.

    maker-graph estimate hanoi --disks 20 --model openai:gpt-4.1-mini \\
        --model openai:gpt-4.1-nano --steps 1000 --samples-per-step 2 --json est.json

samples every model on the same random steps with known answers (in parallel,
rate limited), prints p with its confidence interval, the red-flag pass rate v,
mean tokens, the error rate against answer length, collisions, and the plan
(k_min, p_full, expected samples and cost) as one row per model, cheapest
first. `--json` keeps every sample, for `maker-graph plot --estimate` and
`maker-graph plan --estimate`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import ConfigurationError
from ._options import (
    BaseUrl,
    MaxRetries,
    Prices,
    RedFlagTokens,
    RequestsPerSecond,
    Timeout,
    check_at_least,
)
from .app import app, fail

__all__ = ["estimate_command", "plan_from_estimate", "print_estimate"]


def _task_names() -> list[str]:
    from ..config.registry import registry

    return registry.names("task")


def _param_value(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def _build_task(name: str, disks: int, params: list[str]) -> tuple[Any, Any]:
    """The task and its registry entry; Hanoi keeps its --disks option."""
    from ..config.registry import registry

    entry = registry.get("task", name)
    values: dict[str, Any] = {"disks": disks} if name == "hanoi" else {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"--task-param takes NAME=VALUE, got {item!r}")
        values[key.strip()] = _param_value(value.strip())
    problem = entry.check_params(values)
    if problem is not None:
        raise ConfigurationError(problem)
    task = entry.obj(**values)
    if not callable(getattr(task, "true_step", None)):
        raise ConfigurationError(
            f"task {name!r} has no true_step(): estimate needs a TaskWithTruth"
        )
    return task, entry


def _fmt_money(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x == 0:
        return "$0"
    if x < 0.01:
        return f"${x:.3g}"
    return f"${x:,.2f}"


def _failures_text(failures: dict[str, int]) -> str:
    """Provider failures by kind, `timeout 12, rate_limit 3` (empty when there were none)."""
    return ", ".join(f"{kind} {n}" for kind, n in failures.items())


def _fmt_stuck(m: Any) -> str:
    fit = m.correlation
    if fit is None:
        return "?"
    return f"{fit.h:.1%}" if fit.detected else "0"


def _fmt_p_full(plan: Any) -> str:
    def one(x: float) -> str:
        return f"{x:.3f}" if x >= 1e-3 or x == 0 else f"{x:.1e}"

    if plan.p_full_low is not None and plan.p_full_low < plan.p_full - 5e-4:
        return f"{one(plan.p_full)} (>={one(plan.p_full_low)})"
    return one(plan.p_full)


def _fmt_count(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:,.2f} M"
    if x >= 1e4:
        return f"{x / 1e3:,.1f} k"
    return f"{x:,.0f}"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """Plain aligned columns (first left, the rest right): readable in logs and docs."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def print_estimate(report: Any, console: Any | None = None, *, details: bool = True) -> None:
    """Print an `EstimateReport`: the per-model table (cheapest first) and the details.

    Used by `maker-graph estimate` and by `maker-graph plan --estimate`.
    """
    from rich.console import Console

    console = console or Console(highlight=False, soft_wrap=True)
    cap = report.max_output_tokens
    params = ", ".join(f"{k} {v}" for k, v in report.params.items())
    console.print(
        f"{report.task}{f' ({params})' if params else ''}: {report.task_steps:,} steps; pilot "
        f"{report.pilot_steps:,} random steps x {report.samples_per_step} samples; "
        f"length cap {cap if cap is not None else 'none'} tokens; target p_full "
        f">= {report.target:g}",
        markup=False,
    )
    # The plan under the measured correlation comes first; what independent errors would
    # promise is only ever printed beside it, under its own label.
    headers = [
        "model",
        "p",
        "95% CI",
        "v",
        "in tok",
        "out tok",
        "$/sample",
        "stuck",
        "k_min",
        "p_full",
        "samples/step",
        "samples",
        "cost",
        "if independent: k_min",
        "p_full",
    ]
    rows = []
    for m in report.models:
        plan = m.plan
        reached = plan is not None and plan.k_min is not None
        rows.append(
            [
                m.model,
                f"{m.p:.4f}" if m.p is not None else "-",
                f"[{m.p_low:.4f}, {m.p_high:.4f}]" if m.p is not None else "-",
                f"{m.v:.3f}",
                f"{m.mean_input_tokens:,.0f}",
                f"{m.mean_output_tokens:,.0f}",
                _fmt_money(m.cost_per_sample),
                _fmt_stuck(m),
                (str(plan.k_min) if reached else "none") if plan else "-",
                _fmt_p_full(plan) if plan else "-",
                f"{plan.samples_per_step:.2f}" if reached and plan else "-",
                _fmt_count(plan.total_samples) if reached and plan else "-",
                _fmt_money(plan.total_cost) if reached and plan else "-",
                str(plan.independent_k_min) if plan and plan.independent_k_min else "-",
                f"{plan.independent_p_full:.3f}"
                if plan and plan.independent_p_full is not None
                else "-",
            ]
        )
    for text in _table(headers, rows):
        console.print(text, markup=False, overflow="ignore", crop=False, soft_wrap=True)
    console.print(
        "stuck: share of steps on which the model gives one wrong answer again and again "
        "(measured from repeat samples; '?' with one sample a step). k_min, p_full and cost "
        "are forecast under it; 'if independent' is what the independence assumption would "
        "promise at the same k, for comparison only.",
        markup=False,
        style="dim",
    )
    if len(report.models) > 1:
        console.print(report.choice(), markup=False)
    if not details:
        return
    for m in report.models:
        console.print(m.model, markup=False, style="bold")
        flags = ", ".join(f"{r} {n}" for r, n in m.red_flags.items()) or "none"
        fails = _failures_text(m.provider_failures) or "none"
        console.print(
            f"  samples {m.samples:,}, valid {m.valid:,}, correct {m.correct:,}; red flags: "
            f"{flags}; provider failures (retried): {fails}"
            + (f"; gave up on {m.gave_up}" if m.gave_up else "")
        )
        bins = "  ".join(
            f"{b.low}-{b.high if b.high is not None else ''}: "
            f"{100 * b.error_rate:.1f}% of {b.samples:,}"
            for b in m.length_bins
        )
        console.print(f"  error rate by output tokens: {bins or '-'}")
        if report.samples_per_step >= 2:
            console.print(
                f"  collisions (steps with two wrong valid samples): {m.collisions} "
                f"({m.same_answer_collisions} with the same wrong answer); "
                f"{m.expected_collisions:.2f} expected if errors were independent"
            )
        fit = m.correlation
        if fit is not None and m.p is not None:
            c_text = "c fixed at 1: two samples a step" if fit.c_fixed else f"c {fit.c:.3f}"
            verdict = "correlated" if fit.detected else "consistent with independent errors"
            console.print(
                f"  correlation: {verdict} (likelihood-ratio {fit.lr_statistic:.1f} over "
                f"{fit.steps:,} steps); stuck share {fit.h:.4f} (fit {fit.h_raw:.4f}), "
                f"ordinary-step error {fit.e:.4f}, {c_text}; two wrong answers agree "
                f"{fit.spread:.2f} of the time (1: one rival)"
            )
            parts = []
            for k in (1, 2, 3, 5):
                f = m.forecast(k)
                ind = (
                    f"{f.independent_step_error:.2e}"
                    if f.independent_step_error is not None
                    else "-"
                )
                parts.append(
                    f"k={k}: {f.step_error:.2e} [{f.step_error_low:.2e}, "
                    f"{f.step_error_high:.2e}] (if independent {ind})"
                )
            console.print("  step error forecast: " + "; ".join(parts))
        if m.note:
            console.print(f"  note: {m.note}")


@app.command("estimate")
def estimate_command(
    task_name: str = typer.Argument(
        ...,
        metavar="TASK",
        help="A registered task with ground truth: hanoi, long_addition, or your own.",
    ),
    disks: int = typer.Option(20, "--disks", help="Hanoi: number of disks (2**N - 1 steps)."),
    task_params: Annotated[
        list[str] | None,
        typer.Option(
            "--task-param",
            help="NAME=VALUE for the task's factory (e.g. digits=200 for long_addition); repeat.",
        ),
    ] = None,
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="simulated[:ERROR_RATE] (default), simulated-chat, or PROVIDER:MODEL; "
            "repeat to compare.",
        ),
    ] = None,
    steps: int = typer.Option(1000, "--steps", help="Random steps to sample."),
    samples_per_step: int = typer.Option(
        2, "--samples-per-step", help="Independent samples per step (2+ measures collisions)."
    ),
    json_path: Annotated[
        Path | None,
        typer.Option("--json", help="Write the estimate (every sample included) here."),
    ] = None,
    seed: int = typer.Option(0, "--seed", help="Seed of the step choice and simulated models."),
    target: float = typer.Option(0.95, "--target", help="Required p_full of the whole run."),
    red_flag_tokens: RedFlagTokens = 750,
    cautious: bool = typer.Option(
        False, "--cautious", help="Plan with the lower end of p's confidence interval."
    ),
    error_rate: float = typer.Option(
        0.002, "--error-rate", help="Error rate of simulated models without their own."
    ),
    base_url: BaseUrl = None,
    temperature: float = typer.Option(0.1, "--temperature", help="Sampling temperature."),
    max_tokens: int | None = typer.Option(
        None, "--max-tokens", help="Output-token cap of each call (the provider cuts there)."
    ),
    requests_per_second: RequestsPerSecond = None,
    concurrency: int = typer.Option(16, "--concurrency", help="Calls in flight at once."),
    max_retries: MaxRetries = 0,
    timeout: Timeout = 120.0,
    price_in: float | None = typer.Option(
        None, "--price-in", help="Price per million input tokens (all models)."
    ),
    price_out: float | None = typer.Option(
        None, "--price-out", help="Price per million output tokens (all models)."
    ),
    prices: Prices = None,
) -> None:
    """Measure each model on random steps with known answers and plan the full run."""
    if task_name not in _task_names():
        raise fail(f"unknown task {task_name!r}; choose one of: {', '.join(_task_names())}")
    if not 1 <= disks <= 64:
        raise fail(f"--disks must be between 1 and 64, got {disks}")
    if not 0.0 <= error_rate < 0.5:
        raise fail(f"--error-rate must be in [0, 0.5), got {error_rate}")
    check_at_least(
        (
            ("--price-in", price_in, 0),
            ("--price-out", price_out, 0),
            ("--steps", steps, 1),
            ("--samples-per-step", samples_per_step, 1),
            ("--red-flag-tokens", red_flag_tokens, 1),
            ("--concurrency", concurrency, 1),
        )
    )
    if not 0.0 < target < 1.0:
        raise fail(f"--target must be between 0 and 1 (exclusive), got {target}")
    models = models or ["simulated"]
    try:
        _estimate(
            task_name=task_name,
            task_params=task_params or [],
            disks=disks,
            models=models,
            steps=steps,
            samples_per_step=samples_per_step,
            json_path=json_path,
            seed=seed,
            target=target,
            red_flag_tokens=red_flag_tokens,
            cautious=cautious,
            error_rate=error_rate,
            base_url=base_url,
            temperature=temperature,
            max_tokens=max_tokens,
            requests_per_second=requests_per_second,
            concurrency=concurrency,
            max_retries=max_retries,
            timeout=timeout,
            price_in=price_in,
            price_out=price_out,
            prices=prices,
        )
    except ConfigurationError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None


def _estimate(
    *,
    task_name: str = "hanoi",
    task_params: list[str] | None = None,
    disks: int,
    models: list[str],
    steps: int,
    samples_per_step: int,
    json_path: Path | None,
    seed: int,
    target: float,
    red_flag_tokens: int,
    cautious: bool,
    error_rate: float,
    base_url: str | None,
    temperature: float,
    max_tokens: int | None,
    requests_per_second: float | None,
    concurrency: int,
    max_retries: int,
    timeout: float = 120.0,
    price_in: float | None,
    price_out: float | None,
    prices: Path | None,
) -> None:
    from rich.console import Console

    from ..estimate import EstimateOptions, estimate_sync
    from ..providers import ProviderOptions, parse_model_spec, simulated_error_model
    from ..sampling import ProviderRetry, TemperatureSchedule
    from ..tasks.hanoi import HanoiTask
    from ..testing import ErrorModel
    from ._models import build_model, price_table, resolve_price

    options = EstimateOptions(
        steps=steps,
        samples_per_step=samples_per_step,
        seed=seed,
        max_output_tokens=red_flag_tokens,
        target=target,
        cautious=cautious,
        concurrency=concurrency,
        retry=ProviderRetry(timeout=timeout),
    )
    provider = ProviderOptions(
        base_url=base_url,
        temperature=temperature,
        max_tokens=max_tokens,
        requests_per_second=requests_per_second,
        max_concurrency=concurrency,
        max_retries=max_retries,
        timeout=timeout,
    )
    task, entry = _build_task(task_name, disks, task_params or [])
    table = price_table(prices)
    # One temperature for every pilot sample: collisions only mean something between
    # samples drawn the same way.
    schedule = TemperatureSchedule(first=temperature, rest=temperature)
    console = Console(highlight=False, soft_wrap=True)
    entries = []
    for i, text in enumerate(models):
        spec = parse_model_spec(text)
        # Each simulated model gets its own seed unless its spec names one.
        base = replace(ErrorModel(), error_rate=error_rate, seed=seed + i)
        if spec.simulated and not isinstance(task, HanoiTask):
            # Other tasks simulate themselves through their registry entry.
            if entry.simulator is None or spec.provider != "simulated":
                raise ConfigurationError(
                    f"{spec.text!r}: task {task_name!r} has no simulated model; register it "
                    "with @register.task(simulator=...) or pass a real model"
                )
            sampler = entry.simulator(task, simulated_error_model(spec, base))
            entries.append(
                (
                    spec.label,
                    sampler,
                    resolve_price((spec.label, spec.text), table, price_in, price_out),
                )
            )
            continue
        built = build_model(task, spec, options=provider, errors=base, temperature=schedule)
        price = resolve_price(built.price_names or built.name, table, price_in, price_out)
        if price is None:
            console.print(
                f"note: no price known for {built.name!r}; pass --price-in/--price-out or "
                "--prices to get costs"
            )
        entries.append((built.label, built.sampler, price))

    def done(m: Any) -> None:
        console.print(
            f"sampled {m.model}: {m.samples:,} samples in {m.wall_seconds:,.1f} s", style="dim"
        )

    report = estimate_sync(task, entries, options, on_model=done)
    print_estimate(report, console)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        report.save(json_path)
        console.print(f"estimate: {json_path}")
    # A model whose every call failed (unreachable, refused, out of retries) has no
    # pilot to plan from: printing its empty row is not a result, so the command fails.
    silent = [m for m in report.models if m.samples == 0]
    if silent:
        said = "; ".join(
            f"{m.model} ({_failures_text(m.provider_failures)})" if m.provider_failures else m.model
            for m in silent
        )
        raise fail(f"no sample came back from {said}: check the model, --base-url and key", 1)


def plan_from_estimate(
    path: Path,
    *,
    steps: int | None = None,
    target: float | None = None,
    price_in: float | None = None,
    price_out: float | None = None,
    as_json: bool = False,
) -> None:
    """`maker-graph plan --estimate FILE`: the plan of every model in an estimate file.

    `steps` and `target` re-plan for another task length or goal; prices override
    the measured ones for every model. Nothing is sampled again.

    Raises:
        ConfigurationError: the file is not an estimate, or an argument is out of range.
    """
    import json

    from rich.console import Console

    from ..costs import Price
    from ..estimate import load_estimate, replan

    report = load_estimate(path)
    price = None
    if price_in or price_out:
        price = Price(input=price_in or 0.0, output=price_out or 0.0)
    try:
        report = replan(report, task_steps=steps, target=target, price=price)
    except ValueError as exc:
        raise ConfigurationError(str(exc).splitlines()[0]) from None
    if as_json:
        rows = [
            m.model_dump(exclude={"records", "length_bins", "collisions_by_cap"})
            for m in report.models
        ]
        data = report.model_dump(exclude={"models"}) | {"models": rows}
        typer.echo(json.dumps(data, indent=2))
        return
    print_estimate(report, Console(highlight=False, soft_wrap=True), details=False)
