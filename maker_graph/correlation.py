"""Correlated errors: how often a model is stuck on a wrong answer, and what voting does then.

Voting's guarantee (`maker_graph.scaling`) assumes that each sample of a step
errs independently. Real models do not: on some steps a model is *stuck*, it
gives the same wrong answer nearly every time it is asked, and no margin
fixes that. This module fits a two-kind model of the steps to a pilot's
per-step counts of wrong samples and forecasts a vote under it:

- a share `1 - h` of steps are *ordinary*: each sample is wrong with
  probability `e`, independently (the old assumption);
- a share `h` of steps are *stuck*: each sample is wrong with probability `c`,
  and the wrong ones agree (one rival answer).

A first-to-ahead-by-k vote then decides a step wrongly with probability
`(1 - h) * race_error(e, k) + h * race_error(c, k)` (see
`maker_graph.scaling.race_error`). With `c > 0.5` the second term tends to `h`
as `k` grows: that is the irreducible step error, which no margin removes.

The fit is a maximum-likelihood mixture of two binomials over steps with two
or more valid samples. With exactly two samples a step `c` cannot be told
apart from `h`, so it is fixed at 1 (every stuck sample wrong, the worst
case); with three or more it is fitted. Correlation is reported only when it
is significant (a likelihood-ratio test against `h = 0` at the 0.1 % level);
otherwise the forecast is the independent one. The interval comes from a
bootstrap over steps with a fixed seed, so the same pilot always gives the
same interval.

Example:
    >>> counts = [(2, 0)] * 900 + [(2, 1)] * 60 + [(2, 2)] * 40
    >>> fit = fit_correlation(counts)
    >>> fit.detected, round(fit.h, 3), round(fit.e, 3)
    (True, 0.039, 0.032)
    >>> round(fit.step_error(3), 3)
    0.039
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict

from .scaling import race_error, race_samples

__all__ = ["CorrelationFit", "fit_correlation"]

_BOOTSTRAP = 120
"""Bootstrap resamples of the pilot's steps (fixed seed): enough for a 95 % interval's ends
to move by well under their own width between seeds, cheap enough for every re-plan."""
_LR_CRITICAL = 9.55
"""Likelihood-ratio statistic above which h > 0 is significant at 0.1 % (h = 0 lies on the
boundary, so the null distribution is half chi-square(0), half chi-square(1)). Strict on
purpose: a false alarm makes the plan refuse a model that voting would serve, while a
stuck share large enough to matter gives statistics in the tens or hundreds."""


class CorrelationFit(BaseModel):
    """The fitted share of stuck steps and the error rates of both kinds of step."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    h: float
    """Share of steps on which the model is stuck (0 when not significant)."""
    e: float
    """Per-sample error rate on ordinary steps."""
    c: float
    """Per-sample error rate on stuck steps (the wrong samples agree); 1 when fixed."""
    c_fixed: bool
    """True when `c` was fixed at 1 (two samples a step cannot measure it)."""
    detected: bool
    """True when the data show correlation beyond chance (likelihood-ratio test, 0.1 %)."""
    lr_statistic: float
    """Twice the log-likelihood gain of the mixture over independent errors."""
    steps: int
    """Pilot steps with two or more valid samples (the ones the fit uses)."""
    h_raw: float
    """The maximum-likelihood h before the significance test."""
    draws: list[tuple[float, float, float]] = []
    """Bootstrap fits `(h, e, c)`, for the forecast's interval."""

    @classmethod
    def assumed(cls, *, h: float, e: float, c: float = 1.0) -> CorrelationFit:
        """A mixture given by hand (no pilot), e.g. for `maker-graph plan --stuck`.

        Example:
            >>> fit = CorrelationFit.assumed(h=0.01, e=0.002)
            >>> fit.search_k(1_000_000, 0.95)
            (None, 3)
            >>> CorrelationFit.assumed(h=0.0, e=0.002).search_k(1_000_000, 0.95)
            (3, 3)
        """
        for name, value in (("h", h), ("e", e), ("c", c)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {name}={value!r}")
        return cls(h=h, e=e, c=c, c_fixed=False, detected=h > 0, lr_statistic=0.0, steps=0, h_raw=h)

    def search_k(
        self, steps: int, target: float, *, cautious: bool = False, confidence: float = 0.95
    ) -> tuple[int | None, int]:
        """`(k_min, best_k)`: the smallest margin whose forecast makes `steps` flawless votes
        at least `target` likely (None when no margin up to 2,000 does), and the margin
        with the lowest step error found. `cautious` judges by the interval's upper end.
        """
        best_k, best = 1, math.inf
        for k in range(1, _K_SEARCH + 1):
            err = self.interval(k, confidence)[1] if cautious else self.step_error(k)
            if err < best:
                best_k, best = k, err
            if _p_full(err, steps) >= target:
                return k, k
            # Once the ordinary steps' share of the error is negligible, the stuck share's
            # only grows with k: no larger margin can do better.
            if self.h > 0 and (1 - self.h) * race_error(self.e, k) < 1e-6 * self.h:
                break
        return None, best_k

    def step_error(self, k: int) -> float:
        """Probability that a first-to-ahead-by-k vote decides a step wrongly."""
        return _step_error(self.h, self.e, self.c, k)

    def valid_samples(self, k: int) -> float:
        """Expected valid samples of one vote."""
        return _samples(self.h, self.e, self.c, k)

    def irreducible(self) -> float:
        """The step error no margin removes: the limit of `step_error(k)` as k grows."""
        return _limit(self.h, self.e, self.c)

    def interval(self, k: int, confidence: float = 0.95) -> tuple[float, float]:
        """A bootstrap interval of `step_error(k)`, always containing the point value."""
        point = self.step_error(k)
        if not self.draws:
            return point, point
        values = sorted(_step_error(h, e, c, k) for h, e, c in self.draws)
        tail = (1.0 - confidence) / 2.0
        low = values[int(tail * (len(values) - 1))]
        high = values[math.ceil((1.0 - tail) * (len(values) - 1))]
        return min(low, point), max(high, point)


_K_SEARCH = 2000
"""Largest margin `search_k` tries before it calls the target unreachable."""


def _p_full(step_error: float, steps: int) -> float:
    return math.exp(steps * math.log1p(-step_error)) if step_error < 1.0 else 0.0


def _step_error(h: float, e: float, c: float, k: int) -> float:
    return (1.0 - h) * race_error(e, k) + h * race_error(c, k)


def _samples(h: float, e: float, c: float, k: int) -> float:
    return (1.0 - h) * race_samples(e, k) + h * race_samples(c, k)


def _limit(h: float, e: float, c: float) -> float:
    def one(q: float) -> float:
        return 1.0 if q > 0.5 else 0.5 if q == 0.5 else 0.0

    return (1.0 - h) * one(e) + h * one(c)


# --------------------------------------------------------------------------- fitting


def _binom_log(m: int, w: int, q: float) -> float:
    if q <= 0.0:
        return 0.0 if w == 0 else -math.inf
    if q >= 1.0:
        return 0.0 if w == m else -math.inf
    return (
        math.lgamma(m + 1)
        - math.lgamma(w + 1)
        - math.lgamma(m - w + 1)
        + w * math.log(q)
        + (m - w) * math.log1p(-q)
    )


def _loglik(cells: Counter[tuple[int, int]], h: float, e: float, c: float) -> float:
    total = 0.0
    for (m, w), n in cells.items():
        a = math.log1p(-h) + _binom_log(m, w, e) if h < 1.0 else -math.inf
        b = math.log(h) + _binom_log(m, w, c) if h > 0.0 else -math.inf
        top = max(a, b)
        if top == -math.inf:
            return -math.inf
        total += n * (top + math.log(math.exp(a - top) + math.exp(b - top)))
    return total


def _em(
    cells: Counter[tuple[int, int]], fix_c: bool, iterations: int = 400
) -> tuple[float, float, float]:
    """Maximum-likelihood (h, e, c) of the two-binomial mixture, stuck kind the wronger."""
    samples = sum(m * n for (m, _), n in cells.items())
    wrong = sum(w * n for (_, w), n in cells.items())
    overall = wrong / samples if samples else 0.0
    if not any(w >= 2 for (_, w) in cells):
        # No step with two wrong samples: nothing the stuck kind could explain better.
        return 0.0, overall, 1.0
    h, e, c = 0.05, max(overall * 0.5, 1e-6), 1.0 if fix_c else 0.9
    steps = sum(cells.values())
    for _ in range(iterations):
        sum_r = sum_rw = sum_rm = sum_qw = sum_qm = 0.0
        for (m, w), n in cells.items():
            la = math.log1p(-h) + _binom_log(m, w, e)
            lb = math.log(h) + _binom_log(m, w, c) if h > 0 else -math.inf
            top = max(la, lb)
            if top == -math.inf:
                r = 1.0 if w == m else 0.0
            else:
                pa, pb = math.exp(la - top), math.exp(lb - top)
                r = pb / (pa + pb)
            sum_r += n * r
            sum_rw += n * r * w
            sum_rm += n * r * m
            sum_qw += n * (1 - r) * w
            sum_qm += n * (1 - r) * m
        new_h = min(max(sum_r / steps, 0.0), 1.0 - 1e-12)
        new_e = sum_qw / sum_qm if sum_qm else overall
        new_c = 1.0 if fix_c else (sum_rw / sum_rm if sum_rm else c)
        moved = abs(new_h - h) + abs(new_e - e) + abs(new_c - c)
        h, e, c = new_h, new_e, new_c
        if moved < 1e-10:
            break
    if c < e:  # the labels swapped: the "stuck" kind is the one that errs more
        h, e, c = 1.0 - h, c, e
    if h < 1e-9:
        return 0.0, overall, c
    return h, e, c


def _cells(counts: Iterable[tuple[int, int]]) -> Counter[tuple[int, int]]:
    return Counter((m, w) for m, w in counts if m >= 2)


def fit_correlation(
    counts: Sequence[tuple[int, int]], *, seed: int = 0, bootstrap: int = _BOOTSTRAP
) -> CorrelationFit:
    """Fit the stuck-step mixture to `(valid samples, wrong samples)` per pilot step.

    Steps with fewer than two valid samples say nothing about correlation and are
    left out. `c` is fitted only when some step has three or more valid samples.

    Example:
        >>> fit = fit_correlation([(2, 0)] * 990 + [(2, 1)] * 10)
        >>> fit.detected, fit.h, fit.e
        (False, 0.0, 0.005)
    """
    cells = _cells(counts)
    fix_c = not any(m >= 3 for (m, _) in cells)
    h, e, c = _em(cells, fix_c)
    samples = sum(m * n for (m, _), n in cells.items())
    overall = sum(w * n for (_, w), n in cells.items()) / samples if samples else 0.0
    gain = _loglik(cells, h, e, c) - _loglik(cells, 0.0, overall, 1.0) if cells else 0.0
    lr = max(0.0, 2.0 * gain) if math.isfinite(gain) else 0.0
    detected = h > 0.0 and lr > _LR_CRITICAL
    draws: list[tuple[float, float, float]] = []
    steps = sum(cells.values())
    if steps:
        rng = random.Random(seed)
        keys = list(cells)
        weights = [cells[key] for key in keys]
        for _ in range(bootstrap):
            sample = Counter(rng.choices(keys, weights=weights, k=steps))
            draws.append(_em(sample, fix_c))
    return CorrelationFit(
        h=h if detected else 0.0,
        e=e if detected else overall,
        c=c,
        c_fixed=fix_c,
        detected=detected,
        lr_statistic=lr,
        steps=steps,
        h_raw=h,
        draws=draws,
    )
