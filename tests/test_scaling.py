"""Tests for `maker_graph.scaling`: paper numbers, closed forms vs independent computations."""

from __future__ import annotations

import doctest
import json
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maker_graph import scaling
from maker_graph.scaling import (
    CostEstimate,
    PEstimate,
    Plan,
    estimate_p,
    expected_cost,
    expected_samples_per_step,
    k_min,
    p_full,
    p_step,
    plan,
)

# The paper's headline run: gpt-4.1-mini on 20-disk Towers of Hanoi.
PAPER_P = 0.9978
PAPER_STEPS = 2**20 - 1


# --------------------------------------------------------------------------- paper numbers


def test_paper_k_min() -> None:
    assert k_min(PAPER_P, PAPER_STEPS, target=0.95) == 3


def test_paper_p_full() -> None:
    assert p_full(PAPER_P, 3, PAPER_STEPS) == pytest.approx(0.989, abs=5e-4)


def test_paper_samples_per_step() -> None:
    # "about 3.01 valid samples per step (~3.16 M in all)"
    per_step = expected_samples_per_step(PAPER_P, 3)
    assert round(per_step, 2) == 3.01
    assert per_step * PAPER_STEPS == pytest.approx(3.16e6, rel=2e-3)


def test_paper_step_error_vs_majority_of_five() -> None:
    # Ahead-by-3 errs ~1e-8 per step; a plain majority of 5 errs ~1e-7.
    err_ahead = 1 - p_step(PAPER_P, 3)
    assert 5e-9 < err_ahead < 2e-8
    e = 1 - PAPER_P
    err_majority = sum(
        math.comb(5, j) * e**j * PAPER_P ** (5 - j) for j in range(3, 6)
    )  # >= 3 of 5 wrong, the worst case of a single rival
    assert 5e-8 < err_majority < 2e-7
    assert err_ahead < err_majority / 5


def test_plan_matches_the_parts() -> None:
    pl = plan(PAPER_P, PAPER_STEPS, v=0.9, price_in=0.4, price_out=1.6, tokens_in=300)
    assert isinstance(pl, Plan)
    assert pl.k_min == 3
    assert pl.p_full == p_full(PAPER_P, 3, PAPER_STEPS)
    assert pl.step_error == pytest.approx(1 - p_step(PAPER_P, 3), rel=1e-6)
    assert pl.valid_samples_per_step == expected_samples_per_step(PAPER_P, 3)
    assert pl.samples_per_step == pytest.approx(pl.valid_samples_per_step / 0.9)
    assert pl.cost_per_sample == pytest.approx(0.4 * 300 / 1e6)
    assert pl.total_cost == pytest.approx(pl.total_samples * pl.cost_per_sample)
    d = pl.to_dict()
    assert d["k_min"] == 3 and d["target"] == 0.95
    json.dumps(d)  # the CLI prints it as JSON


# --------------------------------------------------------------------------- p_step / p_full


def _p_step_exact(p: Fraction, k: int) -> Fraction:
    """Win probability of the +-k absorbing walk, solved exactly as a linear system."""
    win, _ = _solve_walk(p, k)
    return win


def _solve_walk(p: Fraction, k: int) -> tuple[Fraction, Fraction]:
    """Exact (win probability, expected duration) of the lead walk from 0, barriers +-k.

    Solves the absorbing Markov chain's first-step equations with the Thomas
    algorithm over exact fractions, independently of any closed form.
    """
    n = 2 * k - 1  # transient states: lead -k+1 .. k-1
    # For both unknowns x_i: x_i - p x_{i+1} - (1-p) x_{i-1} = b_i.
    # win: b = p at the state next to +k, else 0.  duration: b = 1 everywhere.
    results = []
    for rhs in ("win", "duration"):
        a = [-(1 - p)] * n  # sub-diagonal
        b = [Fraction(1)] * n  # diagonal
        c = [-p] * n  # super-diagonal
        d = [Fraction(0)] * n
        for i in range(n):
            if rhs == "duration":
                d[i] = Fraction(1)
            elif i == n - 1:
                d[i] = p
        # forward sweep
        cp = [Fraction(0)] * n
        dp = [Fraction(0)] * n
        cp[0] = c[0] / b[0]
        dp[0] = d[0] / b[0]
        for i in range(1, n):
            denom = b[i] - a[i] * cp[i - 1]
            cp[i] = c[i] / denom
            dp[i] = (d[i] - a[i] * dp[i - 1]) / denom
        x = [Fraction(0)] * n
        x[-1] = dp[-1]
        for i in range(n - 2, -1, -1):
            x[i] = dp[i] - cp[i] * x[i + 1]
        results.append(x[k - 1])  # lead 0
    return results[0], results[1]


