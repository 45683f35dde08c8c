"""Typed records that flow back from the model to the caller.

A sampler returns a `RawSample` (what the provider said). The engine parses
and red-flags it into a `Sample`. A decided step is a `StepResult`. These are
slotted dataclasses rather than pydantic models because millions of them are
created on the long-run fast path; `to_dict()` gives their JSON form.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Decision", "RawSample", "Sample", "StepResult", "jsonable"]

Decision = Literal["vote", "plurality", "escalation"]
"""How a step's answer was chosen: k-ahead vote, plurality fallback, or escalation."""


@dataclass(slots=True)
class RawSample:
    """One answer from a provider, before parsing.

    Attributes:
        output: what the provider returned (an `AIMessage`, a string, any object).
        text: the answer's text, used for token counting and logs.
        input_tokens: prompt tokens reported by the provider, if any.
        output_tokens: completion tokens reported by the provider, if any.
        finish_reason: why generation stopped (`"stop"`, `"length"`, ...), if known.
        model: the model that produced it, if known.
        temperature: the temperature it was drawn at, if known.
        cached_input_tokens: of `input_tokens`, those the provider read from its prompt
            cache (`usage_metadata["input_token_details"]["cache_read"]`), if reported.
    """

    output: Any
    text: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None
    model: str | None = None
    temperature: float | None = None
    cached_input_tokens: int | None = None


@dataclass(slots=True)
class Sample:
    """One parsed, checked sample of a step.

    Attributes:
        index: the sample's index within its step (0 is the first drawn).
        raw: the provider's answer.
        value: the parsed answer, or None when parsing failed.
        key: the vote key of `value` (equal keys are the same vote).
        parse_error: why parsing failed, or None.
        red_flag: the reason the sample was red-flagged, or None if it voted.
        red_flag_detail: a human-readable detail for the red flag.
        round: the voting round that drew it (1-based).
    """

    index: int
    raw: RawSample
    value: Any = None
    key: Hashable | None = None
    parse_error: str | None = None
    red_flag: str | None = None
    red_flag_detail: str | None = None
    round: int = 1

    @property
    def valid(self) -> bool:
        """True when the sample passed every red flag and counts as a vote."""
        return self.red_flag is None

    @property
    def text(self) -> str:
        return self.raw.text

    @property
    def output_tokens(self) -> int | None:
        return self.raw.output_tokens

    @property
    def input_tokens(self) -> int | None:
        return self.raw.input_tokens

    @property
    def finish_reason(self) -> str | None:
        return self.raw.finish_reason

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "round": self.round,
            "text": self.raw.text,
            "key": jsonable(self.key),
            "red_flag": self.red_flag,
            "red_flag_detail": self.red_flag_detail,
            "parse_error": self.parse_error,
            "input_tokens": self.raw.input_tokens,
            "output_tokens": self.raw.output_tokens,
            "finish_reason": self.raw.finish_reason,
            "model": self.raw.model,
            "temperature": self.raw.temperature,
        }


@dataclass(slots=True)
class StepResult:
    """The outcome of one voted step.

    Attributes:
        winner: the chosen parsed answer.
        winner_key: its vote key.
        tally: votes per key among valid samples.
        decided_by: `"vote"` (k ahead), `"plurality"` (budget spent, fallback) or
            `"escalation"` (budget spent, an escalation handler answered).
        k: the margin the vote ran with.
        samples_drawn: every sample drawn, red-flagged ones included.
        valid_votes: samples that voted.
        red_flags: red-flagged samples by reason.
        rounds: rounds of parallel sampling.
        input_tokens: prompt tokens over all samples (reported or counted).
        output_tokens: completion tokens over all samples.
        cached_input_tokens: of `input_tokens`, those the provider served from its
            prompt cache (billed at its cached rate).
        provider_failures: failed provider calls by kind; never votes.
        wall_seconds: wall time of the step.
        samples: every sample, for analysis (empty when the caller asked not to keep them).
        step: the step identifier given by the caller, if any.
        stopped: why drawing stopped before the budget was spent without a decision:
            `"hopeless"` (no answer could get k ahead within what was left of the budget)
            or `"stuck"` (a red-flagged answer kept coming back identical, and the sampler
            had no variation left); None otherwise.
        variations: times the sampler was varied (temperature raised, next model) after
            a red-flagged answer came back identical at the same temperature.
        spares_unused: samples drawn ahead in a request of `n` (`VotePolicy.spare_samples`)
            that the step never needed: billed (their tokens are in the totals) and
            counted against run budgets, but neither votes nor red flags.
        unmetered_samples: of the samples billed (`samples_drawn + spares_unused`), those
            whose request was cancelled in flight (a replacement thrown away when the
            step proved stuck): most providers bill them, but no usage came back, so
            their tokens are missing from `input_tokens` and `output_tokens`.
    """

    winner: Any
    winner_key: Hashable | None
    tally: dict[Hashable, int]
    decided_by: Decision
    k: int
    samples_drawn: int
    valid_votes: int
    red_flags: dict[str, int] = field(default_factory=dict)
    rounds: int = 1
    input_tokens: int = 0
    output_tokens: int = 0
    provider_failures: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    step: Any = None
    stopped: str | None = None
    variations: int = 0
    spares_unused: int = 0
    cached_input_tokens: int = 0
    unmetered_samples: int = 0

    @property
    def red_flagged(self) -> int:
        return self.samples_drawn - self.valid_votes

    def to_dict(self, *, with_samples: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "step": jsonable(self.step),
            "winner": jsonable(self.winner),
            "decided_by": self.decided_by,
            "k": self.k,
            "tally": [[jsonable(key), n] for key, n in self.tally.items()],
            "samples_drawn": self.samples_drawn,
            "valid_votes": self.valid_votes,
            "red_flags": dict(self.red_flags),
            "rounds": self.rounds,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "provider_failures": dict(self.provider_failures),
            "wall_seconds": self.wall_seconds,
        }
        # Only when they happened, so the ordinary step's record is unchanged.
        if self.stopped is not None:
            out["stopped"] = self.stopped
        if self.variations:
            out["variations"] = self.variations
        if self.spares_unused:
            out["spares_unused"] = self.spares_unused
        if self.cached_input_tokens:
            out["cached_input_tokens"] = self.cached_input_tokens
        if self.unmetered_samples:
            out["unmetered_samples"] = self.unmetered_samples
        if with_samples:
            out["samples"] = [s.to_dict() for s in self.samples]
        return out


def jsonable(value: Any) -> Any:
    """Best-effort JSON form of a parsed answer or vote key (tuples become lists).

    Example:
        >>> jsonable({"move": (1, 0, 2)})
        {'move': [1, 0, 2]}
    """
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return repr(value)
