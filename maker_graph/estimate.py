"""Pilot estimation: measure a model on random steps with known answers, then plan the run.

Before paying for a million steps, sample a model on a thousand random steps
of the task whose right answers are known (any `TaskWithTruth`), and measure:

- `p`, the share of valid samples that are right, with a Wilson interval;
- `v`, the share of samples that survive the red flags (format and length);
- the mean input and output tokens of a sample, hence its price;
- the error rate against the answer's length (the MAKER paper's Fig. 9a:
  long answers are where models go wrong);
- collisions: steps where two independent samples are both wrong, the
  evidence of correlated errors that voting cannot fix (Fig. 9b), also
  against the length cap;
- how errors correlate: from two or more samples a step, the share of steps
  on which the model is stuck on one wrong answer (`maker_graph.correlation`),
  and `ModelEstimate.forecast(k)`, the step error and samples of a k-vote
  under that correlation, with a bootstrap interval;
- the plan for the whole task under the measured correlation: `k_min`,
  `p_full`, expected samples and cost, or, when no margin reaches the target,
  the lowest step error any margin reaches. The plan that assumes independent
  errors is kept beside it, labelled. With several models, one row each,
  sorted by cost (Fig. 6b).

Every sample is stored in the result (`SampleRecord`), so the length cap can
be changed afterwards without sampling again (`ModelEstimate.at_cap`), and the
plots in `maker_graph.plots` redraw from the file alone.

Example:
    >>> from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
    >>> from maker_graph.testing import ErrorModel
    >>> task = HanoiTask(10)
    >>> sampler = simulated_sampler(task, ErrorModel(error_rate=0.05, seed=1))
    >>> report = estimate_sync(task, [("sim", sampler, None)], EstimateOptions(steps=200))
    >>> row = report.models[0]
    >>> 0.9 < row.p < 1.0, row.plan.k_min
    (True, 4)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ._estimate_plan import (
    Forecast,
    PlanRow,
    correlated_plan,
    effective_fit,
    fit_records,
    forecast_of,
)
from ._estimate_sampling import (
    FrozenModel,
    PilotStep,
    SampleRecord,
    count_steps,
    pick_steps,
    sample_model,
)
from ._estimate_sampling import (
    Outcome as Outcome,  # re-exported: defined here before the split
)
from ._estimate_tables import (
    LENGTH_EDGES as LENGTH_EDGES,  # re-exported: defined here before the split
)
from ._estimate_tables import (
    CollisionPoint,
    LengthBin,
    caps_to_try,
    collision_counts,
    length_bins,
)
from .correlation import CorrelationFit
from .costs import Price
from .errors import ConfigurationError
from .red_flags import RedFlag
from .sampling import ProviderRetry, Sampler
from .scaling import estimate_p, plan, race_error

__all__ = [
    "CollisionPoint",
    "EstimateOptions",
    "EstimateReport",
    "Forecast",
    "LengthBin",
    "ModelEstimate",
    "PilotStep",
    "PlanRow",
    "SampleRecord",
    "estimate",
    "estimate_sync",
    "load_estimate",
    "pick_steps",
    "replan",
    "summarise",
]

_FORMAT = 1
"""Version of the estimate file format."""


# --------------------------------------------------------------------------- options


@dataclass(frozen=True, kw_only=True)
class EstimateOptions:
    """How a pilot estimate samples and what it plans for.

    Example:
        >>> EstimateOptions(steps=500, samples_per_step=3).samples_per_step
        3
    """

    steps: int = 1000
    """Random steps to sample (all steps when the task has fewer)."""
    samples_per_step: int = 2
    """Independent samples per step; 2 or more also measures collisions."""
    seed: int = 0
    """Seed of the choice of steps."""
    max_output_tokens: int | None = 750
    """The length red flag: answers longer than this are discarded (None: no cap)."""
    red_flags: Sequence[RedFlag] = ()
    """Further red flags, applied to answers that parsed and are within the cap."""
    target: float = 0.95
    """Required probability of solving the whole task, for the plan."""
    confidence: float = 0.95
    """Confidence level of the interval around p."""
    cautious: bool = False
    """Plan with the lower end of p's interval instead of the point estimate."""
    task_steps: int | None = None
    """Steps of the full task to plan for (default: the task's `total_steps`)."""
    concurrency: int = 16
    """Samples in flight at once (a model's own rate limiter paces them further)."""
    retry: ProviderRetry = field(default_factory=ProviderRetry)
    """Retries of provider failures; a sample that fails every retry is left out."""

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigurationError(f"steps must be >= 1, got {self.steps}")
        if self.samples_per_step < 1:
            raise ConfigurationError(f"samples_per_step must be >= 1, got {self.samples_per_step}")
        if self.max_output_tokens is not None and self.max_output_tokens < 1:
            raise ConfigurationError(
                f"max_output_tokens must be >= 1, got {self.max_output_tokens}"
            )
        if not 0.0 < self.target < 1.0:
            raise ConfigurationError(f"target must be in (0, 1), got {self.target}")
        if not 0.0 < self.confidence < 1.0:
            raise ConfigurationError(f"confidence must be in (0, 1), got {self.confidence}")
        if self.concurrency < 1:
            raise ConfigurationError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.task_steps is not None and self.task_steps < 1:
            raise ConfigurationError(f"task_steps must be >= 1, got {self.task_steps}")


