"""`run_task`: the maximal-decomposition loop, voted step by step, durable and resumable.

The loop asks the task for each step's input (the current state and the
previous action), decides the step with one `Voter` (k-ahead voting, red
flags, the per-step sample budget), and moves to the state the winning answer
names. Decided steps are buffered and written to the run log in batches
(every `chunk_size` steps or `commit_interval` seconds, whichever comes first)
before the next chunk starts; each batch carries a checkpoint, so a restarted
run continues after the last committed step, executing no committed step
twice. Per-step samples are never kept: memory stays flat however long the run.

Run-level budgets (samples, tokens, cost) stop the run cleanly: everything
decided is committed, then `BudgetExhaustedError` names the budget and the flag
that raises it. Cancellation (`asyncio` cancel, Ctrl-C) and a step without
consensus also commit what was decided before the error propagates.

Example:
    >>> from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
    >>> from maker_graph.testing import ErrorModel
    >>> task = HanoiTask(4)
    >>> report = run_task_sync(task, simulated_sampler(task, ErrorModel(error_rate=0.01)))
    >>> report.steps, report.done
    (15, True)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from .._sync import run_to_end
from ..errors import ConfigurationError
from ..records import StepResult
from ..red_flags import RedFlag
from ..runlog import RunLog, RunMeta, open_run_log
from ..speculation import takes_time
from ..tasks.base import Task
from ..vote import EscalationHandler, VotePolicy, Voter
from ..voting import KeyFunction
from ._loop import run_loop
from ._report import ProgressEvent, RunReport, StopReason, count_errors, report_from_log
from ._task_io import answer_key, task_sampler

__all__ = [
    "ProgressEvent",
    "RunReport",
    "StopReason",
    "answer_key",
    "DEFAULT_SPECULATION",
    "count_errors",
    "report_from_log",
    "run_task",
    "run_task_sync",
]

DEFAULT_SPECULATION = 2
"""Steps `run_task` runs ahead of the oldest undecided one when samples take time
(`speculate=None` and a sampler for which `speculation.takes_time` holds)."""

_BUDGET_FLAGS = {budget: f"max_total_{budget}=" for budget in ("samples", "tokens", "cost")}


async def run_task(
    task: Task,
    sampler: Any,
    policy: VotePolicy | None = None,
    *,
    run_log: RunLog | str | None = None,
    parser: Callable[[Any], Any] | None = None,
    key: KeyFunction | None = None,
    red_flags: Sequence[RedFlag] = (),
    escalate: EscalationHandler | None = None,
    chunk_size: int = 2000,
    commit_interval: float = 0.5,
    max_steps: int | None = None,
    max_total_samples: int | None = None,
    max_total_tokens: int | None = None,
    max_total_cost: float | None = None,
    price_in: float = 0.0,
    price_out: float = 0.0,
    price_cached_in: float | None = None,
    budget_flags: Mapping[str, str] | None = None,
    concurrency: int | None = None,
    on_step: Callable[[int, StepResult], Any] | None = None,
    on_progress: Callable[[ProgressEvent], Any] | None = None,
    run_id: str | None = None,
    settings: Mapping[str, Any] | None = None,
    speculate: int | None = None,
) -> RunReport:
    """Run a decomposed task to the end, one voted step after another; resume from its log.

    Args:
        task: the `Task` (a `TaskWithTruth` is not required here).
        sampler: a `Sampler`, chat model (then `task.prompt` builds its input: wrap it in
            `ChatModelSampler(model, prompt=task.prompt)` yourself for other options),
            Runnable or function; it receives the task's step input.
        policy: the per-step `VotePolicy` (k, max samples per step, what to do without
            consensus, concurrency, retries). Samples are never kept per step.
        run_log: a run directory, a URL (`sqlite:///run.db`) or a `RunLog`. If it holds
            this task's run, the run continues after its last committed step. None runs
            without a log (nothing survives the process).
        parser: raw output -> `StepAnswer` (default: `task.parse`).
        key: answer -> vote key (default: `answer_key`).
        red_flags: checks that discard samples (a parse failure always does).
        escalate: the escalation handler when `policy.on_no_consensus == "escalate"`;
            it must return a `StepAnswer`.
        chunk_size: steps per committed batch, at most.
        commit_interval: seconds between commits, at most (a slow run commits often).
        max_steps: stop after this many steps in this session (`stopped="max_steps"`). A
            task with a `total_steps` attribute also stops there if it is not done by then.
        max_total_samples: run budget of samples drawn (over all sessions).
        max_total_tokens: run budget of input plus output tokens.
        max_total_cost: run budget of cost, priced with `price_in`/`price_out`.
        price_in: price per million input tokens.
        price_cached_in: price per million input tokens the provider read from its prompt
            cache (reported as `cache_read`); None: the same as `price_in`.
        price_out: price per million output tokens.
        budget_flags: how to name each budget's knob in the error (`{"tokens":
            "--max-tokens"}` for a CLI); defaults to the argument names.
        concurrency: provider calls in flight at once (default: the policy's, else a
            whole round at once).
        on_step: called with `(step, StepResult)` after each decided step (keep it cheap).
        on_progress: called with a `ProgressEvent` after each batch and at the end.
        run_id: the run's id for a new log (default: a fresh UUID).
        settings: informational settings stored in the log's metadata (model, k, ...).
        speculate: steps to run ahead of the oldest undecided one, each started from
            its predecessor's first valid sample (`maker_graph.speculation`); 0 turns
            speculation off. None: `DEFAULT_SPECULATION` when samples take time (a real
            provider, a simulated model with latency), else 0. The committed log is the
            same either way; cancelled speculative samples are `speculative_wasted`.

    Returns:
        The `RunReport` (totals over every session of the run).

    Raises:
        BudgetExhaustedError: a run budget ran out (everything decided is committed).
        NoConsensusError: a step ran out of samples and the policy says raise.
        RunLogError: the log holds another task, is locked by another writer, or corrupt.

    Example:
        >>> import asyncio
        >>> from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
        >>> task = HanoiTask(3)
        >>> asyncio.run(run_task(task, simulated_sampler(task))).steps
        7
    """
    for name, value, least in (
        ("chunk_size", chunk_size, 1),
        ("commit_interval", commit_interval, 0),
        ("max_steps", max_steps, 0),
        ("concurrency", concurrency, 1),
        ("max_total_samples", max_total_samples, 0),
        ("max_total_tokens", max_total_tokens, 0),
        ("max_total_cost", max_total_cost, 0),
    ):
        if value is not None and value < least:
            raise ConfigurationError(f"{name} must be >= {least}, got {value}")
    if speculate is not None and (
        not isinstance(speculate, int) or isinstance(speculate, bool) or speculate < 0
    ):
        raise ConfigurationError(f"speculate must be an integer >= 0, got {speculate!r}")
    if max_total_cost is not None and price_in == 0 and price_out == 0:
        raise ConfigurationError("max_total_cost needs price_in and/or price_out to price tokens")
    flags = {**_BUDGET_FLAGS, **(budget_flags or {})}

    policy = replace(policy or VotePolicy(), keep_samples=False)
    voter = Voter(
        task_sampler(task, sampler),
        parser=parser or task.parse,
        key=key or answer_key,
        red_flags=red_flags,
        policy=policy,
        escalate=escalate,
    )
    if speculate is None:
        speculate = DEFAULT_SPECULATION if takes_time(voter.sampler) else 0

    # ----------------------------------------------------------------- open or resume
    log: RunLog | None = None
    owns_log = False
    meta: RunMeta | None = None
    if run_log is not None:
        owns_log = not isinstance(run_log, RunLog)
        log = open_run_log(run_log)
        all_settings = {"k": policy.k, **(settings or {})}
        meta = log.start(
            task.name, getattr(task, "params", {}), run_id=run_id, settings=all_settings
        )
    try:
        return await run_loop(
            task,
            voter,
            log,
            meta,
            chunk_size=chunk_size,
            commit_interval=commit_interval,
            max_steps=max_steps,
            limits=(max_total_samples, max_total_tokens, max_total_cost),
            prices=(price_in, price_out, price_cached_in),
            flags=flags,
            semaphore=asyncio.Semaphore(concurrency) if concurrency is not None else None,
            on_step=on_step,
            on_progress=on_progress,
            speculate=speculate,
        )
    finally:
        if owns_log and log is not None:
            log.close()


def run_task_sync(
    task: Task, sampler: Any, policy: VotePolicy | None = None, **options: Any
) -> RunReport:
    """Synchronous `run_task`; cannot be called from inside a running event loop.

    Ctrl-C stops the run after committing every decided step, then raises
    `KeyboardInterrupt` as usual.

    Example:
        >>> from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
        >>> task = HanoiTask(2)
        >>> run_task_sync(task, simulated_sampler(task)).steps
        3
    """
    return run_to_end(run_task(task, sampler, policy, **options), "run_task_sync")
