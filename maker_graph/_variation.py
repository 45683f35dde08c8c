"""Variation: how far a stuck step's redraws move from the sampler's configured setting.

A context variable, so the level set by the vote reaches the sampler through any
wrapper and holds for the draws of one step only. `maker_graph.sampling` re-exports
the public names.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any

from .errors import ConfigurationError

REHEAT_TEMPERATURES = (0.5, 1.0)
"""Temperatures of variation levels 1 and 2: a step whose red-flagged answer comes back
identical at one temperature is redrawn hotter (and from the next model of a rotation)."""

VARIATION: contextvars.ContextVar[int] = contextvars.ContextVar("maker_variation", default=0)
"""The variation level of the draws running in this context (see `use_variation`)."""


class _Variation:
    """A reusable, re-entrant context manager that sets the variation level."""

    __slots__ = ("level", "tokens")

    def __init__(self, level: int) -> None:
        self.level = level
        self.tokens: list[contextvars.Token[int]] = []

    def __enter__(self) -> None:
        self.tokens.append(VARIATION.set(self.level))

    def __exit__(self, *exc: object) -> None:
        VARIATION.reset(self.tokens.pop())


def use_variation(level: int) -> contextlib.AbstractContextManager[None]:
    """Draw samples started inside this block at variation `level` (0: as configured).

    The vote raises the level of a step whose sampler is stuck: a red-flagged answer
    that came back identical at the same temperature would come back again. A
    `ChatModelSampler` then samples at `REHEAT_TEMPERATURES[level - 1]` (or its own
    temperature if hotter) and from the model `level` places on in its rotation.
    The level is a context variable, so it reaches the sampler through any wrapper
    and holds for the draws of one step only.

    Example:
        >>> with use_variation(1):
        ...     pass
    """
    if not isinstance(level, int) or level < 0:
        raise ConfigurationError(f"variation level must be an integer >= 0, got {level!r}")
    return _Variation(level)


def variation_levels(sampler: Any) -> int:
    """How many levels of variation `sampler` (or the sampler it wraps) offers; 0: none.

    Wrappers are followed through their `inner` attribute.

    Example:
        >>> from maker_graph.sampling import as_sampler
        >>> variation_levels(as_sampler(lambda q: "4"))
        0
    """
    seen = 0
    while sampler is not None and seen < 32:
        levels = getattr(sampler, "variation_levels", None)
        if isinstance(levels, int):
            return levels
        sampler, seen = getattr(sampler, "inner", None), seen + 1
    return 0
