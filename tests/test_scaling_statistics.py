"""Monte Carlo checks of the scaling laws against simulated first-to-ahead-by-k races.

Every simulation uses `random.Random(seed)` with a fixed seed, so each test is
deterministic: it passes or fails the same way on every run, never by chance.

Tolerance: a simulated mean must lie within 4 standard errors of the closed
form. For a correct formula a 4-sigma miss happens with probability ~6e-5 per
check, so the fixed seeds were not cherry-picked to pass; a wrong formula (say
a margin off by one) misses by dozens of standard errors at these sample sizes.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from maker_graph.scaling import expected_samples_per_step, p_full, p_step

Z_TOLERANCE = 4.0
RACES = 50_000


def _race(
    rng: random.Random, p: float, k: int, *, v: float = 1.0, rivals: int = 1
) -> tuple[bool, int, int]:
    """Run one first-to-ahead-by-k vote as MAKER does; return (correct won, valid, drawn).

    A sample is red-flagged with probability 1 - v (drawn, not voted). A valid sample
    is correct with probability p, else one of `rivals` wrong answers uniformly.
    """
    votes: Counter[int] = Counter()
    valid = drawn = 0
    while True:
        drawn += 1
        if rng.random() >= v:
            continue
        valid += 1
        answer = 0 if rng.random() < p else 1 + rng.randrange(rivals)
        votes[answer] += 1
        best_other = max((n for a, n in votes.items() if a != answer), default=0)
        if votes[answer] >= best_other + k:
            return answer == 0, valid, drawn


def _mean_and_se(xs: list[float]) -> tuple[float, float]:
    n = len(xs)
    mean = sum(xs) / n
    var = sum((x - mean) ** 2 for x in xs) / (n - 1)
    return mean, math.sqrt(var / n)


def _assert_within(observed: float, expected: float, se: float, what: str) -> None:
    assert abs(observed - expected) <= Z_TOLERANCE * se, (
        f"{what}: observed {observed:.5f}, formula {expected:.5f}, "
        f"{abs(observed - expected) / se:.1f} standard errors apart"
    )


@pytest.mark.parametrize(
    ("p", "k", "seed"),
    [(0.6, 2, 11), (0.7, 3, 12), (0.8, 3, 13), (0.9, 4, 14)],
)
def test_win_rate_and_samples_match_closed_forms(p: float, k: int, seed: int) -> None:
    rng = random.Random(seed)
    wins = 0
    samples: list[float] = []
    for _ in range(RACES):
        won, valid, _ = _race(rng, p, k)
        wins += won
        samples.append(valid)

    expected_win = p_step(p, k)
    win_se = math.sqrt(expected_win * (1 - expected_win) / RACES)
    _assert_within(wins / RACES, expected_win, win_se, f"win rate p={p} k={k}")

    mean, se = _mean_and_se(samples)
    _assert_within(mean, expected_samples_per_step(p, k), se, f"samples p={p} k={k}")


def test_red_flags_scale_drawn_samples_by_one_over_v() -> None:
    p, k, v = 0.8, 3, 0.7
    rng = random.Random(21)
    drawn = [float(_race(rng, p, k, v=v)[2]) for _ in range(RACES)]
    mean, se = _mean_and_se(drawn)
    _assert_within(mean, expected_samples_per_step(p, k) / v, se, "drawn samples with flags")


def test_scattered_wrong_answers_are_no_worse_than_one_rival() -> None:
    # The formulas assume the worst case: all wrong samples agree. Spreading them over
    # three rivals must win at least as often (within noise).
    p, k = 0.6, 2
    rng = random.Random(31)
    wins = sum(_race(rng, p, k, rivals=3)[0] for _ in range(RACES))
    expected_win = p_step(p, k)
    win_se = math.sqrt(expected_win * (1 - expected_win) / RACES)
    assert wins / RACES >= expected_win - Z_TOLERANCE * win_se


def test_whole_task_success_matches_p_full() -> None:
    p, k, steps, tasks = 0.7, 2, 10, 4_000
    rng = random.Random(41)
    solved = 0
    for _ in range(tasks):
        # A task is solved when every step's vote is won; stop at the first lost vote.
        solved += all(_race(rng, p, k)[0] for _ in range(steps))
    expected = p_full(p, k, steps)
    se = math.sqrt(expected * (1 - expected) / tasks)
    _assert_within(solved / tasks, expected, se, "whole-task success")