@pytest.mark.parametrize("p", ["0.51", "0.6", "0.75", "0.9", "0.9978", "0.99999"])
@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_p_step_vs_exact_markov_chain(p: str, k: int) -> None:
    exact = _p_step_exact(Fraction(p), k)
    assert p_step(float(p), k) == pytest.approx(float(exact), rel=1e-12)


@pytest.mark.parametrize("p", ["0.51", "0.55", "0.6", "0.75", "0.9", "0.9978", "0.99999"])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 7, 10])
def test_expected_samples_vs_exact_markov_chain(p: str, k: int) -> None:
    _, duration = _solve_walk(Fraction(p), k)
    assert expected_samples_per_step(float(p), k) == pytest.approx(float(duration), rel=1e-9)


@pytest.mark.parametrize(("p", "k"), [(0.6, 2), (0.8, 3), (0.95, 5), (0.55, 9)])
def test_expected_samples_vs_time_stepped_dp(p: float, k: int) -> None:
    """Sum of P(race still undecided after n samples), by propagating the distribution."""
    dist = {0: 1.0}
    expected = 0.0
    while (alive := sum(dist.values())) > 1e-15:
        expected += alive
        nxt: dict[int, float] = {}
        for lead, mass in dist.items():
            for move, prob in ((1, p), (-1, 1 - p)):
                new = lead + move
                if abs(new) < k:
                    nxt[new] = nxt.get(new, 0.0) + mass * prob
        dist = nxt
    assert expected_samples_per_step(p, k) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("p", [0.6, 0.9, 0.9978])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_expected_samples_equals_paper_form(p: float, k: int) -> None:
    r = (1 - p) / p
    paper = (k / (2 * p - 1)) * (2 / (1 + r**k) - 1)
    duration = k / (2 * p - 1) * (1 - 2 * r**k / (1 + r**k))  # the gambler's-ruin textbook form
    assert expected_samples_per_step(p, k) == pytest.approx(paper, rel=1e-12)
    assert paper == pytest.approx(duration, rel=1e-12)


def test_expected_samples_near_half_tends_to_k_squared() -> None:
    # The tanh form avoids 0/0 here; the limit of the duration as p -> 1/2 is k^2.
    assert expected_samples_per_step(0.5 + 1e-12, 4) == pytest.approx(16.0, rel=1e-9)


