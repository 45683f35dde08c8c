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
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .correlation import CorrelationFit, fit_correlation
from .costs import Price
from .errors import ConfigurationError, SamplerError
from .records import RawSample, Sample
from .red_flags import RedFlag, check_sample
from .sampling import RetryPolicy, Sampler, draw
from .scaling import estimate_p, plan, race_error
from .tasks.base import StepAnswer

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

Outcome = Literal["correct", "wrong", "malformed", "failed"]

LENGTH_EDGES: tuple[int, ...] = (0, 25, 50, 100, 200, 300, 500, 700, 1000, 1500, 2500, 5000)
"""Lower edges of the output-length bins of the error-vs-length table (tokens)."""

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
    retry: RetryPolicy = field(default_factory=RetryPolicy)
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


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SampleRecord(_Model):
    """One pilot sample, enough to recompute everything at another length cap."""

    step: int
    """The step it answered."""
    index: int
    """Its index among the step's samples."""
    outcome: Outcome
    """`correct`, `wrong` (parsed, not the truth), `malformed` (did not parse) or
    `failed` (the provider failed every retry; not a sample)."""
    answer: str | None = None
    """A short fingerprint of a wrong answer, to tell identical wrong answers apart."""
    flag: str | None = None
    """A further red flag that discarded it (length flags are recomputed, not stored)."""
    output_tokens: int = 0
    """Output tokens (reported by the provider, else counted)."""
    input_tokens: int = 0
    """Input tokens (reported by the provider, else counted)."""
    finish_reason: str | None = None
    """Why generation stopped; `length` means the provider cut it off."""

    def valid(self, cap: int | None) -> bool:
        """True when this sample would vote under a length cap of `cap` tokens."""
        return (
            self.outcome in ("correct", "wrong")
            and self.flag is None
            and self.finish_reason != "length"
            and (cap is None or self.output_tokens <= cap)
        )


class LengthBin(_Model):
    """Error rate of the samples whose output length falls in `[low, high)` tokens."""

    low: int
    high: int | None
    samples: int
    """Samples in the bin (failed calls excluded)."""
    wrong: int
    """Parsed but wrong."""
    malformed: int
    """Did not parse."""

    @property
    def error_rate(self) -> float:
        return (self.wrong + self.malformed) / self.samples if self.samples else 0.0

    @property
    def wrong_rate(self) -> float:
        parsed = self.samples - self.malformed
        return self.wrong / parsed if parsed else 0.0


class CollisionPoint(_Model):
    """Collisions when answers longer than `cap` tokens are red-flagged."""

    cap: int | None
    collisions: int
    """Steps with at least two valid samples that are both wrong."""
    same_answer: int
    """Steps with at least two valid samples giving the same wrong answer."""
    expected: float
    """Collisions expected if errors were independent at the measured error rate."""
    v: float
    """Share of samples that pass the red flags at this cap."""


class PlanRow(_Model):
    """The plan for the full task from one model's measurements, under the measured
    correlation of its errors (independent errors when none was measured or found)."""

    p_used: float
    """The p the independence plan was computed with (point estimate or interval's lower
    end)."""
    steps: int
    target: float
    k_min: int | None
    """Smallest margin reaching `target`; None when no margin does (see `reachable`)."""
    p_full: float
    """Forecast chance of a flawless run at `k_min` (at the best margin when unreachable)."""
    step_error: float
    """Forecast chance that one vote decides wrongly, at the same margin."""
    valid_samples_per_step: float
    samples_per_step: float
    total_samples: float
    cost_per_sample: float | None
    total_cost: float | None
    reachable: bool = True
    """False when no margin up to the search limit reaches `target`."""
    irreducible_step_error: float = 0.0
    """The step error no margin removes (the limit as k grows): the stuck share's."""
    stuck_share: float = 0.0
    """Measured share of steps on which the model is stuck on one wrong answer."""
    step_error_high: float | None = None
    """Upper end of the forecast step error's bootstrap interval."""
    p_full_low: float | None = None
    """p_full at that upper end."""
    independent_k_min: int | None = None
    """What the plan would be if errors were independent (the scaling laws' assumption)."""
    independent_p_full: float | None = None
    """p_full that the independence assumption promises at `k_min` (at its own k_min when
    unreachable)."""
    independent_step_error: float | None = None
    """Step error the independence assumption promises at the same margin."""


