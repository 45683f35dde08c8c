"""`FaultySampler`: wrap any sampler so its answers go bad the way real providers' do.

`ErrorModel` already makes simulated calls fail (exceptions, timeouts, rate
limits with a retry-after hint) and answers err, ramble or break format. This
wrapper adds the answer-level faults seen in production, on top of any
`Sampler`, simulated or real:

- empty answers (`""` with `finish_reason="stop"`);
- valid JSON of the wrong shape (an object where text was expected, a bare list,
  `null`, a JSON string);
- truncated answers (`finish_reason="length"`), cut mid-way or, in half of the
  cases, cut right after a complete-looking answer, which only a `truncated()`
  red flag can tell from a good one;
- slow tails: a call that hangs for `slow_seconds` before answering (a per-call
  timeout in `ProviderRetry` turns it into a retried timeout).

Every choice is a function of `(seed, step key, sample index, attempt)`, so a
run is reproducible whatever the concurrency, and a retried slow call is not
slow again by necessity (it rolls a new die, as a real retry would).

Example:
    >>> import asyncio
    >>> from maker_graph.sampling import FunctionSampler
    >>> sampler = FaultySampler(FunctionSampler(lambda q: "ok", in_thread=False),
    ...                         Faults(empty_rate=1.0))
    >>> asyncio.run(sampler.sample("q", 0)).text
    ''
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from typing import Any

from ..records import RawSample
from ..sampling import Sampler
from .errors_model import stable_hash, uniforms

__all__ = ["FaultKind", "Faults", "FaultySampler", "wrong_shape_json"]

FaultKind = str
"""`"empty"`, `"wrong_shape"`, `"truncated"` or `"slow"`."""


@dataclass(frozen=True, kw_only=True)
class Faults:
    """Rates of answer-level faults, each a probability per sample.

    Example:
        >>> Faults(empty_rate=0.02, truncated_rate=0.01).empty_rate
        0.02
    """

    empty_rate: float = 0.0
    """Chance of an empty answer."""
    wrong_shape_rate: float = 0.0
    """Chance of valid JSON of the wrong shape instead of the answer."""
    truncated_rate: float = 0.0
    """Chance that the answer is cut at the token cap (`finish_reason="length"`)."""
    slow_rate: float = 0.0
    """Chance that a call hangs for `slow_seconds` (decided anew on every attempt)."""
    slow_seconds: float = 1.0
    """How long a slow call hangs before answering."""
    seed: int = 0
    """Seed of every choice."""

    def __post_init__(self) -> None:
        for name in ("empty_rate", "wrong_shape_rate", "truncated_rate", "slow_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if self.empty_rate + self.wrong_shape_rate + self.truncated_rate > 1.0:
            raise ValueError("empty_rate + wrong_shape_rate + truncated_rate must be <= 1")
        if self.slow_seconds < 0:
            raise ValueError(f"slow_seconds must be >= 0, got {self.slow_seconds}")


def wrong_shape_json(text: str, die: int) -> str:
    """Valid JSON that is not the answer's shape: four variants chosen by `die`.

    Example:
        >>> json.loads(wrong_shape_json("move = [1, 0, 2]", 0))
        {'answer': 'move = [1, 0, 2]'}
    """
    variant = die % 4
    if variant == 0:
        return json.dumps({"answer": text})
    if variant == 1:
        return json.dumps([part.strip() for part in text.splitlines() if part.strip()])
    if variant == 2:
        return "null"
    return json.dumps(text)


class FaultySampler:
    """A `Sampler` that passes calls to `inner` and corrupts some answers (see module doc).

    Provider failures raised by `inner` pass through untouched (the engine retries
    them). Counts of injected faults are not kept here (no hidden state beyond the
    per-call attempt numbers); the run report counts their effects as red flags
    and timeouts.

    Args:
        inner: the sampler to wrap.
        faults: the fault rates.
        step_key: a stable identifier of a step input (default: the input itself, hashed).
        max_tokens: the output tokens a truncated answer reports (the provider's cap).
    """

    def __init__(
        self,
        inner: Sampler,
        faults: Faults,
        *,
        step_key: Callable[[Any], Hashable] | None = None,
        max_tokens: int = 750,
    ) -> None:
        self.inner = inner
        self.faults = faults
        self.step_key = step_key
        self.max_tokens = max_tokens
        # Attempts per (step, index) so a retried call rolls new dice; the slot is
        # dropped once it answers, so this does not grow over a long run.
        self._attempts: dict[tuple[str, int], int] = {}

    def fault(self, step_input: Any, index: int) -> FaultKind | None:
        """The answer fault for this sample (not counting slowness), or None."""
        f = self.faults
        u = uniforms(f.seed, self._key(step_input), index, "fault")[0]
        if u < f.empty_rate:
            return "empty"
        u -= f.empty_rate
        if u < f.wrong_shape_rate:
            return "wrong_shape"
        u -= f.wrong_shape_rate
        if u < f.truncated_rate:
            return "truncated"
        return None

    def _key(self, step_input: Any) -> str:
        return stable_hash(self.step_key(step_input) if self.step_key else step_input)

    async def sample(self, step_input: Any, index: int) -> RawSample:
        f = self.faults
        key = self._key(step_input)
        slot = (key, index)
        attempt = self._attempts.get(slot, 0)
        self._attempts[slot] = attempt + 1
        dice = uniforms(f.seed, key, index, "slow", attempt)
        if dice[0] < f.slow_rate and f.slow_seconds > 0:
            await asyncio.sleep(f.slow_seconds)
        raw = await self.inner.sample(step_input, index)
        self._attempts.pop(slot, None)
        kind = self.fault(step_input, index)
        if kind is None:
            return raw
        die = int(dice[1] * 1e9)
        # A corrupted answer replaces the output by its text: a chat parser then sees
        # a bare string, which it must flag as readily as a bad message.
        if kind == "empty":
            return replace(raw, output="", text="", output_tokens=0, finish_reason="stop")
        if kind == "wrong_shape":
            text = wrong_shape_json(raw.text, die)
            return replace(raw, output=text, text=text, finish_reason="stop")
        # Truncated: half the time just after a complete-looking answer (only the
        # finish reason tells), half the time mid-answer.
        if die % 2:
            return replace(raw, output_tokens=self.max_tokens, finish_reason="length")
        text = raw.text[: (len(raw.text) * (die % 97)) // 97]
        return replace(
            raw, output=text, text=text, output_tokens=self.max_tokens, finish_reason="length"
        )

    def __repr__(self) -> str:
        return f"FaultySampler({self.inner!r}, {self.faults!r})"
