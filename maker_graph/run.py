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
import copy
import hashlib
import json
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from ._util import compact_json, identity
from .costs import token_cost
from .errors import BudgetExhaustedError, ConfigurationError, NoConsensusError, RunLogError
from .records import StepResult
from .red_flags import RedFlag
from .runlog import Checkpoint, RunLog, RunMeta, StepRecord, open_run_log
from .runlog.base import SampleReservations
from .sampling import ForwardsBatching
from .speculation import Speculator, takes_time
from .tasks.base import Task
from .vote import EscalationHandler, VotePolicy, Voter
from .voting import KeyFunction

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

StopReason = Literal["done", "budget", "max_steps", "no_consensus", "cancelled", "error"]
"""Why a run stopped: finished, a run budget spent, `max_steps` reached, a step without
consensus, cancelled (Ctrl-C), or another error."""

DEFAULT_SPECULATION = 2
"""Steps `run_task` runs ahead of the oldest undecided one when samples take time
(`speculate=None` and a sampler for which `speculation.takes_time` holds)."""

_BUDGET_FLAGS = {
    "samples": "max_total_samples=",
    "tokens": "max_total_tokens=",
    "cost": "max_total_cost=",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class ProgressEvent:
    """Where a run stands; sent to `on_progress` after every batch and at the end."""

    steps: int
    """Steps decided so far in the whole run (committed or about to be)."""
    total_steps: int | None
    """The task's total step count, when it knows it (`task.total_steps`)."""
    session_steps: int
    """Steps decided in this session (since start or resume)."""
    committed: int
    """Steps committed to the run log."""
    samples: int
    """Samples drawn in the whole run, red-flagged ones included."""
    valid_samples: int
    """Samples that voted."""
    red_flagged: int
    """Samples discarded by a red flag."""
    elapsed: float
    """Seconds since this session started."""
    input_tokens: int = 0
    """Prompt tokens in the whole run so far (for spend in progress bars)."""
    output_tokens: int = 0
    """Completion tokens in the whole run so far."""


@dataclass(kw_only=True)
class RunReport:
    """What a run did, over all its sessions.

    Example:
        >>> RunReport(task="t", steps=3, k=3).to_dict()["samples_per_step"]
        0.0
    """

    task: str
    """The task's name."""
    run_id: str | None = None
    """The run's identifier in its run log (None without a log)."""
    steps: int = 0
    """Steps committed over the whole run."""
    session_steps: int = 0
    """Steps decided in this session."""
    resumed_from: int = 0
    """The first step of this session (0 for a fresh run)."""
    done: bool = False
    """True when the task reported itself complete."""
    stopped: StopReason = "done"
    """Why the run (this session) stopped."""
    k: int = 0
    """The voting margin of this session."""
    samples: int = 0
    """Samples drawn, red-flagged ones included."""
    valid_samples: int = 0
    """Samples that voted."""
    red_flagged: int = 0
    """Samples discarded by a red flag."""
    uncommitted_samples: int = 0
    """Samples drawn for steps no checkpoint holds (a crash, or a stop in the middle of a
    step): paid for, counted in `samples`, never voted and not red-flagged."""
    speculative_wasted: int = 0
    """Samples drawn for speculative steps that were cancelled (their guess lost the
    vote): paid for and counted in `samples` and the budgets, never votes."""
    speculate: int = 0
    """Steps this session ran ahead of the oldest undecided one (0: no speculation)."""
    spares_unused: int = 0
    """Samples drawn ahead in requests of `n` (`VotePolicy.spare_samples`) that their step
    never needed: paid for and counted in `samples` and the budgets, never votes."""
    cached_input_tokens: int = 0
    """Of `input_tokens`, those the provider read from its prompt cache (priced at
    `price_cached_in`)."""
    red_flags: dict[str, int] = field(default_factory=dict)
    """Red-flagged samples by reason."""
    max_samples_in_step: int = 0
    """The most samples any one step drew."""
    samples_histogram: dict[int, int] = field(default_factory=dict)
    """Steps by samples drawn."""
    rounds_histogram: dict[int, int] = field(default_factory=dict)
    """Steps by rounds of sampling needed."""
    decided_by: dict[str, int] = field(default_factory=dict)
    """Steps by how they were decided (`vote`, `plurality`, `escalation`)."""
    provider_failures: dict[str, int] = field(default_factory=dict)
    """Failed provider calls by kind (retried; never votes)."""
    input_tokens: int = 0
    """Prompt tokens over all samples."""
    output_tokens: int = 0
    """Completion tokens over all samples."""
    cost: float = 0.0
    """Price of the tokens at the given per-million prices."""
    wall_seconds: float = 0.0
    """Wall time over all sessions."""
    session_seconds: float = 0.0
    """Wall time of this session."""
    final_state: Any = None
    """The state after the last committed step, as JSON data."""

    @property
    def samples_per_step(self) -> float:
        return self.samples / self.steps if self.steps else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (histogram keys become strings, as JSON requires)."""
        out = asdict(self)
        out["samples_histogram"] = {str(k): v for k, v in sorted(self.samples_histogram.items())}
        out["rounds_histogram"] = {str(k): v for k, v in sorted(self.rounds_histogram.items())}
        out["samples_per_step"] = self.samples_per_step
        return out


# --------------------------------------------------------------------------- helpers


def answer_key(answer: Any) -> Hashable:
    """The vote key of a step answer: the answer itself when hashable, else its `key()`.

    Hanoi's answers are tuples all the way down, so they key as themselves at the
    cost of one hash; answers holding lists fall back to `StepAnswer.key()`.
    """
    try:
        hash(answer)
    except TypeError:
        key = getattr(answer, "key", None)
        if callable(key):
            return key()  # type: ignore[no-any-return]
        return json.dumps(answer, sort_keys=True, default=repr)
    return answer  # type: ignore[no-any-return]


def _default_state_hash(dump: Callable[[Any], Any]) -> Callable[[Any], str]:
    def state_hash(state: Any) -> str:
        return hashlib.blake2b(compact_json(dump(state)).encode(), digest_size=8).hexdigest()

    return state_hash


def _task_sampler(task: Task, sampler: Any) -> Any:
    """A bare chat model samples the task's prompt (the step input is not a prompt)."""
    try:
        from langchain_core.language_models import BaseChatModel
    except ImportError:  # pragma: no cover - langchain-core is a dependency
        return sampler
    if isinstance(sampler, BaseChatModel) or (
        isinstance(sampler, (list, tuple))
        and sampler
        and all(isinstance(m, BaseChatModel) for m in sampler)
    ):
        from .sampling import ChatModelSampler

        return ChatModelSampler(sampler, prompt=task.prompt)
    return sampler


@dataclass(slots=True)
class _Totals:
    """Running totals of a run; stored in every checkpoint so a resumed run continues them."""

    samples: int = 0
    valid: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    red_flags: dict[str, int] = field(default_factory=dict)
    samples_histogram: dict[int, int] = field(default_factory=dict)
    rounds_histogram: dict[int, int] = field(default_factory=dict)
    decided_by: dict[str, int] = field(default_factory=dict)
    provider_failures: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    sessions: int = 0
    uncommitted: int = 0
    speculative_wasted: int = 0
    spares_unused: int = 0
    cached_input_tokens: int = 0

    def to_json(self, wall_seconds: float) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "valid": self.valid,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "red_flags": dict(self.red_flags),
            "samples_histogram": {str(k): v for k, v in self.samples_histogram.items()},
            "rounds_histogram": {str(k): v for k, v in self.rounds_histogram.items()},
            "decided_by": dict(self.decided_by),
            "provider_failures": dict(self.provider_failures),
            "wall_seconds": wall_seconds,
            "sessions": self.sessions,
            "uncommitted": self.uncommitted,
            "speculative_wasted": self.speculative_wasted,
            "spares_unused": self.spares_unused,
            "cached_input_tokens": self.cached_input_tokens,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _Totals:
        return cls(
            samples=int(data.get("samples", 0)),
            valid=int(data.get("valid", 0)),
            input_tokens=int(data.get("input_tokens", 0)),
            output_tokens=int(data.get("output_tokens", 0)),
            red_flags={str(k): int(v) for k, v in data.get("red_flags", {}).items()},
            samples_histogram={
                int(k): int(v) for k, v in data.get("samples_histogram", {}).items()
            },
            rounds_histogram={int(k): int(v) for k, v in data.get("rounds_histogram", {}).items()},
            decided_by={str(k): int(v) for k, v in data.get("decided_by", {}).items()},
            provider_failures={
                str(k): int(v) for k, v in data.get("provider_failures", {}).items()
            },
            wall_seconds=float(data.get("wall_seconds", 0.0)),
            sessions=int(data.get("sessions", 0)),
            uncommitted=int(data.get("uncommitted", 0)),
            speculative_wasted=int(data.get("speculative_wasted", 0)),
            spares_unused=int(data.get("spares_unused", 0)),
            cached_input_tokens=int(data.get("cached_input_tokens", 0)),
        )


def _report(
    task_name: str,
    totals: _Totals,
    *,
    run_id: str | None,
    steps: int,
    session_steps: int,
    resumed_from: int,
    done: bool,
    stopped: StopReason,
    k: int,
    price_in: float,
    price_out: float,
    wall_seconds: float,
    session_seconds: float,
    final_state: Any,
    speculate: int = 0,
    price_cached_in: float | None = None,
) -> RunReport:
    decided = dict(totals.decided_by)
    other = sum(decided.values())
    decided["vote"] = decided.get("vote", 0) + steps - other
    return RunReport(
        task=task_name,
        run_id=run_id,
        steps=steps,
        session_steps=session_steps,
        resumed_from=resumed_from,
        done=done,
        stopped=stopped,
        k=k,
        samples=totals.samples,
        valid_samples=totals.valid,
        red_flagged=totals.samples
        - totals.valid
        - totals.uncommitted
        - totals.speculative_wasted
        - totals.spares_unused,
        uncommitted_samples=totals.uncommitted,
        speculative_wasted=totals.speculative_wasted,
        spares_unused=totals.spares_unused,
        speculate=speculate,
        red_flags=dict(sorted(totals.red_flags.items())),
        max_samples_in_step=max(totals.samples_histogram, default=0),
        samples_histogram=dict(sorted(totals.samples_histogram.items())),
        rounds_histogram=dict(sorted(totals.rounds_histogram.items())),
        decided_by={key: n for key, n in sorted(decided.items()) if n},
        provider_failures=dict(sorted(totals.provider_failures.items())),
        input_tokens=totals.input_tokens,
        output_tokens=totals.output_tokens,
        cached_input_tokens=totals.cached_input_tokens,
        cost=token_cost(
            totals.input_tokens,
            totals.output_tokens,
            totals.cached_input_tokens,
            (price_in, price_out, price_cached_in),
        ),
        wall_seconds=wall_seconds,
        session_seconds=session_seconds,
        final_state=final_state,
    )


def report_from_log(
    run_log: RunLog | str,
    *,
    k: int = 0,
    price_in: float = 0.0,
    price_out: float = 0.0,
    price_cached_in: float | None = None,
) -> RunReport:
    """The report of a run as its log has it (after a crash, a budget stop, or a finished run).

    Example:
        >>> import tempfile
        >>> from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
        >>> task, where = HanoiTask(3), tempfile.mkdtemp()
        >>> _ = run_task_sync(task, simulated_sampler(task), run_log=where)
        >>> report_from_log(where).steps
        7
    """
    log = open_run_log(run_log, readonly=True) if isinstance(run_log, str) else run_log
    try:
        meta = log.meta()
        if meta is None:
            raise RunLogError(f"no run in {log.location}")
        cp = log.checkpoint()
        totals = _Totals.from_json(cp.totals) if cp is not None else _Totals()
        steps = cp.next_step if cp is not None else 0
        done = cp.done if cp is not None else False
        return _report(
            meta.task,
            totals,
            run_id=meta.run_id,
            steps=steps,
            session_steps=0,
            resumed_from=steps,
            done=done,
            stopped="done" if done else "cancelled",
            k=k or int(meta.settings.get("k", 0) or 0),
            price_in=price_in,
            price_out=price_out,
            price_cached_in=price_cached_in,
            wall_seconds=totals.wall_seconds,
            session_seconds=0.0,
            final_state=cp.state if cp is not None else None,
        )
    finally:
        if isinstance(run_log, str):
            log.close()


def count_errors(task: Any, records: Iterable[StepRecord]) -> int:
    """Committed steps whose action differs from the task's ground truth.

    Replays `task.true_step` from the initial state along the true trajectory and
    compares each committed action (and state fingerprint) with it; independent of
    the vote. Needs a task with `true_step` (a `TaskWithTruth`).

    Example:
        >>> from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
        >>> import tempfile
        >>> task, where = HanoiTask(3), tempfile.mkdtemp()
        >>> _ = run_task_sync(task, simulated_sampler(task), run_log=where)
        >>> from maker_graph.runlog import open_run_log
        >>> count_errors(task, open_run_log(where, readonly=True).steps())
        0
    """
    true_step = getattr(task, "true_step", None)
    if true_step is None:
        raise ConfigurationError(f"{type(task).__name__} has no true_step(): no ground truth")
    dump_action = getattr(task, "dump_action", compact_json)
    dump_state = getattr(task, "dump_state", identity)
    state_hash = getattr(task, "state_hash", None) or _default_state_hash(dump_state)
    state, previous = task.initial_state(), None
    errors = 0
    for record in records:
        truth = true_step(state, previous)
        if (
            dump_action(truth.action) != record.action
            or state_hash(truth.next_state) != record.state_hash
        ):
            errors += 1
        state, previous = truth.next_state, truth.action
    return errors


def _add_counts(into: dict[str, int], counts: Mapping[str, int]) -> None:
    """Add `counts` (by kind) into `into`."""
    for kind, n in counts.items():
        into[kind] = into.get(kind, 0) + n


class _SampleCounter(ForwardsBatching):
    """Counts the samples asked of the provider, an undecided step's included.

    Used only under a sample budget, so that the budget stays exact when a run
    stops in the middle of a step (cancelled, budget, no consensus): those samples
    were paid for, and a resumed run must count them.
    """

    __slots__ = ("drawn", "inner", "reservations", "sample_now")

    def __init__(self, inner: Any, reservations: SampleReservations | None = None) -> None:
        self.inner = inner
        self.drawn = 0
        # Samples are reserved in the run log before they are asked for (exact across crashes).
        self.reservations = reservations
        # Keep the inner sampler's no-wait path (see `Voter`), counted too.
        now = getattr(inner, "sample_now", None)
        self.sample_now = self._sample_now if callable(now) else None

    def _sample_now(self, step_input: Any, index: int) -> Any:
        if self.reservations is not None:
            self.reservations.need(self.drawn + 1)
        raw = self.inner.sample_now(step_input, index)
        self.drawn += 1  # after the call: one that raised is redone through `sample`
        return raw

    async def sample(self, step_input: Any, index: int) -> Any:
        self.drawn += 1
        if self.reservations is not None:
            self.reservations.need(self.drawn)
        try:
            return await self.inner.sample(step_input, index)
        except Exception:
            self.drawn -= 1  # a failed call is retried; it is not a sample
            raise

    # Several samples per request (`n`): counted as asked, less what was not returned.
    async def sample_many(self, step_input: Any, indices: list[int]) -> Any:
        self.drawn += len(indices)
        if self.reservations is not None:
            self.reservations.need(self.drawn)
        try:
            raws = await self.inner.sample_many(step_input, indices)
        except Exception:
            self.drawn -= len(indices)
            raise
        self.drawn -= len(indices) - len(raws)
        return raws


# --------------------------------------------------------------------------- the loop


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
    if chunk_size < 1:
        raise ConfigurationError(f"chunk_size must be >= 1, got {chunk_size}")
    if commit_interval < 0:
        raise ConfigurationError(f"commit_interval must be >= 0, got {commit_interval}")
    if max_steps is not None and max_steps < 0:
        raise ConfigurationError(f"max_steps must be >= 0, got {max_steps}")
    if concurrency is not None and concurrency < 1:
        raise ConfigurationError(f"concurrency must be >= 1, got {concurrency}")
    if speculate is not None and (
        not isinstance(speculate, int) or isinstance(speculate, bool) or speculate < 0
    ):
        raise ConfigurationError(f"speculate must be an integer >= 0, got {speculate!r}")
    for name, limit in (
        ("max_total_samples", max_total_samples),
        ("max_total_tokens", max_total_tokens),
        ("max_total_cost", max_total_cost),
    ):
        if limit is not None and limit < 0:
            raise ConfigurationError(f"{name} must be >= 0, got {limit}")
    if max_total_cost is not None and price_in == 0 and price_out == 0:
        raise ConfigurationError("max_total_cost needs price_in and/or price_out to price tokens")
    flags = {**_BUDGET_FLAGS, **(budget_flags or {})}

    policy = replace(policy or VotePolicy(), keep_samples=False)
    voter = Voter(
        _task_sampler(task, sampler),
        parser=parser or task.parse,
        key=key or answer_key,
        red_flags=red_flags,
        policy=policy,
        escalate=escalate,
    )
    dump_state: Callable[[Any], Any] = getattr(task, "dump_state", identity)
    load_state: Callable[[Any], Any] = getattr(task, "load_state", identity)
    dump_action: Callable[[Any], str] = getattr(task, "dump_action", compact_json)
    load_action: Callable[[Any], Any] = getattr(task, "load_action", identity)
    state_hash: Callable[[Any], str] = getattr(task, "state_hash", None) or _default_state_hash(
        dump_state
    )
    total_steps: int | None = getattr(task, "total_steps", None)
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
        checkpoint = log.checkpoint() if log is not None else None
        if checkpoint is None:
            state, previous, step = task.initial_state(), None, 0
            totals = _Totals()
        else:
            state = load_state(checkpoint.state)
            previous = load_action(checkpoint.previous_action)
            step = checkpoint.next_step
            totals = _Totals.from_json(checkpoint.totals)
        if log is not None:
            # Samples reserved but never committed (a crash) were paid for: they count.
            spent = SampleReservations.resume_total(log, totals.samples)
            totals.uncommitted += spent - totals.samples
            totals.samples = spent
        totals.sessions += 1
        return await _loop(
            task,
            voter,
            log,
            meta,
            state=state,
            previous=previous,
            step=step,
            totals=totals,
            dump_state=dump_state,
            dump_action=dump_action,
            state_hash=state_hash,
            total_steps=total_steps,
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


async def _loop(
    task: Task,
    voter: Voter,
    log: RunLog | None,
    meta: RunMeta | None,
    *,
    state: Any,
    previous: Any,
    step: int,
    totals: _Totals,
    dump_state: Callable[[Any], Any],
    dump_action: Callable[[Any], str],
    state_hash: Callable[[Any], str],
    total_steps: int | None,
    chunk_size: int,
    commit_interval: float,
    max_steps: int | None,
    limits: tuple[int | None, int | None, float | None],
    prices: tuple[float, float, float | None],
    flags: Mapping[str, str],
    semaphore: asyncio.Semaphore | None,
    on_step: Callable[[int, StepResult], Any] | None,
    on_progress: Callable[[ProgressEvent], Any] | None,
    speculate: int = 0,
) -> RunReport:
    started = time.perf_counter()
    wall_before = totals.wall_seconds
    first_step = step
    committed = step
    buffer: list[StepRecord] = []
    stopped: StopReason = "error"
    done = False
    budget_error: BudgetExhaustedError | None = None
    max_samples, max_tokens, max_cost = limits
    price_in, price_out, price_cached_in = prices
    budgeted = any(limit is not None for limit in limits)
    stop_at = step + max_steps if max_steps is not None else None
    if total_steps is not None:
        # A task that knows its length is off course if it is not done by then (a wrong
        # step committed): stop rather than wander on, possibly for ever.
        stop_at = total_steps if stop_at is None else min(stop_at, total_steps)

    # An exact sample budget: count every sample asked for, and never let a step
    # start more samples than remain (see `_SampleCounter`).
    counter: _SampleCounter | None = None
    reservations: SampleReservations | None = None
    step_budget, k = voter.policy.budget, voter.policy.k
    if max_samples is not None or log is not None:
        # With a log, samples are reserved in it before they are asked for, so a crash
        # cannot hide them (`SampleReservations`); an instant sampler (`sample_now`, a
        # simulation) costs nothing and is reserved only under a sample budget.
        if log is not None and (
            max_samples is not None or getattr(voter.sampler, "sample_now", None) is None
        ):
            reservations = SampleReservations(log, totals.samples)
        counter = _SampleCounter(voter.sampler, reservations)
        voter = voter.with_sampler(counter, escalate=voter.escalate)
    session_base = totals.samples

    # Hot-path locals: one million iterations make every attribute lookup count.
    vote = voter.vote
    step_input = task.step_input
    is_done = task.is_done
    append = buffer.append
    perf_counter = time.perf_counter
    samples_hist = totals.samples_histogram
    rounds_hist = totals.rounds_histogram
    red_flags_total = totals.red_flags
    decided_by = totals.decided_by
    failures_total = totals.provider_failures
    samples = totals.samples
    valid = totals.valid
    tokens_in = totals.input_tokens
    tokens_out = totals.output_tokens
    tokens_cached = totals.cached_input_tokens

    def sync_totals() -> None:
        totals.samples, totals.valid = samples, valid
        totals.input_tokens, totals.output_tokens = tokens_in, tokens_out
        totals.cached_input_tokens = tokens_cached

    def progress() -> None:
        if on_progress is not None:
            on_progress(
                ProgressEvent(
                    steps=step,
                    total_steps=total_steps,
                    session_steps=step - first_step,
                    committed=committed,
                    samples=samples,
                    valid_samples=valid,
                    red_flagged=samples - valid - totals.spares_unused,
                    elapsed=perf_counter() - started,
                    input_tokens=tokens_in,
                    output_tokens=tokens_out,
                )
            )

    def commit(final: bool = False) -> None:
        nonlocal committed
        if log is not None and (buffer or final):
            sync_totals()
            wall = wall_before + (perf_counter() - started)
            checkpoint = Checkpoint(
                next_step=step,
                state=dump_state(state),
                previous_action=None if previous is None else json.loads(dump_action(previous)),
                totals=totals.to_json(wall),
                done=done,
            )
            log.append(buffer, checkpoint)
        buffer.clear()
        committed = step

    def over_budget() -> BudgetExhaustedError | None:
        if max_samples is not None and samples >= max_samples:
            return BudgetExhaustedError("samples", max_samples, samples, flags["samples"], step)
        if max_tokens is not None and tokens_in + tokens_out >= max_tokens:
            return BudgetExhaustedError(
                "tokens", max_tokens, tokens_in + tokens_out, flags["tokens"], step
            )
        if max_cost is not None:
            cost = token_cost(tokens_in, tokens_out, tokens_cached, prices)
            if cost >= max_cost:
                return BudgetExhaustedError("cost", max_cost, cost, flags["cost"], step)
        return None

    spec: Speculator | None = None
    if speculate:
        spec = Speculator(
            voter,
            step_input=step_input,
            depth=speculate,
            semaphore=semaphore,
            identity=lambda answer: (dump_action(answer.action), state_hash(answer.next_state)),
            may_start=lambda next_state, at: (
                not is_done(next_state)
                and (stop_at is None or at < stop_at)
                and (not budgeted or over_budget() is None)
            ),
            room=(
                (lambda: max_samples - session_base - counter.drawn)  # type: ignore[union-attr]
                if max_samples is not None and counter is not None
                else None
            ),
        )

    def take_waste() -> None:
        # Cancelled speculative samples were paid for: they count in the totals and budgets.
        nonlocal samples, tokens_in, tokens_out
        if spec is not None:
            wasted, wasted_in, wasted_out = spec.take_waste()
            samples += wasted
            tokens_in += wasted_in
            tokens_out += wasted_out
            totals.speculative_wasted += wasted

    progress()
    last_commit = perf_counter()
    try:
        while True:
            if spec is not None:
                take_waste()
            if is_done(state):
                done, stopped = True, "done"
                break
            if stop_at is not None and step >= stop_at:
                stopped = "max_steps"
                break
            if budgeted:
                budget_error = over_budget()
                if budget_error is not None:
                    stopped = "budget"
                    break
            if (
                max_samples is not None
                and max_samples - samples < step_budget
                and not (spec is not None and spec.has(step))  # started within the budget
            ):
                # Near the end of the sample budget: this step may draw only what is
                # left, and stops the run (not a plurality fallback) if that is not enough.
                remaining = max_samples - samples
                if remaining < k:
                    budget_error = BudgetExhaustedError(
                        "samples", max_samples, samples, flags["samples"], step
                    )
                    stopped = "budget"
                    break
                capped = copy.copy(voter)
                # No eager replacement: one thrown away (a stuck step) would come on
                # top of what is left, and this step may draw no more than that.
                capped.policy = replace(
                    voter.policy,
                    max_samples=remaining,
                    on_no_consensus="raise",
                    eager_replacement=False,
                )
                try:
                    result = await capped.vote(
                        step_input(state, previous, step), step=step, semaphore=semaphore
                    )
                except NoConsensusError as exc:
                    _add_counts(failures_total, exc.provider_failures)
                    spent = session_base + counter.drawn if counter is not None else max_samples
                    budget_error = BudgetExhaustedError(
                        "samples", max_samples, spent, flags["samples"], step
                    )
                    stopped = "budget"
                    break
            elif spec is not None:
                result = await spec.decide(state, previous, step)
            else:
                result = await vote(
                    step_input(state, previous, step), step=step, semaphore=semaphore
                )
            answer = result.winner
            previous, state = answer.action, answer.next_state

            drawn = result.samples_drawn
            votes = result.valid_votes
            samples += drawn
            if result.spares_unused:
                samples += result.spares_unused  # billed, never needed
                totals.spares_unused += result.spares_unused
            valid += votes
            tokens_in += result.input_tokens
            tokens_out += result.output_tokens
            if result.cached_input_tokens:
                tokens_cached += result.cached_input_tokens
            samples_hist[drawn] = samples_hist.get(drawn, 0) + 1
            rounds = result.rounds
            rounds_hist[rounds] = rounds_hist.get(rounds, 0) + 1
            flagged = result.red_flags
            if flagged:
                for reason, n in flagged.items():
                    red_flags_total[reason] = red_flags_total.get(reason, 0) + n
                flags_text: str | None = compact_json(flagged)
            else:
                flags_text = None
            how = result.decided_by
            if how != "vote":
                decided_by[how] = decided_by.get(how, 0) + 1
            if result.provider_failures:
                _add_counts(failures_total, result.provider_failures)
            tally = result.tally
            if len(tally) == 1 and how == "vote":
                tally_text = f"[{votes}]"
            else:
                winner_key = result.winner_key
                rest = sorted((n for k_, n in tally.items() if k_ != winner_key), reverse=True)
                tally_text = compact_json([tally.get(winner_key, 0), *rest])  # type: ignore[arg-type]
            append(
                StepRecord(
                    step,
                    dump_action(previous),
                    state_hash(state),
                    tally_text,
                    drawn,
                    votes,
                    flags_text,
                    rounds,
                    result.input_tokens,
                    result.output_tokens,
                    how,
                )
            )
            step += 1
            if on_step is not None:
                on_step(step - 1, result)
            if len(buffer) >= chunk_size or perf_counter() - last_commit >= commit_interval:
                commit()
                last_commit = perf_counter()
                progress()
            if not step & 63:
                # A sampler that answers at once (`sample_now`) never suspends the loop:
                # yield now and then so other tasks run and a cancellation (Ctrl-C) lands.
                await asyncio.sleep(0)
    except asyncio.CancelledError:
        stopped = "cancelled"
        raise
    except KeyboardInterrupt:
        stopped = "cancelled"
        raise
    except Exception as exc:
        stopped = "error"
        if isinstance(exc, NoConsensusError):
            # The undecided step's failed calls happened: the report counts them (its
            # samples are counted through `counter`, below).
            stopped = "no_consensus"
            _add_counts(failures_total, exc.provider_failures)
        raise
    finally:
        # Whatever stopped the loop, every step decided so far is committed; the
        # step in flight (if any) was not decided and will be redone on resume.
        if spec is not None:
            spec.close()  # nothing speculative is ever committed
            await spec.drain()
            take_waste()
        if counter is not None:
            # An undecided step's samples count too: drawn, never voted.
            totals.uncommitted += session_base + counter.drawn - samples
            samples = session_base + counter.drawn
        sync_totals()
        commit(final=True)
        if reservations is not None and counter is not None:
            reservations.release(counter.drawn)  # reserved for calls that failed: not spent
        progress()
    if budget_error is not None:
        raise budget_error
    session = perf_counter() - started
    return _report(
        task.name,
        totals,
        run_id=meta.run_id if meta is not None else None,
        steps=step,
        session_steps=step - first_step,
        resumed_from=first_step,
        done=done,
        stopped=stopped,
        k=voter.policy.k,
        price_in=price_in,
        price_out=price_out,
        price_cached_in=price_cached_in,
        wall_seconds=wall_before + session,
        session_seconds=session,
        final_state=dump_state(state),
        speculate=speculate,
    )


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
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_task(task, sampler, policy, **options))
    raise RuntimeError(
        "run_task_sync() cannot run inside a running event loop; use `await run_task(...)`"
    )
