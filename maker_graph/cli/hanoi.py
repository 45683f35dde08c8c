"""`maker-graph hanoi`: solve Towers of Hanoi step by voted step, with a durable run log.

Runs `HanoiTask(N)` through `run_task` on the built-in simulated model (the
default), the simulated chat model, or a real provider model; shows a progress
bar; then checks every committed move against the optimal solution computed
independently of the vote, prints a summary ending in `solved: ..., errors: ...`
and writes a JSON report.
"""

from __future__ import annotations

import json
import shlex
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import typer

from ..errors import (
    BudgetExhaustedError,
    ConfigurationError,
    MakerRuntimeError,
    NoConsensusError,
    RunLogError,
)
from ._hanoi_display import ProgressBar, make_console, peak_rss_mb, print_summary
from ._hanoi_models import (
    DEMO_ERRORS,
    choose_sampler,
    effective_error_rate,
    provider_options,
    table_price,
)
from ._options import (
    BaseUrl,
    MaxRetries,
    PriceIn,
    PriceOut,
    Prices,
    RedFlagTokens,
    RequestsPerSecond,
    Timeout,
    check_at_least,
)
from .app import app, check_output_file, fail

__all__ = ["DEMO_ERRORS", "hanoi", "verify_hanoi_log"]

DEMO_RED_FLAG_TOKENS = 750
"""The output-token cap above which an answer is red-flagged (the paper's 750)."""


def verify_hanoi_log(log: Any, disks: int) -> tuple[int, int]:
    """Check a Hanoi run log against the optimal solution: `(errors, steps checked)`.

    `errors` counts committed moves that differ from `optimal_moves(disks)` at the
    same step, plus committed steps beyond the solution's length. The moves come
    from the closed-form solution, not from the step rule the simulated model
    answers from, so this check shares nothing with the vote.
    """
    from ..tasks.hanoi import optimal_moves

    truth = optimal_moves(disks)
    errors = checked = 0
    for record in log.steps():
        expected = next(truth, None)
        checked += 1
        if expected is None or record.action != f"[{expected[0]}, {expected[1]}, {expected[2]}]":
            errors += 1
    return errors, checked