@pytest.mark.parametrize("steps", [1, 2, 7, 100, 1000])
@pytest.mark.parametrize(("p", "k", "m"), [(0.6, 2, 1), (0.9, 3, 1), (0.9978, 3, 1), (0.95, 2, 2)])
def test_p_full_is_product_of_p_step(p: float, k: int, m: int, steps: int) -> None:
    product = 1.0
    for _ in range(steps // m):
        product *= p_step(p, k, m)
    if steps % m:  # the closed form allows a fractional number of blocks
        product *= p_step(p, k, m) ** ((steps % m) / m)
    assert p_full(p, k, steps, m) == pytest.approx(product, rel=1e-11)


def test_p_full_accurate_for_tiny_error_and_huge_steps() -> None:
    # r^k ~ 1e-20: naive (1 + r^k) rounds to exactly 1 and would report certainty,
    # while over 1e18 steps the true success probability is about 0.989.
    p, k, steps = 0.99, 10, 10**18
    r_k = ((1 - p) / p) ** k
    assert (1 + r_k) ** (-steps) == 1.0
    assert p_full(p, k, steps) == pytest.approx(math.exp(-steps * r_k), rel=1e-9)
    assert 0.98 < p_full(p, k, steps) < 0.99


def test_m_uses_p_to_the_m() -> None:
    assert p_step(0.9, 3, m=2) == pytest.approx(p_step(0.81, 3), rel=1e-14)
    assert p_full(0.9, 3, 100, m=2) == pytest.approx(p_full(0.81, 3, 50), rel=1e-12)
    assert k_min(0.99, 999, m=3) == k_min(0.99**3, 333)


def test_p_equal_one() -> None:
    assert p_step(1.0, 1) == 1.0
    assert p_full(1.0, 1, 10**9) == 1.0
    assert k_min(1.0, 10**9, target=0.999) == 1
    assert expected_samples_per_step(1.0, 4) == 4.0
    pl = plan(1.0, 1000)
    assert (pl.k_min, pl.p_full, pl.valid_samples_per_step, pl.step_error) == (1, 1.0, 1.0, 0.0)


# --------------------------------------------------------------------------- k_min


def _brute_force_k(p: float, steps: int, target: float, m: int) -> int:
    k = 1
    while p_full(p, k, steps, m) < target:
        k += 1
    return k


GRID_P = [0.51, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.9978, 0.9999]
GRID_STEPS = [1, 2, 10, 100, 1_000, 10_000, 1_048_575, 10**9]
GRID_TARGET = [0.5, 0.9, 0.95, 0.99, 0.999999]
GRID_M = [1, 2, 3]


def test_k_min_matches_brute_force_on_a_grid() -> None:
    checked = 0
    for p in GRID_P:
        for m in GRID_M:
            if p**m <= 0.5:
                continue
            for steps in GRID_STEPS:
                for target in GRID_TARGET:
                    expected = _brute_force_k(p, steps, target, m)
                    assert k_min(p, steps, target, m) == expected, (p, steps, target, m)
                    checked += 1
    assert checked > 500


def test_closed_form_alone_is_right_away_from_ties() -> None:
    # The verification loop must be a safety net, not the algorithm: the raw ratio,
    # rounded up, already gives the minimal k unless it sits on an integer.
    for p in GRID_P:
        for steps in GRID_STEPS:
            for target in GRID_TARGET:
                ratio = scaling._k_ratio(p, steps, target, 1)
                if abs(ratio - round(ratio)) < 1e-6:
                    continue
                expected = _brute_force_k(p, steps, target, 1)
                assert max(1, math.ceil(ratio)) == expected, (p, steps, target)


def test_k_min_exact_tie_is_not_rounded_up() -> None:
    # Choose the target so that k = 3 meets it exactly: the ratio is then an integer up
    # to rounding noise, and k_min must still say 3, not 4.
    p, steps = 0.9, 1000
    target = p_full(p, 3, steps)
    assert k_min(p, steps, target) == 3
    assert k_min(p, steps, math.nextafter(target, 1.0)) == 4


def test_k_min_grows_like_log_steps() -> None:
    ks = [k_min(0.9, 10**e) for e in range(1, 10)]
    assert ks == sorted(ks)
    # k_min ~ ln(steps) / ln(1/r): one decade of steps adds ln 10 / ln 9 ~ 1.05 to the margin.
    assert ks == list(range(3, 12))


def test_k_min_does_not_depend_on_v() -> None:
    a = plan(0.95, 10_000, v=1.0)
    b = plan(0.95, 10_000, v=0.5)
    assert a.k_min == b.k_min
    assert b.samples_per_step == pytest.approx(2 * a.samples_per_step)


# --------------------------------------------------------------------------- properties

probabilities = st.floats(min_value=0.5, max_value=1.0, exclude_min=True, allow_nan=False)
margins = st.integers(min_value=1, max_value=40)


@given(p=probabilities, k=margins)
def test_p_step_increasing_in_k(p: float, k: int) -> None:
    assert p_step(p, k + 1) >= p_step(p, k)


@given(p1=probabilities, p2=probabilities, k=margins)
def test_p_step_increasing_in_p(p1: float, p2: float, k: int) -> None:
    lo, hi = sorted((p1, p2))
    assert p_step(hi, k) >= p_step(lo, k)


@settings(max_examples=300)
@given(
    p=st.floats(min_value=0.52, max_value=1.0, allow_nan=False),
    steps=st.integers(min_value=1, max_value=10**12),
    target=st.floats(min_value=1e-6, max_value=1 - 1e-9),
    m=st.integers(min_value=1, max_value=3),
)
def test_k_min_is_minimal(p: float, steps: int, target: float, m: int) -> None:
    if p**m <= 0.5:
        return
    k = k_min(p, steps, target, m)
    assert k >= 1
    assert p_full(p, k, steps, m) >= target
    if k > 1:
        assert p_full(p, k - 1, steps, m) < target


@given(p=probabilities, k=margins)
def test_expected_samples_bounds(p: float, k: int) -> None:
    # At least k samples (one answer needs k votes), at most k^2 (the p -> 1/2 limit).
    e = expected_samples_per_step(p, k)
    assert k * (1 - 1e-12) <= e <= k * k * (1 + 1e-9)


# --------------------------------------------------------------------------- cost


def test_expected_cost_fields() -> None:
    est = expected_cost(
        0.9, 3, 1000, v=0.8, price_in=0.4, price_out=1.6, tokens_in=500, tokens_out=100
    )
    assert isinstance(est, CostEstimate)
    assert est.valid_samples_per_step == expected_samples_per_step(0.9, 3)
    assert est.samples_per_step == pytest.approx(est.valid_samples_per_step / 0.8)
    assert est.total_samples == pytest.approx(est.samples_per_step * 1000)
    assert est.cost_per_sample == pytest.approx(0.4 * 500 / 1e6 + 1.6 * 100 / 1e6)
    assert est.total_cost == pytest.approx(est.total_samples * est.cost_per_sample)
    assert est.to_dict()["tokens_in"] == 500
    with pytest.raises(AttributeError):
        est.k = 4  # type: ignore[misc]


def test_expected_cost_with_blocks() -> None:
    est = expected_cost(0.95, 2, 100, m=2)
    assert est.valid_samples_per_step == pytest.approx(expected_samples_per_step(0.95**2, 2))
    assert est.total_samples == pytest.approx(est.samples_per_step * 50)


def test_expected_cost_free_by_default() -> None:
    assert expected_cost(0.9, 2, 10).total_cost == 0.0


# --------------------------------------------------------------------------- estimate_p


def test_estimate_p_wilson_formula() -> None:
    est = estimate_p(81, 263)
    assert isinstance(est, PEstimate)
    z = 1.959963984540054  # the 97.5 % normal quantile, written out rather than computed
    n, ph = 263, 81 / 263
    centre = (ph + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert est.low == pytest.approx(centre - half, rel=1e-12)
    assert est.high == pytest.approx(centre + half, rel=1e-12)
    assert (round(est.low, 4), round(est.high, 4)) == (0.2553, 0.3662)


def test_estimate_p_wilson_zero_successes_closed_form() -> None:
    # With no successes the Wilson upper bound simplifies to z^2 / (n + z^2).
    z2 = 1.959963984540054**2
    assert estimate_p(0, 10).high == pytest.approx(z2 / (10 + z2), rel=1e-12)
    assert estimate_p(10, 10).low == pytest.approx(10 / (10 + z2), rel=1e-12)


def test_estimate_p_extremes_and_confidence() -> None:
    all_right = estimate_p(1000, 1000)
    assert all_right.p == 1.0 and all_right.high == 1.0 and 0.99 < all_right.low < 1.0
    none_right = estimate_p(0, 50)
    assert none_right.low == 0.0 and 0.0 < none_right.high < 0.1
    narrow = estimate_p(900, 1000, confidence=0.8)
    wide = estimate_p(900, 1000, confidence=0.99)
    assert wide.low < narrow.low < 0.9 < narrow.high < wide.high
    assert estimate_p(9, 10).to_dict() == {
        "p": 0.9,
        "low": estimate_p(9, 10).low,
        "high": estimate_p(9, 10).high,
        "successes": 9,
        "trials": 10,
        "confidence": 0.95,
    }


@given(n=st.integers(1, 10_000), data=st.data())
def test_estimate_p_interval_contains_point(n: int, data: st.DataObject) -> None:
    s = data.draw(st.integers(0, n))
    est = estimate_p(s, n)
    assert 0.0 <= est.low <= est.p <= est.high <= 1.0


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("bad_p", [0.5, 0.3, 0.0, -1.0, 1.0000001, 2.0, math.nan])
def test_bad_p(bad_p: float) -> None:
    with pytest.raises(ValueError, match=r"p <= 0.5") as info:
        p_step(bad_p, 3)
    assert repr(bad_p) in str(info.value)
    for call in (
        lambda: p_full(bad_p, 3, 10),
        lambda: k_min(bad_p, 10),
        lambda: expected_samples_per_step(bad_p, 3),
        lambda: expected_cost(bad_p, 3, 10),
        lambda: plan(bad_p, 10),
    ):
        with pytest.raises(ValueError, match="cannot converge"):
            call()


def test_p_to_the_m_too_small() -> None:
    with pytest.raises(ValueError, match=r"p\*\*m.*m=3"):
        k_min(0.75, 100, m=3)


@pytest.mark.parametrize("bad_steps", [0, -5])
def test_bad_steps(bad_steps: int) -> None:
    with pytest.raises(ValueError, match=rf"steps={bad_steps}"):
        p_full(0.9, 3, bad_steps)
    with pytest.raises(ValueError, match=rf"steps={bad_steps}"):
        k_min(0.9, bad_steps)


@pytest.mark.parametrize("bad_target", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_bad_target(bad_target: float) -> None:
    with pytest.raises(ValueError, match=r"target must be in the open interval \(0, 1\)"):
        k_min(0.9, 100, target=bad_target)
    with pytest.raises(ValueError, match="target="):
        plan(0.9, 100, target=bad_target)


@pytest.mark.parametrize("bad_k", [0, -1])
def test_bad_k(bad_k: int) -> None:
    for call in (
        lambda: p_step(0.9, bad_k),
        lambda: p_full(0.9, bad_k, 10),
        lambda: expected_samples_per_step(0.9, bad_k),
        lambda: expected_cost(0.9, bad_k, 10),
    ):
        with pytest.raises(ValueError, match=rf"k={bad_k}"):
            call()


def test_bad_m() -> None:
    with pytest.raises(ValueError, match="m=0"):
        p_step(0.9, 2, m=0)
    with pytest.raises(ValueError, match="m=-2"):
        k_min(0.9, 10, m=-2)


@pytest.mark.parametrize("bad_v", [0.0, -0.5, 1.01, math.nan])
def test_bad_v(bad_v: float) -> None:
    with pytest.raises(ValueError, match="red flags"):
        expected_cost(0.9, 2, 10, v=bad_v)
    with pytest.raises(ValueError, match="v="):
        plan(0.9, 10, v=bad_v)


def test_bad_prices_and_tokens() -> None:
    with pytest.raises(ValueError, match="price_in=-1"):
        expected_cost(0.9, 2, 10, price_in=-1)
    with pytest.raises(ValueError, match="tokens_out=inf"):
        plan(0.9, 10, tokens_out=math.inf)


def test_non_integer_counts_are_type_errors() -> None:
    with pytest.raises(TypeError, match="k must be an int"):
        p_step(0.9, 2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="steps must be an int"):
        k_min(0.9, True)


@pytest.mark.parametrize(
    ("successes", "trials", "confidence", "match"),
    [
        (5, 0, 0.95, "trials=0"),
        (11, 10, 0.95, "successes=11"),
        (-1, 10, 0.95, "successes=-1"),
        (5, 10, 1.0, "confidence=1.0"),
        (5, 10, 0.0, "confidence=0.0"),
    ],
)
def test_bad_estimate_p(successes: int, trials: int, confidence: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        estimate_p(successes, trials, confidence)


# --------------------------------------------------------------------------- docs


def test_docstring_examples_run() -> None:
    result = doctest.testmod(scaling)
    assert result.attempted > 0
    assert result.failed == 0
