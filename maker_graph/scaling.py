"""Scaling laws of first-to-ahead-by-k voting: margins, success odds, sample counts, cost.

These are the closed forms MAKER uses to size a run before spending money on it
(Meyerson et al. 2025, section 3 and appendix B). Everything here is plain
arithmetic on floats: no LangGraph, no model calls, no state.

Notation shared by every function:

- `p`: probability that one *valid* (not red-flagged) sample answers one step
  correctly.
- `k`: the margin; a vote ends when one answer leads every other by `k`.
- `steps`: number of task steps `s`.
- `m`: task steps handled by one agent call; the vote is then over a block of
  `m` steps whose success probability is `q = p**m`. MAKER uses `m = 1`.
- `target`: the probability `t` with which the whole task should succeed.
- `v`: probability that a sample passes the red flags; flagged samples are
  drawn but never voted, so they only inflate the sample count.

The bounds are worst case: every wrong sample is assumed to agree on the same
rival answer. Wrong answers that scatter over several values only make the race
easier for the right one.

Example:
    >>> from maker_graph.scaling import k_min, p_full
    >>> k_min(0.9978, 1_048_575, target=0.95)
    3
    >>> round(p_full(0.9978, 3, 1_048_575), 3)
    0.989
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ._p_estimate import PEstimate, estimate_p
from ._scaling_checks import (
    check_non_negative,
    check_p,
    check_positive_int,
    check_target,
    check_v,
)

__all__ = [
    "CostEstimate",
    "PEstimate",
    "Plan",
    "estimate_p",
    "expected_cost",
    "expected_samples_per_step",
    "k_min",
    "p_full",
    "p_step",
    "plan",
    "race_error",
    "race_samples",
]

# How close (relative) the k_min ratio must be to an integer to count as that integer.
# Without it, a ratio that is mathematically 3 but computed as 3.0000000000000004 would
# be rounded up to 4; the exact check against `p_full` afterwards settles the rest.
_INTEGER_TOLERANCE = 1e-9


# --------------------------------------------------------------------------- core math


def _q_and_one_minus_q(p: float, m: int) -> tuple[float, float]:
    """Return `(p**m, 1 - p**m)`, the latter without cancellation when p is near 1."""
    if m == 1:
        return p, 1.0 - p  # exact for p in [0.5, 1] (Sterbenz lemma)
    log_q = m * math.log(p)
    return math.exp(log_q), -math.expm1(log_q)


def _r_power_k(p: float, k: int, m: int) -> float:
    """Return `r**k` with `r = (1 - q) / q`; 0.0 when `p == 1`."""
    q, one_minus_q = _q_and_one_minus_q(p, m)
    if one_minus_q == 0.0:
        return 0.0
    # Through logs so that large k underflows gracefully to 0 instead of raising.
    return math.exp(k * (math.log(one_minus_q) - math.log(q)))


def p_step(p: float, k: int, m: int = 1) -> float:
    """Probability that one first-to-ahead-by-k vote picks the correct answer.

    The vote is a random walk on the lead of the right answer over its (single,
    worst-case) rival, absorbed at `+k` or `-k`; the right answer wins with
    probability `1 / (1 + r**k)` where `r = (1 - q) / q` and `q = p**m`.

    Args:
        p: Per-step success probability of one valid sample, in (0.5, 1].
        k: Margin, at least 1.
        m: Task steps per agent call, at least 1.

    Returns:
        The probability that the vote settles on the correct answer.

    Raises:
        ValueError: If `p`, `k` or `m` is out of range.

    Example:
        >>> round(p_step(0.9, 3), 6)
        0.99863
    """
    check_positive_int("k", k)
    check_positive_int("m", m)
    check_p(p, m)
    return 1.0 / (1.0 + _r_power_k(p, k, m))


def p_full(p: float, k: int, steps: int, m: int = 1) -> float:
    """Probability that all `steps / m` votes of a task pick the correct answer.

    Computes `(1 + r**k) ** (-steps / m)` as `exp(-(steps / m) * log1p(r**k))`:
    for realistic runs `r**k` is around 1e-8 and `steps` around 1e6, where the
    naive power would lose most of its significant digits.

    Args:
        p: Per-step success probability of one valid sample, in (0.5, 1].
        k: Margin, at least 1.
        steps: Number of task steps, at least 1.
        m: Task steps per agent call, at least 1.

    Returns:
        The probability that the whole task is solved without a wrong step.

    Raises:
        ValueError: If an argument is out of range.

    Example:
        >>> round(p_full(0.9978, 3, 1_048_575), 4)
        0.9888
    """
    check_positive_int("k", k)
    check_positive_int("steps", steps)
    check_positive_int("m", m)
    check_p(p, m)
    return math.exp(-(steps / m) * math.log1p(_r_power_k(p, k, m)))


def _k_ratio(p: float, steps: int, target: float, m: int) -> float:
    """The unrounded closed form `ln(t**(-m/s) - 1) / ln((1 - q) / q)` (q < 1 only)."""
    q, one_minus_q = _q_and_one_minus_q(p, m)
    y = -(m / steps) * math.log(target)  # > 0 because target < 1
    # t**(-m/s) - 1 = expm1(y); for a million steps y is ~5e-8 and `t**(-m/s) - 1`
    # computed directly would keep only about half of its digits.
    gap = math.expm1(y)
    log_gap = math.log(gap) if gap > 0.0 else math.log(y)  # y underflowed: expm1(y) ~ y
    return log_gap / (math.log(one_minus_q) - math.log(q))


def k_min(p: float, steps: int, target: float = 0.95, m: int = 1) -> int:
    """Smallest margin `k` for which the whole task succeeds with probability >= `target`.

    Evaluates the closed form `ceil(ln(t**(-m/s) - 1) / ln((1 - q) / q))` (at least 1),
    treats a ratio within a relative 1e-9 of an integer as that integer, and then
    checks the answer against `p_full`, stepping `k` up or down until
    `p_full(p, k, steps, m) >= target` holds and, when `k > 1`,
    `p_full(p, k - 1, steps, m) >= target` does not. So the result is exactly the
    minimal `k` under `p_full` even where floating-point rounding puts the closed
    form on the wrong side of an integer.

    `k_min` grows like `ln(steps)`, and it does not depend on the red-flag pass
    rate `v` (flags change how many samples a vote costs, not who wins it).

    Args:
        p: Per-step success probability of one valid sample, in (0.5, 1].
        steps: Number of task steps, at least 1.
        target: Required probability of solving the whole task, in (0, 1).
        m: Task steps per agent call, at least 1.

    Returns:
        The minimal margin, at least 1 (exactly 1 when `p == 1`).

    Raises:
        ValueError: If an argument is out of range.

    Example:
        >>> k_min(0.9978, 1_048_575, target=0.95)
        3
        >>> k_min(0.9, 1_000_000, target=0.99)
        9
    """
    check_positive_int("steps", steps)
    check_positive_int("m", m)
    check_target(target)
    check_p(p, m)
    _, one_minus_q = _q_and_one_minus_q(p, m)
    if one_minus_q == 0.0:
        return 1  # a model that is never wrong needs no margin beyond the first vote

    ratio = _k_ratio(p, steps, target, m)
    nearest = round(ratio)
    if abs(ratio - nearest) <= _INTEGER_TOLERANCE * max(1.0, abs(ratio)):
        k = int(nearest)
    else:
        k = math.ceil(ratio)
    k = max(k, 1)

    # The closed form and p_full round differently; make the answer agree with p_full,
    # which is what callers check against. Each loop runs at most a step or two.
    while p_full(p, k, steps, m) < target:
        k += 1
    while k > 1 and p_full(p, k - 1, steps, m) >= target:
        k -= 1
    return k


def expected_samples_per_step(p: float, k: int) -> float:
    """Expected number of valid samples one first-to-ahead-by-k vote draws.

    This is the expected duration of a gambler's-ruin walk started at 0 with
    absorbing barriers at `+k` and `-k`:
    `(k / (2p - 1)) * (2 / (1 + r**k) - 1)` with `r = (1 - p) / p`. Because
    `2 / (1 + r**k) - 1 = tanh(k * atanh(2p - 1))`, it is evaluated as
    `k * tanh(k * atanh(2p - 1)) / (2p - 1)`, which stays accurate as p nears 0.5
    (where the value tends to `k**2`). For `p == 1` it is exactly `k`.

    Only valid samples are counted; divide by the red-flag pass rate `v` for all
    samples drawn (see `expected_cost`). For blocks of `m` steps pass `p**m`.

    Args:
        p: Success probability of one valid sample, in (0.5, 1].
        k: Margin, at least 1.

    Returns:
        The expected number of valid samples until the vote is decided.

    Raises:
        ValueError: If `p` or `k` is out of range.

    Example:
        >>> round(expected_samples_per_step(0.9978, 3), 4)
        3.0133
    """
    check_positive_int("k", k)
    check_p(p)
    if p == 1.0:
        return float(k)  # atanh(1) is infinite; every sample agrees, so k samples
    x = 2.0 * p - 1.0
    return k * math.tanh(k * math.atanh(x)) / x


def race_error(q: float, k: int) -> float:
    """Probability that a first-to-ahead-by-k race ends on the wrong answer.

    The race is between the right answer and one rival that every wrong sample
    gives, each valid sample wrong with probability `q`. Unlike `p_step` this
    takes any `q` in [0, 1]: with `q > 0.5` the rival usually wins, which is
    what a vote does on a step where the model is stuck on one wrong answer
    (see `maker_graph.correlation`).

    Example:
        >>> round(race_error(0.1, 3), 6), race_error(0.5, 4), round(race_error(0.9, 3), 4)
        (0.00137, 0.5, 0.9986)
    """
    check_positive_int("k", k)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be a probability in [0, 1], got q={q!r}")
    if q == 0.0 or q == 1.0:
        return q
    # r**k / (1 + r**k) with r = q / (1 - q), as a logistic of k * log(r): no overflow.
    x = k * (math.log(q) - math.log1p(-q))
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    ex = math.exp(x)
    return ex / (1.0 + ex)


def race_samples(q: float, k: int) -> float:
    """Expected valid samples of the race in `race_error` (symmetric in `q` and `1 - q`).

    Example:
        >>> race_samples(0.5, 3), race_samples(0.0, 3)
        (9.0, 3.0)
    """
    check_positive_int("k", k)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be a probability in [0, 1], got q={q!r}")
    x = abs(1.0 - 2.0 * q)
    if x == 0.0:
        return float(k * k)
    if x == 1.0:
        return float(k)
    return k * math.tanh(k * math.atanh(x)) / x


# --------------------------------------------------------------------------- cost


@dataclass(frozen=True, kw_only=True)
class CostEstimate:
    """Expected sampling effort and price of a voted run.

    A "step" here is one vote, i.e. one agent call covering `m` task steps; with
    the usual `m = 1` that is one task step.

    Example:
        >>> est = expected_cost(0.9978, 3, 1_048_575, price_out=1.6, tokens_out=200)
        >>> round(est.total_samples / 1e6, 2)
        3.16
    """

    p: float
    """Per-step success probability of one valid sample."""
    k: int
    """Voting margin."""
    steps: int
    """Number of task steps."""
    m: int
    """Task steps per agent call."""
    v: float
    """Probability that a sample passes the red flags."""
    price_in: float
    """Price of input tokens, per million tokens."""
    price_out: float
    """Price of output tokens, per million tokens."""
    tokens_in: float
    """Average input tokens per sample."""
    tokens_out: float
    """Average output tokens per sample."""
    valid_samples_per_step: float
    """Expected valid (voted) samples per vote."""
    samples_per_step: float
    """Expected samples drawn per vote, red-flagged ones included: valid / v."""
    total_samples: float
    """Expected samples drawn for the whole task: samples_per_step * steps / m."""
    cost_per_sample: float
    """Price of one sample: price_in * tokens_in / 1e6 + price_out * tokens_out / 1e6."""
    total_cost: float
    """Expected price of the whole task: total_samples * cost_per_sample."""

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain, JSON-serialisable dict.

        Example:
            >>> expected_cost(0.9, 2, 10).to_dict()["k"]
            2
        """
        return asdict(self)