@app.command()
def hanoi(
    disks: int = typer.Option(..., "--disks", help="Number of disks (2**N - 1 steps)."),
    k: int | None = typer.Option(
        None, "--k", help="Voting margin (default: k_min for the error rate, else 3)."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="simulated (default, fast), simulated-chat, or PROVIDER:MODEL "
        "(e.g. openai:gpt-4.1-mini).",
    ),
    error_rate: float | None = typer.Option(
        None, "--error-rate", help="Simulated per-sample error rate (default 0.002)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the simulated model."),
    run_dir: Path | None = typer.Option(  # noqa: B008 - typer's idiom
        None, "--run-dir", help="Directory of the run log (default: a temporary one)."
    ),
    store: str | None = typer.Option(
        None,
        "--store",
        help="Where the run log lives instead of --run-dir: sqlite:///path.db or "
        "postgresql://...?run_id=NAME (several runs can share one database).",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --run-dir."),
    fresh: bool = typer.Option(
        False, "--fresh", help="Delete any run in --run-dir and start over."
    ),
    report: Path | None = typer.Option(  # noqa: B008 - typer's idiom
        None, "--report", help="Write the JSON report here."
    ),
    max_samples_per_step: int | None = typer.Option(
        None, "--max-samples-per-step", help="Sample budget of one step (default 10k + 20)."
    ),
    max_total_samples: int | None = typer.Option(
        None, "--max-total-samples", help="Stop once the run has drawn this many samples."
    ),
    max_tokens: int | None = typer.Option(
        None, "--max-total-tokens", help="Stop once the run has used this many tokens (in + out)."
    ),
    max_cost: float | None = typer.Option(
        None, "--max-cost", help="Stop once the run has cost this much (needs --price-*)."
    ),
    price_in: PriceIn = 0.0,
    price_out: PriceOut = 0.0,
    red_flag_tokens: RedFlagTokens = DEMO_RED_FLAG_TOKENS,
    concurrency: int | None = typer.Option(
        None, "--concurrency", help="Provider calls in flight at once (default: a round)."
    ),
    prompt_rotation: bool | None = typer.Option(
        None,
        "--prompt-rotation/--no-prompt-rotation",
        help="Chat models: sample i of a step is asked the (i mod 3)-th wording of the "
        "step prompt (same facts, other words), so a model stuck on one wording of a "
        "step is asked another. Default off; --resume keeps the run's.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    base_url: BaseUrl = None,
    temperature: float | None = typer.Option(
        None, "--temperature", help="Temperature of every sample (default: 0 first, then 0.1)."
    ),
    max_tokens_per_call: int | None = typer.Option(
        None,
        "--max-tokens",
        "--max-tokens-per-call",
        help="Output-token cap of each provider call (the provider cuts there).",
    ),
    requests_per_second: RequestsPerSecond = None,
    max_retries: MaxRetries = 0,
    timeout: Timeout = 120.0,
    samples_per_request: int | None = typer.Option(
        None,
        "--samples-per-request",
        help="Most samples drawn in one request where the "
        "model accepts `n` (OpenAI-compatible): a round's samples at one temperature share "
        "a request, the prompt billed once (default: up to 8; 1: one request per sample).",
    ),
    spare_samples: int = typer.Option(
        0,
        "--spare-samples",
        help="Extra choices asked for in each request of `n`, kept "
        "for the step's next round: fewer requests and rounds, more output tokens (unused "
        "ones are billed and reported).",
    ),
    eager_replacement: bool | None = typer.Option(
        None,
        "--eager-replacement/--no-eager-replacement",
        help="Replace a red-flagged sample as soon as it arrives, not after its round's "
        "slowest one (one request per sample; same tallies, less wall time). Off: a "
        "step never has a replacement in flight it may not need. Default on; --resume "
        "keeps the run's.",
    ),
    price_cached_in: float | None = typer.Option(
        None,
        "--price-cached-in",
        help="Price per million input tokens served from the "
        "provider's prompt cache (default: the table's cached rate, else --price-in).",
    ),
    prices: Prices = None,
    speculate: int | None = typer.Option(
        None,
        "--speculate",
        help="Steps started ahead from the first valid answer of the "
        "step before, while its vote finishes; cancelled if the vote decides otherwise (the "
        "log is the same either way). Default: 2 for models that take time, 0 for the "
        "instant simulated model; 0 turns it off.",
    ),
) -> None:
    """Solve Towers of Hanoi with N disks, one voted move per step, and check every move."""
    # ------------------------------------------------------------------ flags
    if not 1 <= disks <= 64:
        raise fail(f"--disks must be between 1 and 64, got {disks}")
    if error_rate is not None and not 0.0 <= error_rate < 0.5:
        raise fail(
            f"--error-rate must be in [0, 0.5), got {error_rate}: at 0.5 or more the wrong "
            "answers win the vote as often as the right one"
        )
    if resume and fresh:
        raise fail("--resume continues a run and --fresh deletes it: pass only one")
    if store is not None and store.startswith(("postgres://", "postgresql")):
        from ..runlog.postgres import split_url

        try:
            if split_url(store)[1] is None:
                raise fail(
                    "--store postgresql://... needs ?run_id=NAME in the URL: it names the run "
                    "among the others in that database"
                )
        except ConfigurationError as exc:
            raise fail(str(exc)) from None
    if (resume or fresh) and run_dir is None and store is None:
        raise fail(f"{'--resume' if resume else '--fresh'} needs --run-dir")
    check_at_least(
        (
            ("--k", k, 1),
            ("--max-samples-per-step", max_samples_per_step, 1),
            ("--red-flag-tokens", red_flag_tokens, 1),
            ("--concurrency", concurrency, 1),
            ("--samples-per-request", samples_per_request, 1),
            ("--max-total-samples", max_total_samples, 0),
            ("--max-total-tokens", max_tokens, 0),
            ("--max-cost", max_cost, 0),
            ("--price-in", price_in, 0),
            ("--price-out", price_out, 0),
            ("--speculate", speculate, 0),
            ("--spare-samples", spare_samples, 0),
        )
    )
    if max_cost is not None and price_in == 0 and price_out == 0:
        raise fail("--max-cost needs --price-in and/or --price-out")
    if not 0 < timeout < float("inf"):
        raise fail(f"--timeout must be > 0 seconds, got {timeout}")
    if report is not None:
        check_output_file(str(report), "--report")  # not after the whole run
    if price_cached_in is not None and not 0 <= price_cached_in < float("inf"):
        raise fail(f"--price-cached-in must be a finite number >= 0, got {price_cached_in}")

    try:
        provider = provider_options(
            base_url=base_url,
            temperature=temperature,
            max_tokens=max_tokens_per_call,
            requests_per_second=requests_per_second,
            max_concurrency=concurrency,
            max_retries=max_retries,
            timeout=timeout,
            samples_per_request=samples_per_request,
        )
        _run(
            disks=disks,
            k=k,
            model=model,
            error_rate=error_rate,
            seed=seed,
            run_dir=run_dir,
            store=store,
            resume=resume,
            fresh=fresh,
            report_path=report,
            max_samples_per_step=max_samples_per_step,
            max_total_samples=max_total_samples,
            max_tokens=max_tokens,
            max_cost=max_cost,
            price_in=price_in,
            price_out=price_out,
            red_flag_tokens=red_flag_tokens,
            concurrency=concurrency,
            prompt_rotation=prompt_rotation,
            show_progress=progress,
            provider=provider,
            prices=prices,
            speculate=speculate,
            spare_samples=spare_samples,
            eager_replacement=eager_replacement,
            price_cached_in=price_cached_in,
        )
    except (ConfigurationError, RunLogError) as exc:
        raise fail(str(exc)) from None


def _run(*, run_dir: Path | None, **options: Any) -> None:
    """`_run_in` in `run_dir`, or in a temporary directory removed unless it holds a log.

    This function alone removes the temporary directory (`_run_in` never does): with
    two owners, one removed it and the other then listed it, and a `--store` run's
    budget stop printed a second `error: No such file or directory` line.
    """
    if run_dir is not None:
        _run_in(where=run_dir, temporary=False, **options)
        return
    where = Path(tempfile.mkdtemp(prefix="maker-graph-hanoi-"))
    keep = False
    try:
        _run_in(where=where, temporary=True, **options)
    except BaseException as exc:
        # A run stopped before its end keeps a log written here: its resume command
        # points at it. Refused before anything was written (bad flags, another task's
        # store), a finished run, or a `--store` run (its log is in the database):
        # nothing here to resume from.
        stopped = not (isinstance(exc, typer.Exit) and exc.exit_code == 0)
        keep = stopped and options.get("store") is None and any(where.iterdir())
        raise
    finally:
        if not keep:
            shutil.rmtree(where, ignore_errors=True)


def _run_in(
    *,
    where: Path,
    temporary: bool,
    disks: int,
    k: int | None,
    model: str | None,
    error_rate: float | None,
    seed: int | None,
    store: str | None,
    resume: bool,
    fresh: bool,
    report_path: Path | None,
    max_samples_per_step: int | None,
    max_total_samples: int | None,
    max_tokens: int | None,
    max_cost: float | None,
    price_in: float,
    price_out: float,
    red_flag_tokens: int,
    concurrency: int | None,
    show_progress: bool,
    provider: Any = None,
    prices: Path | None = None,
    speculate: int | None = None,
    spare_samples: int = 0,
    eager_replacement: bool | None = None,
    price_cached_in: float | None = None,
    prompt_rotation: bool | None = None,
) -> None:
    from ..red_flags import max_output_tokens
    from ..run import report_from_log, run_task_sync
    from ..runlog import open_run_log
    from ..runlog.base import check_same_task
    from ..scaling import k_min
    from ..tasks.hanoi import HanoiTask
    from ..vote import VotePolicy

    task = HanoiTask(disks)
    steps = task.total_steps

    # ------------------------------------------------------------------ the run directory
    # The run log: in the run directory, or in the --store given (a database URL).
    location = store if store is not None else str(where)
    stored: dict[str, Any] = {}
    meta, cp = None, None
    try:
        probe = open_run_log(location, readonly=True)
    except RunLogError:
        probe = None  # nothing there yet
    if probe is not None:
        try:
            meta, cp = probe.meta(), probe.checkpoint()
        finally:
            probe.close()
    if meta is not None and not fresh:
        # Another task (or other disks) in the directory: refuse, whatever the flags.
        check_same_task(meta, task.name, task.params, location)
    if meta is not None:
        if fresh:
            open_run_log(location).drop()
            meta = None
        elif not resume:
            at = f"{cp.next_step:,} of its steps committed" if cp else "no steps committed"
            raise ConfigurationError(
                f"{where} already holds a {meta.task} run ({at}); pass --resume to continue "
                "it or --fresh to start over"
            )
        else:
            stored = dict(meta.settings)

    # On --resume, flags left out keep the values the run was started with, so the
    # simulated model (and so every remaining step) is the same as without the break.
    model = model or stored.get("model") or "simulated"
    error_rate = error_rate if error_rate is not None else stored.get("error_rate", 0.002)
    seed = seed if seed is not None else int(stored.get("seed", 0))
    if prompt_rotation is None:
        prompt_rotation = bool(stored.get("prompt_rotation", False))
    if eager_replacement is None:
        eager_replacement = bool(stored.get("eager_replacement", True))
    # A simulated model spec (`simulated:error_rate=...`) overrides --error-rate: plan k,
    # print and store the rate the model will really have.
    error_rate = effective_error_rate(model, float(error_rate), seed)
    p = 1.0 - float(error_rate)
    if k is None:
        if "k" in stored:
            k = int(stored["k"])
        elif model.startswith("simulated"):
            k = k_min(p, steps, target=0.95) if p < 1.0 else 1
        else:
            k = 3
    if max_samples_per_step is not None and max_samples_per_step < k:
        raise ConfigurationError(
            f"--max-samples-per-step ({max_samples_per_step}) must be >= --k ({k}): fewer "
            "samples can never decide a step"
        )

    sampler, label = choose_sampler(
        task, model, float(error_rate), seed, concurrency, provider, rotate=prompt_rotation
    )
    if price_in == 0 and price_out == 0 and not model.startswith("simulated"):
        price_in, price_out, table_cached = table_price(model, prices)
        if price_cached_in is None:
            price_cached_in = table_cached
    from ..sampling import ProviderRetry

    policy = VotePolicy(
        k=k,
        max_samples=max_samples_per_step,
        max_concurrency=concurrency,
        retry=ProviderRetry(timeout=getattr(provider, "timeout", None) or 120.0),
        spare_samples=spare_samples,
        eager_replacement=eager_replacement,
    )
    settings = {
        "model": model,
        "error_rate": error_rate,
        "seed": seed,
        "k": k,
        "red_flag_tokens": red_flag_tokens,
        "action_name": task.action_name,
        # Both change which samples a step draws: a resume keeps them unless told.
        "prompt_rotation": prompt_rotation,
        "eager_replacement": eager_replacement,
    }

    # ------------------------------------------------------------------ run
    console = make_console()
    if meta is not None:
        console.print(f"resuming the run in {where}")
    console.print(
        f"hanoi: {disks} disks, {steps:,} steps, k = {k}, model {label}"
        + (f", error rate {error_rate:g}, seed {seed}" if model.startswith("simulated") else "")
    )
    stop_message: str | None = None
    exit_code = 0
    resume_cmd = _resume_command(disks, store, where)
    started = time.perf_counter()
    bar = ProgressBar(console, steps, enabled=show_progress, prices=(price_in, price_out))
    try:
        with bar:
            run_task_sync(
                task,
                sampler,
                policy,
                run_log=location,
                red_flags=[max_output_tokens(red_flag_tokens)],
                max_total_samples=max_total_samples,
                max_total_tokens=max_tokens,
                max_total_cost=max_cost,
                price_in=price_in,
                price_out=price_out,
                price_cached_in=price_cached_in,
                budget_flags={
                    "samples": "--max-total-samples",
                    "tokens": "--max-total-tokens",
                    "cost": "--max-cost",
                },
                on_progress=bar.update,
                settings=settings,
                speculate=speculate,
            )
    except BudgetExhaustedError as exc:
        stop_message, exit_code = f"stopped: {exc} To resume: {resume_cmd}", 1
    except NoConsensusError as exc:
        stop_message, exit_code = (
            f"stopped: {exc} Resume with a larger --max-samples-per-step: {resume_cmd}",
            1,
        )
    except KeyboardInterrupt:
        stop_message = f"interrupted: every decided step is saved; resume with: {resume_cmd}"
        exit_code = 130
    except RunLogError:
        raise  # the log is locked by another writer, or unusable: one line, no summary
    except MakerRuntimeError as exc:
        stop_message, exit_code = f"stopped: {exc} To resume: {resume_cmd}", 1
    session_seconds = time.perf_counter() - started

    # ------------------------------------------------------------------ check and report
    log = open_run_log(location, readonly=True)
    try:
        run = report_from_log(
            log, k=k, price_in=price_in, price_out=price_out, price_cached_in=price_cached_in
        )
        errors, checked = verify_hanoi_log(log, disks)
    finally:
        log.close()
    final = run.final_state
    on_goal = final is not None and final[0] == [] and final[1] == [] and len(final[2]) == disks
    solved = bool(on_goal and errors == 0 and checked == steps)
    data: dict[str, Any] = {
        "disks": disks,
        "steps": run.steps,
        "k": k,
        "model": label,
        "errors": errors,
        "solved": solved,
        "samples": run.samples,
        "valid_samples": run.valid_samples,
        "red_flagged": run.red_flagged,
        "max_samples_in_step": run.max_samples_in_step,
        "rounds_histogram": {str(r): n for r, n in run.rounds_histogram.items()},
        "wall_seconds": round(run.wall_seconds, 3),
        "input_tokens": run.input_tokens,
        "output_tokens": run.output_tokens,
        # Beyond the contract's keys:
        "total_steps": steps,
        "samples_per_step": run.samples_per_step,
        "red_flags": run.red_flags,
        "samples_histogram": {str(s): n for s, n in run.samples_histogram.items()},
        "decided_by": run.decided_by,
        "provider_failures": run.provider_failures,
        "speculative_wasted": run.speculative_wasted,
        "spares_unused": run.spares_unused,
        "cached_input_tokens": run.cached_input_tokens,
        "unmetered_samples": run.unmetered_samples,
        "cost": run.cost,
        # Spend so far extrapolated to the whole task (the cost itself once it is done).
        "projected_cost": run.cost * steps / run.steps if run.steps else None,
        "error_rate": error_rate if model.startswith("simulated") else None,
        "seed": seed if model.startswith("simulated") else None,
        "red_flag_tokens": red_flag_tokens,
        "run_id": run.run_id,
        "run_dir": None if temporary else str(where),
        "done": run.done,
        "session_seconds": round(session_seconds, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    print_summary(console, data)
    if stop_message:
        typer.echo(stop_message, err=True)
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(data, indent=2) + "\n")
        console.print(f"report: {report_path}")
    if exit_code:
        raise typer.Exit(exit_code)


def _resume_command(disks: int, store: str | None, where: Path) -> str:
    """The command that continues this run (the store's password left out)."""
    if store is None:
        return f"maker-graph hanoi --disks {disks} --run-dir {shlex.quote(str(where))} --resume"
    shown = store
    if store.startswith(("postgres://", "postgresql")):
        from ..runlog.postgres import redact

        shown = redact(store)
    return f"maker-graph hanoi --disks {disks} --store {shlex.quote(shown)} --resume"
