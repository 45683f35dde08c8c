"""One model's pilot scored: `ModelEstimate` and `summarise`, which makes it.

A model's stored `SampleRecord`s are scored at a length cap (p with its interval,
the red-flag pass rate, tokens and price, the error tables) and turned into the
plan for the full task; `ModelEstimate.at_cap` scores the same records again at
another cap, task length, target or price. `maker_graph.estimate` draws the
records and collects one `ModelEstimate` per model into an `EstimateReport`.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from ._estimate_plan import (
    Forecast,
    PlanRow,
    correlated_plan,
    effective_fit,
    fit_records,
    forecast_of,
)
from ._estimate_sampling import FrozenModel, SampleRecord
from ._estimate_tables import (
    CollisionPoint,
    LengthBin,
    caps_to_try,
    collision_counts,
    length_bins,
)
from .correlation import CorrelationFit
from .costs import Price
from .scaling import estimate_p, plan, race_error

__all__ = ["ModelEstimate", "plan_order", "summarise"]


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


def plan_order(m: ModelEstimate) -> tuple[int, float, float]:
    """Sort key of estimates: cheapest reaching plan first (by dollars, else by samples),
    those without a reaching plan last."""
    if m.plan is None or m.plan.k_min is None:
        return (2, 0.0, 0.0)
    cost = m.plan.total_cost
    # Without prices, compare expected samples (the cost in calls).
    return (0, cost, m.plan.total_samples) if cost is not None else (1, m.plan.total_samples, 0.0)