def _sample_cost(price_in: float, price_out: float, tokens_in: float, tokens_out: float) -> float:
    for name, value in (
        ("price_in", price_in),
        ("price_out", price_out),
        ("tokens_in", tokens_in),
        ("tokens_out", tokens_out),
    ):
        check_non_negative(name, value)
    # Prices are quoted per million tokens, as providers list them.
    return price_in * tokens_in / 1e6 + price_out * tokens_out / 1e6


def expected_cost(
    p: float,
    k: int,
    steps: int,
    *,
    m: int = 1,
    v: float = 1.0,
    price_in: float = 0.0,
    price_out: float = 0.0,
    tokens_in: float = 0.0,
    tokens_out: float = 0.0,
) -> CostEstimate:
    """Expected number of samples and total price of voting through a task.

    Each of the `steps / m` votes draws `expected_samples_per_step(p**m, k)` valid
    samples; red flags discard a share `1 - v` of all samples, so `1 / v` times
    as many are drawn. Flagged samples are priced like valid ones, which
    underestimates a little when the flag is "answer too long".

    Args:
        p: Per-step success probability of one valid sample, in (0.5, 1].
        k: Margin, at least 1.
        steps: Number of task steps, at least 1.
        m: Task steps per agent call, at least 1.
        v: Probability that a sample passes the red flags, in (0, 1].
        price_in: Price per million input tokens.
        price_out: Price per million output tokens.
        tokens_in: Average input tokens per sample.
        tokens_out: Average output tokens per sample.

    Returns:
        A `CostEstimate` with the inputs and the expected counts and prices.

    Raises:
        ValueError: If an argument is out of range.

    Example:
        >>> est = expected_cost(0.9978, 3, 1_048_575, price_in=0.4, price_out=1.6,
        ...                     tokens_in=300, tokens_out=200)
        >>> round(est.total_cost)
        1390
    """
    check_positive_int("k", k)
    check_positive_int("steps", steps)
    check_positive_int("m", m)
    check_p(p, m)
    check_v(v)
    cost_per_sample = _sample_cost(price_in, price_out, tokens_in, tokens_out)
    q, _ = _q_and_one_minus_q(p, m)
    valid = expected_samples_per_step(q, k)
    drawn = valid / v
    total = drawn * steps / m
    return CostEstimate(
        p=p,
        k=k,
        steps=steps,
        m=m,
        v=v,
        price_in=price_in,
        price_out=price_out,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        valid_samples_per_step=valid,
        samples_per_step=drawn,
        total_samples=total,
        cost_per_sample=cost_per_sample,
        total_cost=total * cost_per_sample,
    )


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True, kw_only=True)
class Plan:
    """Everything needed to size a run: the margin, its success odds and its cost.

    Example:
        >>> pl = plan(0.9978, 1_048_575)
        >>> pl.k_min, round(pl.p_full, 3)
        (3, 0.989)
    """

    p: float
    """Per-step success probability of one valid sample."""
    steps: int
    """Number of task steps."""
    target: float
    """Required probability of solving the whole task."""
    m: int
    """Task steps per agent call."""
    v: float
    """Probability that a sample passes the red flags."""
    k_min: int
    """Smallest margin that reaches `target`."""
    p_full: float
    """Probability of solving the whole task at margin `k_min`."""
    step_error: float
    """Probability that one vote at margin `k_min` settles on a wrong answer."""
    valid_samples_per_step: float
    """Expected valid samples per vote at `k_min`."""
    samples_per_step: float
    """Expected samples drawn per vote at `k_min`, red-flagged ones included."""
    total_samples: float
    """Expected samples drawn for the whole task."""
    cost_per_sample: float
    """Price of one sample."""
    total_cost: float
    """Expected price of the whole task."""

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain, JSON-serialisable dict.

        Example:
            >>> plan(0.99, 1000).to_dict()["k_min"]
            3
        """
        return asdict(self)


def plan(
    p: float,
    steps: int,
    *,
    target: float = 0.95,
    m: int = 1,
    v: float = 1.0,
    price_in: float = 0.0,
    price_out: float = 0.0,
    tokens_in: float = 0.0,
    tokens_out: float = 0.0,
) -> Plan:
    """Choose the smallest margin for a task and estimate what the run will cost.

    Args:
        p: Per-step success probability of one valid sample, in (0.5, 1]. Planning
            with the lower end of `estimate_p(...)` is the cautious choice.
        steps: Number of task steps, at least 1.
        target: Required probability of solving the whole task, in (0, 1).
        m: Task steps per agent call, at least 1.
        v: Probability that a sample passes the red flags, in (0, 1].
        price_in: Price per million input tokens.
        price_out: Price per million output tokens.
        tokens_in: Average input tokens per sample.
        tokens_out: Average output tokens per sample.

    Returns:
        A `Plan`.

    Raises:
        ValueError: If an argument is out of range.

    Example:
        >>> pl = plan(0.9978, 1_048_575, price_in=0.4, price_out=1.6,
        ...           tokens_in=300, tokens_out=200)
        >>> pl.k_min, round(pl.valid_samples_per_step, 2), round(pl.total_cost)
        (3, 3.01, 1390)
    """
    k = k_min(p, steps, target=target, m=m)
    cost = expected_cost(
        p,
        k,
        steps,
        m=m,
        v=v,
        price_in=price_in,
        price_out=price_out,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
    )
    r_k = _r_power_k(p, k, m)
    return Plan(
        p=p,
        steps=steps,
        target=target,
        m=m,
        v=v,
        k_min=k,
        p_full=p_full(p, k, steps, m),
        step_error=r_k / (1.0 + r_k),  # 1 - p_step without cancellation
        valid_samples_per_step=cost.valid_samples_per_step,
        samples_per_step=cost.samples_per_step,
        total_samples=cost.total_samples,
        cost_per_sample=cost.cost_per_sample,
        total_cost=cost.total_cost,
    )
