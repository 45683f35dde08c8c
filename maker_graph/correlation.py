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

Wrong answers need not agree, though. When the pilot kept its wrong answers,
each kind of step also gets a *spread*: the chance that two of its wrong
samples agree on ordinary steps (1: one rival, the assumption above; well
under 1: scattered rivals, against which plurality helps the right answer,
even below p = 0.5). It is the agreeing share of the wrong pairs once the
stuck steps' expected pairs (which agree) are taken out, shrunk towards 1 by
one agreeing pair (no pair seen: one rival, the pessimistic default). The vote
on ordinary steps is then forecast by `maker_graph._rival_spread` (closed form
above a majority, simulated below it).

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

from ._rival_spread import top_rival_wins, vote_error, vote_samples
from .scaling import race_error

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
    spread: float = 1.0
    """Chance that two wrong samples of an ordinary step agree (1: one rival)."""
    spread_draws: list[float] = []
    """Bootstrap spreads, one per entry of `draws` (empty: 1, one rival)."""

    @classmethod
    def assumed(cls, *, h: float, e: float, c: float = 1.0, spread: float = 1.0) -> CorrelationFit:
        """A mixture given by hand (no pilot), e.g. for `maker-graph plan --stuck`.

        Example:
            >>> fit = CorrelationFit.assumed(h=0.01, e=0.002)
            >>> fit.search_k(1_000_000, 0.95)
            (None, 3)
            >>> CorrelationFit.assumed(h=0.0, e=0.002).search_k(1_000_000, 0.95)
            (3, 3)
        """
        for name, value in (("h", h), ("e", e), ("c", c), ("spread", spread)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {name}={value!r}")
        return cls(
            h=h,
            e=e,
            c=c,
            c_fixed=False,
            detected=h > 0,
            lr_statistic=0.0,
            steps=0,
            h_raw=h,
            spread=spread,
        )

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
            # only grows with k: no larger margin can do better. A margin 20 past the
            # best without gain is a plateau (scattered errors below a majority).
            ordinary = (1 - self.h) * vote_error(self.e, self.spread, k)
            if self.h > 0 and ordinary < 1e-6 * self.h:
                break
            if k - best_k >= 20:
                break
        return None, best_k

    def step_error(self, k: int, budget: int | None = None) -> float:
        """Probability that a first-to-ahead-by-k vote decides a step wrongly.

        `budget`: valid samples a vote may draw before plurality decides (None: the
        default `VotePolicy` budget, 10 * k + 20); it matters only below a majority."""
        return _step_error(self._kinds(), k, budget)

    def valid_samples(self, k: int, budget: int | None = None) -> float:
        """Expected valid samples of one vote."""
        h, e, c, s = self._kinds()
        return (1.0 - h) * vote_samples(e, s, k, budget) + h * vote_samples(c, 1.0, k, budget)

    def irreducible(self) -> float:
        """The step error no margin removes: the limit of `step_error(k)` as k grows."""
        h, e, c, s = self._kinds()
        return (1.0 - h) * top_rival_wins(e, s) + h * top_rival_wins(c, 1.0)

    def interval(
        self, k: int, confidence: float = 0.95, budget: int | None = None
    ) -> tuple[float, float]:
        """A bootstrap interval of `step_error(k)`, always containing the point value."""
        point = self.step_error(k, budget)
        if not self.draws:
            return point, point
        spreads = self.spread_draws or [1.0] * len(self.draws)
        values = sorted(
            _step_error((h, e, c, s), k, budget, rough=True)
            for (h, e, c), s in zip(self.draws, spreads, strict=True)
        )
        tail = (1.0 - confidence) / 2.0
        low = values[int(tail * (len(values) - 1))]
        high = values[math.ceil((1.0 - tail) * (len(values) - 1))]
        return min(low, point), max(high, point)

    def _kinds(self) -> tuple[float, float, float, float]:
        return self.h, self.e, self.c, self.spread


_K_SEARCH = 2000
"""Largest margin `search_k` tries before it calls the target unreachable."""


def _p_full(step_error: float, steps: int) -> float:
    return math.exp(steps * math.log1p(-step_error)) if step_error < 1.0 else 0.0


def _step_error(
    kinds: tuple[float, float, float, float], k: int, budget: int | None, *, rough: bool = False
) -> float:
    # Stuck steps have one rival by definition; only ordinary steps' errors spread.
    h, e, c, s = kinds
    ordinary = vote_error(e, s, k, budget, rough=rough)
    return (1.0 - h) * ordinary + h * race_error(c, k)


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


Cell = tuple[int, int, int, int]
"""A step's `(valid samples, wrong samples, wrong pairs, agreeing wrong pairs)`."""


def _cells(counts: Iterable[Cell]) -> Counter[Cell]:
    return Counter(cell for cell in counts if cell[0] >= 2)


def _counts(cells: Counter[Cell]) -> Counter[tuple[int, int]]:
    out: Counter[tuple[int, int]] = Counter()
    for (m, w, _, _), n in cells.items():
        out[(m, w)] += n
    return out


def _spread(cells: Counter[Cell], h: float, e: float, c: float) -> float:
    """The chance that two wrong samples of an ordinary step agree: the agreeing share of
    the wrong pairs left once the stuck steps' expected ones are taken out (their wrong
    samples agree by definition), shrunk towards 1 by one agreeing pair."""
    agree = pairs = 0.0
    for (m, w, n_pairs, n_agree), n in cells.items():
        if not n_pairs:
            continue
        r = _stuck_posterior(m, w, h, e, c)
        agree += n * max(n_agree - r * n_pairs, 0.0)
        pairs += n * (1.0 - r) * n_pairs
    return min((agree + 1.0) / (pairs + 1.0), 1.0)


def _stuck_posterior(m: int, w: int, h: float, e: float, c: float) -> float:
    if h <= 0.0:
        return 0.0
    la = math.log1p(-h) + _binom_log(m, w, e) if h < 1.0 else -math.inf
    lb = math.log(h) + _binom_log(m, w, c)
    top = max(la, lb)
    if top == -math.inf:
        return 1.0 if w == m else 0.0
    return math.exp(lb - top) / (math.exp(la - top) + math.exp(lb - top))


def fit_correlation(
    counts: Sequence[tuple[int, int]],
    *,
    pairs: Sequence[tuple[int, int]] | None = None,
    seed: int = 0,
    bootstrap: int = _BOOTSTRAP,
) -> CorrelationFit:
    """Fit the stuck-step mixture to `(valid samples, wrong samples)` per pilot step.

    Steps with fewer than two valid samples say nothing about correlation and are
    left out. `c` is fitted only when some step has three or more valid samples.
    `pairs`, one `(wrong pairs, agreeing wrong pairs)` per step of `counts`, measures
    how the wrong answers spread (without it: one rival on both kinds of step).

    Example:
        >>> fit = fit_correlation([(2, 0)] * 990 + [(2, 1)] * 10)
        >>> fit.detected, fit.h, fit.e
        (False, 0.0, 0.005)
    """
    if pairs is not None and len(pairs) != len(counts):
        raise ValueError(f"pairs has {len(pairs)} entries for {len(counts)} steps")
    spread_known = pairs is not None
    paired = pairs if pairs is not None else [(0, 0)] * len(counts)
    full = _cells((m, w, a, b) for (m, w), (a, b) in zip(counts, paired, strict=True))
    cells = _counts(full)
    fix_c = not any(m >= 3 for (m, _) in cells)
    h, e, c = _em(cells, fix_c)
    samples = sum(m * n for (m, _), n in cells.items())
    overall = sum(w * n for (_, w), n in cells.items()) / samples if samples else 0.0
    gain = _loglik(cells, h, e, c) - _loglik(cells, 0.0, overall, 1.0) if cells else 0.0
    lr = max(0.0, 2.0 * gain) if math.isfinite(gain) else 0.0
    detected = h > 0.0 and lr > _LR_CRITICAL
    draws: list[tuple[float, float, float]] = []
    spread_draws: list[float] = []
    steps = sum(cells.values())
    if steps:
        rng = random.Random(seed)
        keys = list(full)
        weights = [full[key] for key in keys]
        for _ in range(bootstrap):
            sample = Counter(rng.choices(keys, weights=weights, k=steps))
            fitted = _em(_counts(sample), fix_c)
            draws.append(fitted)
            if spread_known:
                spread_draws.append(_spread(sample, *fitted))
    spread = 1.0
    if spread_known:
        spread = _spread(full, h, e, c) if detected else _spread(full, 0.0, overall, 1.0)
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
        spread=spread,
        spread_draws=spread_draws,
    )
