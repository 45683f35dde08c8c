"""`ErrorModel`: how a simulated model goes wrong, and the deterministic dice it rolls.

Every random choice a simulated model makes is a function of
`(seed, step key, sample index, attempt)`, hashed with BLAKE2b. So a run is
reproducible whatever the concurrency or the order in which samples finish,
and no random generator is shared between threads or tasks.
"""

from __future__ import annotations

import functools
import hashlib
import math
import struct
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

__all__ = [
    "ErrorModel",
    "SimulatedProviderError",
    "SimulatedRateLimitError",
    "SimulatedTimeoutError",
    "stable_hash",
    "uniforms",
]

_UNIT = 1.0 / 2**64
_NORMAL = NormalDist()


class SimulatedProviderError(RuntimeError):
    """A transient provider failure (a 500, a dropped connection)."""


class SimulatedRateLimitError(SimulatedProviderError):
    """The provider throttled the call; `retry_after` is its hint in seconds."""

    status_code = 429

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited; retry after {retry_after:g} s")
        self.retry_after = retry_after


class SimulatedTimeoutError(TimeoutError):
    """The call took longer than the client was willing to wait."""


def stable_hash(value: Any) -> str:
    """A process-independent identifier of a value (Python's `hash` is salted per process)."""
    if isinstance(value, (str, int)):
        return str(value)
    return hashlib.blake2b(repr(value).encode(), digest_size=12).hexdigest()


def uniforms(*parts: Any) -> tuple[float, ...]:
    """Eight independent uniforms in [0, 1) determined by `parts`."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=64).digest()
    return tuple(x * _UNIT for x in struct.unpack("<8Q", digest))


@dataclass(frozen=True, kw_only=True)
class ErrorModel:
    """How a simulated model errs. All rates are probabilities per sample.

    Example:
        >>> ErrorModel(error_rate=0.002, ramble_rate=0.001, seed=7).error_rate
        0.002
    """

    error_rate: float = 0.01
    """Chance that a well-formed, normal-length answer is wrong."""
    rivals: int = 1
    """Distinct wrong answers per step; 1 is the worst case for voting (all errors agree)."""
    hard_fraction: float = 0.0
    """Fraction of steps that are hard: their errors are more frequent and all agree."""
    hard_error_rate: float = 0.3
    """Error rate on hard steps (always towards rival 0: correlated errors)."""
    ramble_rate: float = 0.0
    """Chance of an over-long, rambling answer."""
    ramble_tokens: int = 1200
    """Output tokens a rambling answer reports."""
    ramble_error_rate: float = 0.5
    """Chance that a rambling answer is also wrong (long answers are where models err)."""
    malformed_rate: float = 0.0
    """Chance of an answer that breaks the expected format."""
    exception_rate: float = 0.0
    """Chance that a call fails with a transient provider error."""
    timeout_rate: float = 0.0
    """Chance that a call times out."""
    rate_limit_rate: float = 0.0
    """Chance that a call is throttled (with a retry-after hint)."""
    retry_after: float = 0.0
    """The retry-after hint of a throttled call, in seconds."""
    latency_median: float = 0.0
    """Median seconds per call (lognormal); 0 answers at once."""
    latency_sigma: float = 0.5
    """Spread of the lognormal latency (sigma of the underlying normal)."""
    seed: int = 0
    """Seed of every random choice."""

    def __post_init__(self) -> None:
        rates = {
            "error_rate": self.error_rate,
            "hard_fraction": self.hard_fraction,
            "hard_error_rate": self.hard_error_rate,
            "ramble_rate": self.ramble_rate,
            "ramble_error_rate": self.ramble_error_rate,
            "malformed_rate": self.malformed_rate,
            "exception_rate": self.exception_rate,
            "timeout_rate": self.timeout_rate,
            "rate_limit_rate": self.rate_limit_rate,
        }
        for name, value in rates.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if self.exception_rate + self.timeout_rate + self.rate_limit_rate >= 1.0:
            raise ValueError("failure rates add up to 1 or more: no call could ever succeed")
        if self.rivals < 1:
            raise ValueError(f"rivals must be >= 1, got {self.rivals}")
        if self.ramble_tokens < 1:
            raise ValueError(f"ramble_tokens must be >= 1, got {self.ramble_tokens}")
        if self.latency_median < 0 or self.latency_sigma < 0:
            raise ValueError("latency_median and latency_sigma must be >= 0")

    @property
    def fails(self) -> bool:
        return self.exception_rate + self.timeout_rate + self.rate_limit_rate > 0.0

    def failure(self, u: float) -> BaseException | None:
        """The provider failure for a call whose failure die shows `u`, or None."""
        if u < self.exception_rate:
            return SimulatedProviderError("simulated transient provider error (HTTP 500)")
        u -= self.exception_rate
        if u < self.timeout_rate:
            return SimulatedTimeoutError("simulated provider timeout")
        u -= self.timeout_rate
        if u < self.rate_limit_rate:
            return SimulatedRateLimitError(self.retry_after)
        return None

    def latency(self, u: float) -> float:
        """Seconds of latency for a call whose latency die shows `u`."""
        if self.latency_median <= 0:
            return 0.0
        z = _NORMAL.inv_cdf(min(max(u, 1e-12), 1 - 1e-12))
        return self.latency_median * math.exp(self.latency_sigma * z)

    def is_hard(self, step_key: str) -> bool:
        """Whether a step is one of the hard ones (decided once per step, by seed and key)."""
        return self.hard_fraction > 0 and _hard_die(self.seed, step_key) < self.hard_fraction


@functools.lru_cache(maxsize=1024)
def _hard_die(seed: int, step_key: str) -> float:
    # Every sample of a step asks again; samples of one step come together, so a small
    # cache answers all but the first (a hash per sample was ~10 % of a fast step).
    return uniforms(seed, step_key, "hard")[0]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one simulated sample turned out to be."""

    kind: str  # "correct" | "wrong" | "malformed"
    rival: int = 0
    ramble: bool = False


def decide(model: ErrorModel, step_key: str, index: int) -> tuple[Outcome, float]:
    """Roll the dice for sample `index` of a step: its outcome and its latency die."""
    u = uniforms(model.seed, step_key, index)
    ramble = u[0] < model.ramble_rate
    if u[1] < model.malformed_rate:
        return Outcome("malformed", ramble=ramble), u[5]
    if ramble:
        wrong = u[2] < model.ramble_error_rate
        rival = int(u[3] * model.rivals) % model.rivals
    elif model.is_hard(step_key):
        wrong, rival = u[2] < model.hard_error_rate, 0
    else:
        wrong = u[2] < model.error_rate
        rival = int(u[3] * model.rivals) % model.rivals
    return Outcome("wrong" if wrong else "correct", rival, ramble), u[5]
