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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ._estimate_plan import Forecast, PlanRow
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
from ._estimate_scoring import ModelEstimate, plan_order, summarise
from ._estimate_tables import (
    LENGTH_EDGES as LENGTH_EDGES,  # re-exported: defined here before the split
)
from ._estimate_tables import CollisionPoint, LengthBin
from ._sync import run_to_end
from .costs import Price
from .errors import ConfigurationError
from .red_flags import RedFlag
from .sampling import ProviderRetry, Sampler

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
        best = min(self.models, key=plan_order, default=None)
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
    models.sort(key=plan_order)
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
    results.sort(key=plan_order)
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
    return run_to_end(estimate(task, models, options, **kwargs), "estimate_sync")