class Forecast(_Model):
    """What a first-to-ahead-by-k vote does per step, under the measured correlation."""

    k: int
    step_error: float
    """Probability that one vote decides the step wrongly."""
    step_error_low: float
    step_error_high: float
    """Bootstrap interval of `step_error` (the point itself when correlation was not
    measured)."""
    valid_samples_per_step: float
    samples_per_step: float
    """Expected samples drawn per vote, red-flagged ones included (valid / v)."""
    independent_step_error: float | None
    """The step error if errors were independent at the measured p (None when p <= 0.5)."""
    stuck_share: float
    """Share of steps on which the model is stuck (0: none detected or not measured)."""
    correlated: bool
    """True when the pilot measured correlation (two or more samples a step) and found it."""
    steps: int | None = None
    p_full: float | None = None
    """Chance of `steps` flawless votes (when `steps` was given)."""
    p_full_low: float | None = None


class ModelEstimate(_Model):
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

    def forecast(self, k: int, steps: int | None = None) -> Forecast:
        """Step error and samples of a first-to-ahead-by-`k` vote under the measured
        correlation, with an interval; with `steps`, the chance of a flawless run too.

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
        fit = _effective_fit(self.correlation, 1.0 - self.p)
        low, high = fit.interval(k, self.confidence)
        valid = fit.valid_samples(k)
        err = fit.step_error(k)
        p_full = p_full_low = None
        if steps is not None:
            p_full, p_full_low = _p_full(err, steps), _p_full(high, steps)
        return Forecast(
            k=k,
            step_error=err,
            step_error_low=low,
            step_error_high=high,
            valid_samples_per_step=valid,
            samples_per_step=valid / self.v if self.v else math.inf,
            independent_step_error=race_error(1.0 - self.p, k) if self.p > 0.5 else None,
            stuck_share=fit.h,
            correlated=fit.detected,
            steps=steps,
            p_full=p_full,
            p_full_low=p_full_low,
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


class EstimateReport(_Model):
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


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True, slots=True)
class PilotStep:
    """A step of the task with its right answer."""

    step: int
    state: Any
    previous_action: Any
    truth: StepAnswer


def pick_steps(
    task: Any, n: int, *, seed: int = 0, total_steps: int | None = None
) -> list[PilotStep]:
    """`n` distinct random steps of `task` (all of them when it has fewer), in step order.

    Steps are found by replaying the task's ground truth from the start (a task may
    offer `state_at(step) -> (state, previous_action)` to jump there directly).

    Raises:
        ConfigurationError: the task has no `true_step`.

    Example:
        >>> from maker_graph.tasks.hanoi import HanoiTask
        >>> [s.step for s in pick_steps(HanoiTask(3), 3, seed=1)]
        [0, 1, 4]
    """
    if not callable(getattr(task, "true_step", None)):
        raise ConfigurationError(
            f"{type(task).__name__} has no true_step(): a pilot estimate needs steps whose "
            "right answer is known (a TaskWithTruth)"
        )
    total = total_steps or getattr(task, "total_steps", None) or _count_steps(task)
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(total), min(n, total)))
    state_at = getattr(task, "state_at", None)
    out: list[PilotStep] = []
    if callable(state_at):
        for step in chosen:
            state, previous = state_at(step)
            out.append(PilotStep(step, state, previous, task.true_step(state, previous)))
        return out
    wanted = iter(chosen)
    target = next(wanted, None)
    state, previous = task.initial_state(), None
    step = 0
    while target is not None:
        truth = task.true_step(state, previous)
        if step == target:
            out.append(PilotStep(step, state, previous, truth))
            target = next(wanted, None)
        state, previous = truth.next_state, truth.action
        step += 1
    return out


def _count_steps(task: Any, limit: int = 50_000_000) -> int:
    state, previous, n = task.initial_state(), None, 0
    while not task.is_done(state):
        truth = task.true_step(state, previous)
        state, previous = truth.next_state, truth.action
        n += 1
        if n >= limit:
            raise ConfigurationError(
                f"{type(task).__name__} did not finish within {limit} true steps: "
                "give its length with task_steps="
            )
    return n


# --------------------------------------------------------------------------- sampling


def _fingerprint(answer: StepAnswer) -> str:
    import hashlib

    return hashlib.blake2b(repr(answer.key()).encode(), digest_size=6).hexdigest()


def _score(
    task: Any,
    pilot: PilotStep,
    index: int,
    raw: RawSample,
    red_flags: Sequence[RedFlag],
) -> SampleRecord:
    from .tokens import count_tokens_cached

    try:
        answer = task.parse(raw.output)
        key = answer.key() if hasattr(answer, "key") else answer
        truth_key = pilot.truth.key()
        outcome: Outcome = "correct" if key == truth_key else "wrong"
    except Exception:  # noqa: BLE001 - any parse failure is a malformed answer
        answer, outcome = None, "malformed"
    flag = None
    if outcome != "malformed" and red_flags:
        verdict = check_sample(Sample(index, raw, answer), red_flags)
        flag = verdict.reason if verdict is not None else None
    out_tokens = raw.output_tokens
    if out_tokens is None:
        out_tokens = count_tokens_cached(raw.text)
    return SampleRecord(
        step=pilot.step,
        index=index,
        outcome=outcome,
        answer=_fingerprint(answer) if outcome == "wrong" and answer is not None else None,
        flag=flag,
        output_tokens=out_tokens,
        input_tokens=raw.input_tokens or 0,
        finish_reason=raw.finish_reason,
    )


async def _sample_model(
    task: Any,
    sampler: Sampler,
    steps: Sequence[PilotStep],
    options: EstimateOptions,
) -> tuple[list[SampleRecord], dict[str, int], float]:
    import time

    started = time.perf_counter()
    failures: dict[str, int] = {}
    semaphore = asyncio.Semaphore(options.concurrency)
    inputs = [task.step_input(s.state, s.previous_action, s.step) for s in steps]
    prompt_tokens: dict[int, int] = {}

    async def one(i: int, index: int) -> SampleRecord:
        pilot = steps[i]
        try:
            raw = await draw(
                sampler, inputs[i], index, retry=options.retry, failures=failures,
                semaphore=semaphore,
            )
        except SamplerError:
            return SampleRecord(step=pilot.step, index=index, outcome="failed")
        record = _score(task, pilot, index, raw, options.red_flags)
        if raw.input_tokens is None:
            # No usage from the provider: count the prompt (once per step) instead.
            if i not in prompt_tokens:
                from .costs import count_prompt_tokens

                prompt_tokens[i] = count_prompt_tokens(task.prompt(inputs[i]))
            record = record.model_copy(update={"input_tokens": prompt_tokens[i]})
        return record

    jobs = [one(i, j) for i in range(len(steps)) for j in range(options.samples_per_step)]
    records = list(await asyncio.gather(*jobs))
    return records, failures, time.perf_counter() - started


# --------------------------------------------------------------------------- scoring


def _length_bins(records: Iterable[SampleRecord]) -> list[LengthBin]:
    counts: dict[int, list[int]] = {}
    for r in records:
        if r.outcome == "failed":
            continue
        i = max(j for j, edge in enumerate(LENGTH_EDGES) if r.output_tokens >= edge)
        c = counts.setdefault(i, [0, 0, 0])
        c[0] += 1
        c[1] += r.outcome == "wrong"
        c[2] += r.outcome == "malformed"
    return [
        LengthBin(
            low=LENGTH_EDGES[i],
            high=LENGTH_EDGES[i + 1] if i + 1 < len(LENGTH_EDGES) else None,
            samples=c[0],
            wrong=c[1],
            malformed=c[2],
        )
        for i, c in sorted(counts.items())
    ]


def _collisions(
    records: Sequence[SampleRecord], cap: int | None
) -> tuple[int, int, float, float]:
    by_step: dict[int, list[SampleRecord]] = {}
    drawn = 0
    for r in records:
        drawn += r.outcome != "failed"
        if r.valid(cap):
            by_step.setdefault(r.step, []).append(r)
    valid = sum(len(v) for v in by_step.values())
    wrong_total = sum(1 for v in by_step.values() for r in v if r.outcome == "wrong")
    q = wrong_total / valid if valid else 0.0
    collisions = same = 0
    expected = 0.0
    for rs in by_step.values():
        m = len(rs)
        expected += m * (m - 1) / 2 * q * q
        wrong = [r.answer for r in rs if r.outcome == "wrong"]
        if len(wrong) >= 2:
            collisions += 1
            if len(set(wrong)) < len(wrong):
                same += 1
    return collisions, same, expected, valid / drawn if drawn else 0.0


def _caps(records: Sequence[SampleRecord], cap: int | None) -> list[int | None]:
    longest = max((r.output_tokens for r in records), default=0)
    nice = [25, 50, 75, 100, 150, 200, 300, 400, 500, 600, 700, 750, 800, 1000, 1200, 1500,
            2000, 3000, 5000]
    caps = {c for c in nice if c <= longest * 1.25}
    if cap is not None:
        caps.add(cap)
    return [*sorted(caps), None]  # None: no length flag at all


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
    fit = _fit(records, cap) if valid else None
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
            note = f"p={p_used:.3f} <= 0.5: voting cannot converge; this model cannot do the task"
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
            plan_row = _correlated_plan(
                _effective_fit(fit, 1.0 - p_used),
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

    collisions, same, expected, _ = _collisions(records, cap)
    by_cap = []
    for c in _caps(drawn, cap):
        n_c, same_c, exp_c, v_c = _collisions(records, c)
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
        length_bins=_length_bins(drawn),
        collisions_by_cap=by_cap,
        plan=plan_row,
        note=note,
        wall_seconds=wall_seconds,
        correlation=fit,
        records=list(records),
    )


def _fit(records: Sequence[SampleRecord], cap: int | None) -> CorrelationFit | None:
    """The stuck-step fit from a pilot's valid samples, or None (one sample a step)."""
    by_step: dict[int, list[int]] = {}
    for r in records:
        if r.valid(cap):
            c = by_step.setdefault(r.step, [0, 0])
            c[0] += 1
            c[1] += r.outcome == "wrong"
    counts = [(m, w) for m, w in by_step.values()]
    if not any(m >= 2 for m, _ in counts):
        return None
    return fit_correlation(counts)


