"""The plan under the measured correlation: the stuck-step fit, forecasts and `PlanRow`.

From a pilot's records this fits the share of steps a model is stuck on one wrong
answer (`maker_graph.correlation`) and turns it into the smallest margin k that
reaches the target, with the plan that assumes independent errors kept beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ._estimate_sampling import FrozenModel, SampleRecord
from ._rival_spread import agreement
from .correlation import CorrelationFit, fit_correlation
from .scaling import race_error


class PlanRow(FrozenModel):
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


class Forecast(FrozenModel):
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
    spread: float = 1.0
    """Chance that two wrong samples of an ordinary step agree (1: one rival, assumed when
    the pilot could not measure it)."""
    steps: int | None = None
    p_full: float | None = None
    """Chance of `steps` flawless votes (when `steps` was given)."""
    p_full_low: float | None = None


def fit_records(records: Sequence[SampleRecord], cap: int | None) -> CorrelationFit | None:
    """The stuck-step fit from a pilot's valid samples, or None (one sample a step).
    The wrong answers' agreement measures their spread (files written before answers
    were kept have none: one rival)."""
    valid: dict[int, int] = {}
    wrong: dict[int, list[str | None]] = {}
    for r in records:
        if r.valid(cap):
            valid[r.step] = valid.get(r.step, 0) + 1
            if r.outcome == "wrong":
                wrong.setdefault(r.step, []).append(r.answer)
    counts = [(m, len(wrong.get(step, []))) for step, m in valid.items()]
    if not any(m >= 2 for m, _ in counts):
        return None
    answers = [a for a in wrong.values()]
    if any(a is None for each in answers for a in each):
        return fit_correlation(counts)
    return fit_correlation(counts, pairs=[agreement(wrong.get(step, [])) for step in valid])


def effective_fit(fit: CorrelationFit | None, e_used: float) -> CorrelationFit:
    """The fit to forecast with: the measured mixture when correlation was found, else
    independent errors at `e_used` (which may be the cautious end of p's interval)."""
    if fit is None:
        return CorrelationFit(
            h=0.0,
            e=e_used,
            c=1.0,
            c_fixed=True,
            detected=False,
            lr_statistic=0.0,
            steps=0,
            h_raw=0.0,
        )
    if not fit.detected:
        return fit.model_copy(update={"e": e_used})
    return fit


def forecast_of(
    fit: CorrelationFit,
    k: int,
    *,
    v: float,
    confidence: float,
    independent: float | None,
    steps: int | None,
    max_samples: int | None,
) -> Forecast:
    """A `Forecast` of a k-vote under `fit`; `max_samples` counts red-flagged samples
    too, as `VotePolicy.max_samples` does (None: its default, 10 * k + 20)."""
    drawn_cap = max_samples if max_samples is not None else 10 * k + 20
    budget = max(k, round(drawn_cap * v)) if v > 0 else k
    low, high = fit.interval(k, confidence, budget)
    valid = fit.valid_samples(k, budget)
    err = fit.step_error(k, budget)
    return Forecast(
        k=k,
        step_error=err,
        step_error_low=low,
        step_error_high=high,
        valid_samples_per_step=valid,
        samples_per_step=valid / v if v else math.inf,
        independent_step_error=independent,
        stuck_share=fit.h,
        correlated=fit.detected,
        spread=fit.spread,
        steps=steps,
        p_full=p_full_of(err, steps) if steps is not None else None,
        p_full_low=p_full_of(high, steps) if steps is not None else None,
    )


def p_full_of(step_error: float, steps: int) -> float:
    return math.exp(steps * math.log1p(-step_error)) if step_error < 1.0 else 0.0


def correlated_plan(
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
        p_full=p_full_of(point, steps),
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
        p_full_low=p_full_of(high, steps),
        independent_k_min=ind_k,
        # At the same k when one was chosen; else at the k independence would choose.
        independent_p_full=p_full_of(race_error(1.0 - p_used, chosen or ind_k), steps),
        independent_step_error=race_error(1.0 - p_used, chosen or ind_k),
    )
