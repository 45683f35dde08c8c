"""Measuring p: the per-step success rate from scored samples, with a Wilson interval."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

from ._scaling_checks import check_positive_int


@dataclass(frozen=True, kw_only=True)
class PEstimate:
    """A per-step success rate measured on steps with known answers, with its interval.

    Example:
        >>> est = estimate_p(978, 1000)
        >>> est.p, round(est.low, 3), round(est.high, 3)
        (0.978, 0.967, 0.985)
    """

    p: float
    """Observed success rate, successes / trials."""
    low: float
    """Lower end of the Wilson score interval; the cautious value to plan with."""
    high: float
    """Upper end of the Wilson score interval."""
    successes: int
    """Number of correct samples observed."""
    trials: int
    """Number of samples scored."""
    confidence: float
    """Two-sided confidence level of the interval."""

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain, JSON-serialisable dict.

        Example:
            >>> estimate_p(9, 10).to_dict()["trials"]
            10
        """
        return asdict(self)


def estimate_p(successes: int, trials: int, confidence: float = 0.95) -> PEstimate:
    """Estimate `p` from scored samples, with a Wilson score confidence interval.

    The Wilson interval is used rather than the textbook normal one because good
    models score close to 1, where the normal interval collapses to zero width
    (or spills above 1) exactly when the estimate matters most.

    Args:
        successes: Number of samples that answered their step correctly.
        trials: Number of samples scored, at least 1.
        confidence: Two-sided confidence level, in (0, 1).

    Returns:
        A `PEstimate` with the point estimate and the interval.

    Raises:
        ValueError: If the counts are inconsistent or `confidence` is out of range.

    Example:
        >>> est = estimate_p(10_000, 10_000)
        >>> est.p, est.high, round(est.low, 5)
        (1.0, 1.0, 0.99962)
    """
    check_positive_int("trials", trials)
    if isinstance(successes, bool) or not isinstance(successes, int):
        raise TypeError(f"successes must be an int, got successes={successes!r}")
    if not (0 <= successes <= trials):
        raise ValueError(
            f"successes must be between 0 and trials={trials!r}, got successes={successes!r}"
        )
    if not (0.0 < confidence < 1.0):
        raise ValueError(f"confidence must be in (0, 1), got confidence={confidence!r}")

    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    n = float(trials)
    p_hat = successes / n
    z2n = z * z / n
    centre = (p_hat + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p_hat * (1.0 - p_hat) / n + z2n / (4.0 * n))
    # Clamp only against rounding; mathematically the interval lies inside [0, 1].
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return PEstimate(
        p=p_hat,
        low=low,
        high=high,
        successes=successes,
        trials=trials,
        confidence=confidence,
    )
