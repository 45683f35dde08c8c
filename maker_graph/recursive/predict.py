"""What the scaling laws predict for a decomposition tree: errors and samples per node.

A tree is a set of votes: each node's decomposer draw (and a discriminator vote
when the proposals disagree), a solver vote per leaf and a composer vote per
inner node. `forecast_vote` gives one vote's error and expected samples from a
role's per-call rates, using `maker_graph.scaling`'s closed forms when errors
agree (one rival, the worst case) and an exact tally walk when they spread over
several rivals. `forecast_tree` adds them up for a tree of a given shape.

Example:
    >>> v = forecast_vote(RoleRates(wrong=0.05), k=3)
    >>> round(v.error, 6), round(v.samples, 3)
    (0.000146, 3.332)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..scaling import expected_samples_per_step, p_step

__all__ = ["RoleRates", "TreeForecast", "VoteForecast", "forecast_tree", "forecast_vote", "race"]


@dataclass(frozen=True, kw_only=True)
class RoleRates:
    """How often one call of a role goes wrong.

    Example:
        >>> RoleRates(wrong=0.025, invalid=0.025).valid
        0.975
    """

    wrong: float
    """Chance that a call gives a well-formed wrong answer (it passes the red flags and votes)."""
    invalid: float = 0.0
    """Chance that a call is red-flagged (never votes; another is drawn)."""
    rivals: int = 1
    """How many distinct wrong answers the wrong calls spread over, equally (1: all agree)."""

    def __post_init__(self) -> None:
        if not (0.0 <= self.wrong and 0.0 <= self.invalid and self.wrong + self.invalid < 1.0):
            raise ValueError(f"need wrong, invalid >= 0 and wrong + invalid < 1, got {self}")
        if self.rivals < 1:
            raise ValueError(f"rivals must be >= 1, got {self.rivals}")

    @property
    def valid(self) -> float:
        """Chance that a call passes the red flags."""
        return 1.0 - self.invalid

    @property
    def p(self) -> float:
        """Chance that a valid call is right."""
        return (1.0 - self.wrong - self.invalid) / self.valid


@dataclass(frozen=True)
class VoteForecast:
    """One first-to-ahead-by-k vote: its error and expected samples."""

    error: float
    """Chance that a wrong answer wins."""
    valid_samples: float
    """Expected valid samples until decided."""
    samples: float
    """Expected samples drawn, red-flagged ones included."""


def race(p: float, k: int, rivals: int = 1, *, tolerance: float = 1e-15) -> tuple[float, float]:
    """Exact first-to-ahead-by-k race: `(chance the right answer wins, expected valid samples)`.

    Each valid sample is right with probability `p`, else one of `rivals` wrong
    answers chosen uniformly. The tally walk is followed until the undecided
    mass falls below `tolerance`. With `rivals=1` it equals `scaling.p_step` and
    `scaling.expected_samples_per_step`.

    Example:
        >>> [round(x, 6) for x in race(0.95, 3, rivals=1)]
        [0.999854, 3.332362]
    """
    if not 0.0 < p <= 1.0 or k < 1 or rivals < 1:
        raise ValueError(f"need 0 < p <= 1, k >= 1, rivals >= 1; got p={p}, k={k}, rivals={rivals}")
    q = (1.0 - p) / rivals
    # A state is (right votes, wrong votes per rival sorted high to low): rivals are alike.
    states: dict[tuple[int, tuple[int, ...]], float] = {(0, (0,) * rivals): 1.0}
    right_wins = expected = 0.0
    n = 0
    while states and n < 100_000:
        n += 1
        nxt: dict[tuple[int, tuple[int, ...]], float] = {}
        for (c, wrong), mass in states.items():
            moves = [((c + 1, wrong), mass * p)]
            for i in range(rivals):
                if q > 0.0 and (i == 0 or wrong[i] != wrong[i - 1]):
                    same = sum(1 for w in wrong if w == wrong[i])  # rivals tied at this count
                    bumped = tuple(
                        sorted(wrong[:i] + (wrong[i] + 1,) + wrong[i + 1 :], reverse=True)
                    )
                    moves.append(((c, bumped), mass * q * same))
            for state, m in moves:
                if m <= 0.0:
                    continue
                c2, w2 = state
                top_wrong = w2[0]
                if c2 - top_wrong >= k:
                    right_wins += m
                    expected += n * m
                elif top_wrong - max(c2, w2[1] if rivals > 1 else 0) >= k:
                    expected += n * m
                else:
                    nxt[state] = nxt.get(state, 0.0) + m
        remaining = sum(nxt.values())
        states = {s: m for s, m in nxt.items() if m > tolerance * 1e-3}
        if remaining < tolerance:
            break
    return right_wins, expected


def forecast_vote(rates: RoleRates, k: int) -> VoteForecast:
    """Error and expected samples of one vote of a role (closed forms when `rivals == 1`).

    Example:
        >>> f"{forecast_vote(RoleRates(wrong=0.05, rivals=3), k=3).error:.2e}"
        '1.48e-05'
    """
    p = rates.p
    if rates.rivals == 1 and p > 0.5:
        right, valid = p_step(p, k), expected_samples_per_step(p, k)
    else:
        right, valid = race(p, k, rates.rivals)
    return VoteForecast(error=1.0 - right, valid_samples=valid, samples=valid / rates.valid)


@dataclass(frozen=True)
class TreeForecast:
    """Predicted errors and samples of one tree (see `forecast_tree`)."""

    decomposer_samples: float
    """Expected decomposer samples per node asked."""
    decomposer_all_wrong: float
    """Chance that every proposal at a node is wrong (no right candidate to choose)."""
    discriminator_runs: float
    """Chance that a node's proposals disagree, so the discriminator votes."""
    discriminator: VoteForecast
    solver: VoteForecast
    composer: VoteForecast
    samples_per_tree: float
    """Expected samples of the whole tree."""
    error_per_tree: float
    """Chance that the tree's answer is wrong (any node deciding wrong)."""

    def p_all_correct(self, trees: int) -> float:
        """Chance that `trees` independent trees of this shape are all right."""
        return math.exp(trees * math.log1p(-self.error_per_tree))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def forecast_tree(
    *,
    inner: int,
    leaves: int,
    k: int,
    candidates: int,
    decomposer: RoleRates,
    discriminator: RoleRates,
    solver: RoleRates,
    composer: RoleRates,
    depth_limited: int = 0,
) -> TreeForecast:
    """What the scaling laws predict for a tree with `inner` split nodes and `leaves` leaves.

    Every node but the `depth_limited` leaves asks a decomposer for `candidates`
    valid proposals; the discriminator votes when they disagree (wrong proposals
    are assumed to be one plausible rival, as errors that agree are the worst
    case); each leaf has a solver vote and each inner node a composer vote. A
    node errs when all its proposals are wrong, when the discriminator picks a
    wrong one, or when its solver or composer vote is won by a wrong answer.

    Example:
        >>> f = forecast_tree(inner=3, leaves=4, k=3, candidates=3,
        ...                   decomposer=RoleRates(wrong=0.025, invalid=0.025),
        ...                   discriminator=RoleRates(wrong=0.05),
        ...                   solver=RoleRates(wrong=0.05, rivals=3),
        ...                   composer=RoleRates(wrong=0.05, rivals=3))
        >>> round(f.samples_per_tree, 1), f"{f.error_per_tree:.1e}"
        (46.5, '3.0e-04')
    """
    q = 1.0 - decomposer.p  # a valid proposal is wrong
    n = candidates
    all_wrong = q**n
    wrong_rivals = decomposer.rivals
    all_same_wrong = wrong_rivals * (q / wrong_rivals) ** n
    disagree = max(0.0, 1.0 - (1.0 - q) ** n - all_same_wrong)
    disc = forecast_vote(discriminator, k)
    solve = forecast_vote(solver, k)
    comp = forecast_vote(composer, k)
    asked = inner + leaves - depth_limited
    dec_samples = n / decomposer.valid
    samples = (
        asked * (dec_samples + disagree * disc.samples)
        + leaves * solve.samples
        + inner * comp.samples
    )
    log_ok = (
        asked * (math.log1p(-all_wrong) + math.log1p(-disagree * disc.error))
        + leaves * math.log1p(-solve.error)
        + inner * math.log1p(-comp.error)
    )
    return TreeForecast(
        decomposer_samples=dec_samples,
        decomposer_all_wrong=all_wrong,
        discriminator_runs=disagree,
        discriminator=disc,
        solver=solve,
        composer=comp,
        samples_per_tree=samples,
        error_per_tree=-math.expm1(log_ok),
    )