# --------------------------------------------------------------------------- file format


class ModelEstimate(FrozenModel):
    """What the pilot measured for one model."""

    model: str
    samples: int
    """Samples drawn (failed calls excluded)."""
    valid: int
    """Samples that passed every red flag at the cap."""
    correct: int
    """Valid samples that were right."""
    p: float | None
    """correct / valid (None without valid samples)."""
    p_low: float | None
    p_high: float | None
    confidence: float
    v: float
    """valid / samples: the red-flag pass rate."""
    red_flags: dict[str, int]
    """Discarded samples by reason."""
    provider_failures: dict[str, int]
    """Failed provider calls by kind (retried, never samples)."""
    gave_up: int
    """Samples abandoned after every retry failed."""
    mean_input_tokens: float
    mean_output_tokens: float
    price_in: float | None
    price_out: float | None
    cost_per_sample: float | None
    collisions: int
    same_answer_collisions: int
    expected_collisions: float
    length_bins: list[LengthBin]
    collisions_by_cap: list[CollisionPoint]
    plan: PlanRow | None
    note: str | None = None
    """Why there is no plan, or how it was made (e.g. no error seen)."""
    wall_seconds: float = 0.0
    correlation: CorrelationFit | None = Field(default=None, repr=False)
    """The fitted share of stuck steps (None with one sample a step: not measured)."""
    records: list[SampleRecord] = Field(default_factory=list, repr=False)

    def forecast(
        self, k: int, steps: int | None = None, *, max_samples: int | None = None
    ) -> Forecast:
        """Step error and samples of a first-to-ahead-by-`k` vote under the measured
        correlation and spread of wrong answers, with an interval; with `steps`, the
        chance of a flawless run too. `max_samples` is the vote's budget, after which
        plurality decides (None: `VotePolicy`'s default); it matters below p = 0.5.

        Raises:
            ValueError: no valid sample, or k < 1.

        Example:
            >>> recs = [SampleRecord(step=s, index=i, outcome="correct")
            ...         for s in range(96) for i in range(2)]
            >>> recs += [SampleRecord(step=s, index=i, outcome="wrong", answer="x")
            ...          for s in range(96, 100) for i in range(2)]
            >>> est = summarise("m", recs, cap=None, price=None, task_steps=100)
            >>> f = est.forecast(3)
            >>> f.correlated, round(f.step_error, 2), f.independent_step_error < 1e-4
            (True, 0.04, True)
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if self.p is None:
            raise ValueError(f"{self.model}: no valid sample, nothing to forecast")
        return forecast_of(
            effective_fit(self.correlation, 1.0 - self.p),
            k,
            v=self.v,
            confidence=self.confidence,
            independent=race_error(1.0 - self.p, k) if self.p > 0.5 else None,
            steps=steps,
            max_samples=max_samples,
        )

    def at_cap(
        self,
        cap: int | None,
        *,
        task_steps: int,
        target: float = 0.95,
        cautious: bool = False,
        price: Price | None = None,
    ) -> ModelEstimate:
        """The same samples re-scored with another length cap, task length, target or
        price (no new sampling); `price` None keeps the measured model's price."""
        if price is None and self.price_in is not None and self.price_out is not None:
            price = Price(input=self.price_in, output=self.price_out)
        return summarise(
            self.model,
            self.records,
            cap=cap,
            price=price,
            task_steps=task_steps,
            target=target,
            confidence=self.confidence,
            cautious=cautious,
            provider_failures=self.provider_failures,
            wall_seconds=self.wall_seconds,
        )