def _effective_fit(fit: CorrelationFit | None, e_used: float) -> CorrelationFit:
    """The fit to forecast with: the measured mixture when correlation was found, else
    independent errors at `e_used` (which may be the cautious end of p's interval)."""
    if fit is None:
        return CorrelationFit(
            h=0.0, e=e_used, c=1.0, c_fixed=True, detected=False, lr_statistic=0.0,
            steps=0, h_raw=0.0,
        )
    if not fit.detected:
        return fit.model_copy(update={"e": e_used})
    return fit


def _p_full(step_error: float, steps: int) -> float:
    return math.exp(steps * math.log1p(-step_error)) if step_error < 1.0 else 0.0


def _correlated_plan(
    fit: CorrelationFit,
    *,
    independent: Any,
    p_used: float,
    steps: int,
    target: float,
    v: float,
    cost_per_sample: float | None,
    cautious: bool,
    confidence: float,
) -> PlanRow:
    """The smallest margin whose forecast (under `fit`) reaches `target`, or the best one.

    Cautious plans choose k by the upper end of the step error's interval."""

    chosen, best_k = fit.search_k(steps, target, cautious=cautious, confidence=confidence)
    k = chosen if chosen is not None else best_k
    point = fit.step_error(k)
    high = fit.interval(k, confidence)[1]
    valid = fit.valid_samples(k)
    drawn = valid / v
    total = drawn * steps
    ind_k = independent.k_min
    return PlanRow(
        p_used=p_used,
        steps=steps,
        target=target,
        k_min=chosen,
        p_full=_p_full(point, steps),
        step_error=point,
        valid_samples_per_step=valid,
        samples_per_step=drawn,
        total_samples=total,
        cost_per_sample=cost_per_sample,
        total_cost=total * cost_per_sample if cost_per_sample is not None else None,
        reachable=chosen is not None,
        irreducible_step_error=fit.irreducible(),
        stuck_share=fit.h,
        step_error_high=high,
        p_full_low=_p_full(high, steps),
        independent_k_min=ind_k,
        # At the same k when one was chosen; else at the k independence would choose.
        independent_p_full=_p_full(race_error(1.0 - p_used, chosen or ind_k), steps),
        independent_step_error=race_error(1.0 - p_used, chosen or ind_k),
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
    task_steps = opts.task_steps or getattr(task, "total_steps", None) or _count_steps(task)
    # Pilot steps come from the task itself; task_steps may be a longer run to plan for.
    own = getattr(task, "total_steps", None)
    steps = pick_steps(task, opts.steps, seed=opts.seed, total_steps=own or task_steps)
    results = []
    for name, sampler, price in models:
        records, failures, wall = await _sample_model(task, sampler, steps, opts)
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

