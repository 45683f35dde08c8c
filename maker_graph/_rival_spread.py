"""A vote against scattered wrong answers: how the spread of a model's errors changes a k-vote.

`maker_graph.scaling.race_error` races the right answer against one rival that
every wrong sample gives. Real models often scatter their wrong answers (a
wrong sum is off by one, or by ten, or by two), and then plurality works for
the right answer even below p = 0.5. The pilot measures the spread as `s`, the
chance that two wrong samples of one step agree (1: one rival; 1/n: n equally
likely rivals). Here the rivals' shares are geometric, `(1 - r) r^j` with
`r = (1 - s) / (1 + s)`, the one family whose chance of agreement is `s` for
every `s` in (0, 1]; it gives the top rival the largest share of any spread
with that `s` among the natural choices (e.g. twice `s` against `s` for equal
shares), so it errs towards a pessimistic forecast.

With the right answer a majority (`q < 0.5`) the step error is the sum of
pairwise races, right answer against each rival with the other samples
ignored, capped by the one-rival race: within ~20 % of simulated votes at
k = 2-3 and closer as k grows, and exact in both limits (one rival, k = 1).
Below a majority no closed form holds: the vote is simulated (a fixed seed,
first-to-ahead-by-k, plurality when the budget is spent, first seen wins ties,
as `maker_graph.vote.Voter` does) and the result cached.
"""

from __future__ import annotations

import bisect
import random
from functools import lru_cache

from .scaling import race_error, race_samples

ONE_RIVAL = 0.999
"""Spreads at or above this are one rival: the exact race formulas apply."""
_SIMULATED_VOTES = 2000
"""Votes per simulated forecast: the step error to within ~0.01 (one s.e.) at error 0.5."""
_MAX_RIVALS = 60
"""Rivals kept (the geometric tail beyond holds under 1e-6 of the wrong mass for s >= 0.1)."""


def rival_shares(spread: float) -> tuple[float, ...]:
    """Shares of the wrong samples that each rival gets, largest first (sum 1)."""
    if spread >= ONE_RIVAL:
        return (1.0,)
    s = max(spread, 1e-3)
    r = (1.0 - s) / (1.0 + s)
    shares = [(1.0 - r) * r**j for j in range(_MAX_RIVALS)]
    total = sum(shares)
    return tuple(x / total for x in shares if x / total > 1e-9)


def vote_error(
    q: float, spread: float, k: int, budget: int | None = None, *, rough: bool = False
) -> float:
    """Probability that a first-to-ahead-by-k vote decides wrongly when each valid sample
    is wrong with probability `q` and two wrong ones agree with probability `spread`.

    `budget`: valid samples before plurality decides (None: 10 * k + 20, the default
    `VotePolicy` budget); it matters only below a majority.

    Example:
        >>> vote_error(0.2, 1.0, 3) == race_error(0.2, 3)
        True
        >>> vote_error(0.2, 0.3, 3) < race_error(0.2, 3)
        True
    """
    return _vote(q, spread, k, budget, rough)[0]


def vote_samples(
    q: float, spread: float, k: int, budget: int | None = None, *, rough: bool = False
) -> float:
    """Expected valid samples of that vote (the one-rival race's above a majority).
    `rough`: fewer simulated votes (for bootstrap draws, whose spread is wider anyway)."""
    return _vote(q, spread, k, budget, rough)[1]


def top_rival_wins(q: float, spread: float) -> float:
    """The step error as k grows: 1 when the top rival outweighs the right answer, 0 when
    the right answer outweighs it, 1/2 on a tie."""
    top = q * rival_shares(spread)[0]
    right = 1.0 - q
    return 1.0 if top > right else 0.5 if top == right else 0.0


def _vote(q: float, spread: float, k: int, budget: int | None, rough: bool) -> tuple[float, float]:
    if k == 1:  # the first valid sample decides
        return q, 1.0
    if spread >= ONE_RIVAL or q in (0.0, 1.0):
        return race_error(q, k), race_samples(q, k)
    if q < 0.5:
        pairwise = sum(race_error(q * x / (1.0 - q + q * x), k) for x in rival_shares(spread))
        return min(pairwise, race_error(q, k)), race_samples(q, k)
    cap = budget if budget is not None else 10 * k + 20
    # Rounded so that bootstrap draws close to each other share one simulation.
    digits = 2 if rough else 3
    votes = _SIMULATED_VOTES // 5 if rough else _SIMULATED_VOTES
    return _simulate(round(q, digits), round(spread, digits), k, max(cap, k), votes)


@lru_cache(maxsize=4096)
def _simulate(q: float, spread: float, k: int, budget: int, votes: int) -> tuple[float, float]:
    shares = rival_shares(spread)
    cumulative = []
    acc = 0.0
    for x in shares:
        acc += x
        cumulative.append(acc)
    # One seed for every (q, spread): nearby parameters see the same random draws, so
    # the bootstrap's spread is the parameters', not the simulation's noise.
    rng = random.Random(20261203)
    wrong = drawn = 0
    last = len(cumulative) - 1
    for _ in range(votes):
        counts: dict[int, int] = {}
        order: dict[int, int] = {}
        n = 0
        decided = False
        while n < budget:
            n += 1
            u = rng.random()
            # Answer 0 is the right one; 1 + j is rival j.
            a = 0 if u >= q else 1 + min(bisect.bisect_left(cumulative, u / q), last)
            c = counts.get(a, 0) + 1
            counts[a] = c
            order.setdefault(a, n)
            if c >= k and c - max((v for b, v in counts.items() if b != a), default=0) >= k:
                wrong += a != 0
                decided = True
                break
        if not decided:
            best = max(counts, key=lambda b: (counts[b], -order[b]))
            wrong += best != 0
        drawn += n
    return wrong / votes, drawn / votes


def agreement(answers: list[str | None]) -> tuple[int, int]:
    """`(pairs, agreeing pairs)` among one step's wrong answers."""
    n = len(answers)
    same = sum(m * (m - 1) // 2 for m in _multiplicities(answers))
    return n * (n - 1) // 2, same


def _multiplicities(answers: list[str | None]) -> list[int]:
    seen: dict[str | None, int] = {}
    for a in answers:
        seen[a] = seen.get(a, 0) + 1
    return list(seen.values())