class EstimateReport(FrozenModel):
    """A pilot estimate of one or more models on one task; the `--json` file."""

    format: int = _FORMAT
    task: str
    params: dict[str, Any]
    task_steps: int
    """Steps of the full task the plans are for."""
    pilot_steps: int
    """Distinct steps sampled."""
    samples_per_step: int
    seed: int
    max_output_tokens: int | None
    target: float
    cautious: bool = False
    models: list[ModelEstimate]
    """One entry per model, cheapest plan first (models without a plan last)."""

    @property
    def cheapest(self) -> ModelEstimate | None:
        """The cheapest entry whose plan reaches the target (by cost, else by samples),
        or None when none does. With one entry per decorrelation lever of one model,
        the lever to run."""
        best = min(self.models, key=_sort_key, default=None)
        return best if best is not None and best.plan and best.plan.k_min is not None else None

    def choice(self) -> str:
        """One sentence naming the cheapest entry that reaches the target, or saying that
        none does and which comes closest (the lowest forecast step error).

        Example:
            >>> from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
            >>> from maker_graph.testing import ErrorModel
            >>> task = HanoiTask(8)
            >>> levers = [(name, simulated_sampler(task, ErrorModel(error_rate=r, seed=1)),
            ...            None) for name, r in (("plain", 0.2), ("rotated", 0.05))]
            >>> estimate_sync(task, levers, EstimateOptions(steps=200)).choice()
            'cheapest reaching p_full >= 0.95: rotated (k=3, 3.3 samples a step)'
        """
        best = self.cheapest
        if best is not None and best.plan is not None:
            cost = best.plan.total_cost
            price = f", ${cost:,.2f}" if cost is not None else ""
            return (
                f"cheapest reaching p_full >= {self.target:g}: {best.model} "
                f"(k={best.plan.k_min}, {best.plan.samples_per_step:.1f} samples a step{price})"
            )
        planned = [m for m in self.models if m.plan is not None]
        if not planned:
            return f"none reaches p_full >= {self.target:g}: no entry has p > 0.5"
        close = min(planned, key=lambda m: m.plan.step_error if m.plan else 1.0)
        assert close.plan is not None
        return (
            f"none reaches p_full >= {self.target:g}; closest: {close.model} "
            f"(step error {close.plan.step_error:.3g} at its best margin)"
        )

    def save(self, path: str | Path) -> None:
        """Write the report as JSON."""
        # Compact: the file holds every pilot sample, thousands of them.
        Path(path).write_text(self.model_dump_json() + "\n", encoding="utf-8")


def replan(
    report: EstimateReport,
    *,
    task_steps: int | None = None,
    target: float | None = None,
    max_output_tokens: int | None | Literal["keep"] = "keep",
    cautious: bool | None = None,
    price: Price | None = None,
) -> EstimateReport:
    """The estimate re-planned for another task length, target, length cap or price.

    Nothing is sampled again: every model's stored samples are re-scored.

    Example:
        >>> from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
        >>> task = HanoiTask(10)
        >>> est = estimate_sync(task, [("sim", simulated_sampler(task), None)],
        ...                     EstimateOptions(steps=100))
        >>> replan(est, task_steps=1_000_000).models[0].plan.steps
        1000000
    """
    steps = task_steps if task_steps is not None else report.task_steps
    goal = target if target is not None else report.target
    cap = report.max_output_tokens if max_output_tokens == "keep" else max_output_tokens
    careful = report.cautious if cautious is None else cautious
    models = [
        m.at_cap(cap, task_steps=steps, target=goal, cautious=careful, price=price)
        for m in report.models
    ]
    models.sort(key=_sort_key)
    return report.model_copy(
        update={
            "task_steps": steps,
            "target": goal,
            "max_output_tokens": cap,
            "cautious": careful,
            "models": models,
        }
    )


