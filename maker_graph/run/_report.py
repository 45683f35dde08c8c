"""What a run reports: its progress events, its totals (kept in every checkpoint), its report.

`Totals` is what a checkpoint stores so a resumed run continues its counts;
`build_report` turns totals into the `RunReport` of a session or of a log;
`count_errors` checks committed steps against a task's ground truth.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Literal

from ..costs import token_cost
from ..errors import ConfigurationError, RunLogError
from ..runlog import RunLog, StepRecord, open_run_log
from ._task_io import task_codec

StopReason = Literal["done", "budget", "max_steps", "no_consensus", "cancelled", "error"]
"""Why a run stopped: finished, a run budget spent, `max_steps` reached, a step without
consensus, cancelled (Ctrl-C), or another error."""


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
    unmetered_samples: int = 0
    """Of `samples`, those whose request was cancelled in flight (a speculative step
    whose guess lost, a replacement thrown away when its step proved stuck): most
    providers bill them, but no usage came back, so `input_tokens`, `output_tokens`
    and `cost` leave them out. 0 means the token counts are the whole bill."""
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


@dataclass(slots=True)
class Totals:
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
    unmetered: int = 0

    def to_json(self, wall_seconds: float) -> dict[str, Any]:
        data = asdict(self)
        for name in ("samples_histogram", "rounds_histogram"):  # JSON keys are strings
            data[name] = {str(k): v for k, v in data[name].items()}
        data["wall_seconds"] = wall_seconds
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Totals:
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                continue  # written before the field existed: its default
            if f.default is MISSING:  # counts by kind, or a histogram (int keys)
                key = int if f.name.endswith("histogram") else str
                values[f.name] = {key(k): int(v) for k, v in data[f.name].items()}
            else:
                values[f.name] = type(f.default)(data[f.name])
        return cls(**values)


def build_report(
    task_name: str,
    totals: Totals,
    *,
    run_id: str | None,
    steps: int,
    resumed_from: int,
    done: bool,
    stopped: StopReason,
    k: int,
    prices: tuple[float, float, float | None],
    wall_seconds: float,
    final_state: Any,
    session_steps: int = 0,
    session_seconds: float = 0.0,
    speculate: int = 0,
) -> RunReport:
    """The `RunReport` of `totals`, priced at `prices` (in, out, cached in per million)."""
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
        unmetered_samples=totals.unmetered,
        cost=token_cost(
            totals.input_tokens, totals.output_tokens, totals.cached_input_tokens, prices
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
        >>> from maker_graph.run import run_task_sync
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
        totals = Totals.from_json(cp.totals) if cp is not None else Totals()
        steps = cp.next_step if cp is not None else 0
        done = cp.done if cp is not None else False
        return build_report(
            meta.task,
            totals,
            run_id=meta.run_id,
            steps=steps,
            resumed_from=steps,
            done=done,
            stopped="done" if done else "cancelled",
            k=k or int(meta.settings.get("k", 0) or 0),
            prices=(price_in, price_out, price_cached_in),
            wall_seconds=totals.wall_seconds,
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
        >>> import tempfile
        >>> from maker_graph.run import run_task_sync
        >>> from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
        >>> task, where = HanoiTask(3), tempfile.mkdtemp()
        >>> _ = run_task_sync(task, simulated_sampler(task), run_log=where)
        >>> from maker_graph.runlog import open_run_log
        >>> with open_run_log(where, readonly=True) as log:
        ...     count_errors(task, log.steps())
        0
    """
    true_step = getattr(task, "true_step", None)
    if true_step is None:
        raise ConfigurationError(f"{type(task).__name__} has no true_step(): no ground truth")
    codec = task_codec(task)
    state, previous = task.initial_state(), None
    errors = 0
    for record in records:
        truth = true_step(state, previous)
        if (
            codec.dump_action(truth.action) != record.action
            or codec.state_hash(truth.next_state) != record.state_hash
        ):
            errors += 1
        state, previous = truth.next_state, truth.action
    return errors