def load_estimate(path: str | Path) -> EstimateReport:
    """Read an estimate file written by `maker-graph estimate --json`.

    Raises:
        ConfigurationError: the file is missing or not an estimate.

    Example:
        >>> import tempfile, os
        >>> from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
        >>> task = HanoiTask(4)
        >>> report = estimate_sync(task, [("sim", simulated_sampler(task), None)],
        ...                        EstimateOptions(steps=10))
        >>> path = os.path.join(tempfile.mkdtemp(), "estimate.json")
        >>> report.save(path)
        >>> load_estimate(path).models[0].samples
        20
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read estimate file {p}: {exc.strerror}") from None
    try:
        return EstimateReport.model_validate_json(text)
    except Exception as exc:  # noqa: BLE001 - pydantic's message lists every problem
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigurationError(
            f"{p} is not an estimate file written by `maker-graph estimate --json` ({first})"
        ) from None


# --------------------------------------------------------------------------- scoring


def summarise(
    model: str,
    records: Sequence[SampleRecord],
    *,
    cap: int | None,
    price: Price | None,
    task_steps: int,
    target: float = 0.95,
    confidence: float = 0.95,
    cautious: bool = False,
    provider_failures: dict[str, int] | None = None,
    wall_seconds: float = 0.0,
) -> ModelEstimate:
    """Score a model's pilot samples at a length cap and plan the full task from them.

    Example:
        >>> recs = [SampleRecord(step=s, index=0, outcome="correct", output_tokens=30)
        ...         for s in range(99)] + [SampleRecord(step=99, index=0, outcome="wrong")]
        >>> est = summarise("m", recs, cap=750, price=None, task_steps=1000)
        >>> est.p, est.plan.k_min
        (0.99, 3)
    """
    drawn = [r for r in records if r.outcome != "failed"]
    valid = [r for r in drawn if r.valid(cap)]
    correct = sum(r.outcome == "correct" for r in valid)
    flags: dict[str, int] = {}
    for r in drawn:
        if r.valid(cap):
            continue
        if r.outcome == "malformed":
            reason = "parse_error"
        elif r.finish_reason == "length":
            reason = "truncated"
        elif r.flag is not None:
            reason = r.flag
        else:
            reason = "too_long"
        flags[reason] = flags.get(reason, 0) + 1
    n = len(drawn)
    mean_in = sum(r.input_tokens for r in drawn) / n if n else 0.0
    mean_out = sum(r.output_tokens for r in drawn) / n if n else 0.0
    cost_per_sample = price.cost(mean_in, mean_out) if price is not None else None
    v = len(valid) / n if n else 0.0

    p = p_low = p_high = None
    plan_row = None
    note = None
    fit = fit_records(records, cap) if valid else None
    if valid:
        est = estimate_p(correct, len(valid), confidence)
        p, p_low, p_high = est.p, est.low, est.high
        p_used = p_low if cautious else p
        if p == 1.0 and not cautious:
            p_used = p_low
            note = (
                f"no error in {len(valid)} valid samples: planned with the interval's lower "
                f"end p={p_used:.4f}, not p=1"
            )
        if p_used <= 0.5:
            note = (
                f"p={p_used:.3f} <= 0.5: no plan; against one rival voting cannot converge, "
                f"and only widely scattered wrong answers let plurality find the right one "
                f"(forecast(k) says what a vote does here)"
            )
        else:
            pl = plan(
                p_used,
                task_steps,
                target=target,
                v=v,
                price_in=price.input if price else 0.0,
                price_out=price.output if price else 0.0,
                tokens_in=mean_in,
                tokens_out=mean_out,
            )
            plan_row = correlated_plan(
                effective_fit(fit, 1.0 - p_used),
                independent=pl,
                p_used=p_used,
                steps=task_steps,
                target=target,
                v=v,
                cost_per_sample=pl.cost_per_sample if price is not None else None,
                cautious=cautious,
                confidence=confidence,
            )
            if cautious:
                note = f"planned with the interval's lower end p={p_used:.4f}"
            if not plan_row.reachable:
                note = (
                    f"no margin reaches p_full >= {target:g}: on {plan_row.stuck_share:.1%} "
                    f"of steps the model is stuck on one wrong answer, so every vote errs "
                    f"with probability >= {plan_row.step_error:.3g} (irreducible "
                    f"{plan_row.irreducible_step_error:.3g} as k grows); the best margin "
                    f"gives p_full {plan_row.p_full:.3g}. Decorrelate (rotate prompts or "
                    f"models) or decompose further; more voting will not help"
                )
    else:
        note = "no valid sample: every answer was red-flagged or failed"

    collisions, same, expected, _ = collision_counts(records, cap)
    by_cap = []
    for c in caps_to_try(drawn, cap):
        n_c, same_c, exp_c, v_c = collision_counts(records, c)
        by_cap.append(
            CollisionPoint(cap=c, collisions=n_c, same_answer=same_c, expected=exp_c, v=v_c)
        )
    return ModelEstimate(
        model=model,
        samples=n,
        valid=len(valid),
        correct=correct,
        p=p,
        p_low=p_low,
        p_high=p_high,
        confidence=confidence,
        v=v,
        red_flags=dict(sorted(flags.items())),
        provider_failures=dict(sorted((provider_failures or {}).items())),
        gave_up=len(records) - n,
        mean_input_tokens=mean_in,
        mean_output_tokens=mean_out,
        price_in=price.input if price else None,
        price_out=price.output if price else None,
        cost_per_sample=cost_per_sample,
        collisions=collisions,
        same_answer_collisions=same,
        expected_collisions=expected,
        length_bins=length_bins(drawn),
        collisions_by_cap=by_cap,
        plan=plan_row,
        note=note,
        wall_seconds=wall_seconds,
        correlation=fit,
        records=list(records),
    )


def _sort_key(m: ModelEstimate) -> tuple[int, float, float]:
    if m.plan is None or m.plan.k_min is None:
        return (2, 0.0, 0.0)
    cost = m.plan.total_cost
    # Without prices, compare expected samples (the cost in calls).
    return (0, cost, m.plan.total_samples) if cost is not None else (1, m.plan.total_samples, 0.0)


# --------------------------------------------------------------------------- entry points


async def estimate(
    task: Any,
    models: Sequence[tuple[str, Sampler, Price | None]],
    options: EstimateOptions | None = None,
    *,
    on_model: Callable[[ModelEstimate], Any] | None = None,
) -> EstimateReport:
    """Sample each model on the same random steps, score the samples and plan the task.

    Args:
        task: a task with ground truth (`TaskWithTruth`).
        models: `(name, sampler, price)` per model; the price may be None (unknown).
        options: how many steps and samples, the length cap, the plan's target.
        on_model: called with each model's result as soon as it is done.

    Returns:
        An `EstimateReport`, models sorted by the cost of their plan.

    Raises:
        ConfigurationError: no model, or a task without ground truth.
    """
    opts = options or EstimateOptions()
    if not models:
        raise ConfigurationError("estimate needs at least one model")
    task_steps = opts.task_steps or getattr(task, "total_steps", None) or count_steps(task)
    # Pilot steps come from the task itself; task_steps may be a longer run to plan for.
    own = getattr(task, "total_steps", None)
    steps = pick_steps(task, opts.steps, seed=opts.seed, total_steps=own or task_steps)
    results = []
    for name, sampler, price in models:
        records, failures, wall = await sample_model(
            task,
            sampler,
            steps,
            samples_per_step=opts.samples_per_step,
            concurrency=opts.concurrency,
            retry=opts.retry,
            red_flags=opts.red_flags,
        )
        result = summarise(
            name,
            records,
            cap=opts.max_output_tokens,
            price=price,
            task_steps=task_steps,
            target=opts.target,
            confidence=opts.confidence,
            cautious=opts.cautious,
            provider_failures=failures,
            wall_seconds=wall,
        )
        if on_model is not None:
            on_model(result)
        results.append(result)
    results.sort(key=_sort_key)
    return EstimateReport(
        task=getattr(task, "name", type(task).__name__),
        params=dict(getattr(task, "params", {}) or {}),
        task_steps=task_steps,
        pilot_steps=len(steps),
        samples_per_step=opts.samples_per_step,
        seed=opts.seed,
        max_output_tokens=opts.max_output_tokens,
        target=opts.target,
        cautious=opts.cautious,
        models=results,
    )


def estimate_sync(
    task: Any,
    models: Sequence[tuple[str, Sampler, Price | None]],
    options: EstimateOptions | None = None,
    **kwargs: Any,
) -> EstimateReport:
    """Synchronous `estimate`; cannot be called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(estimate(task, models, options, **kwargs))
    raise RuntimeError(
        "estimate_sync() cannot run inside a running event loop; use `await estimate(...)`"
    )
