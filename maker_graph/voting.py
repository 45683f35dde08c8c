"""First-to-ahead-by-k voting: the decision rule, pure and synchronous.

An answer wins a step once it has k more votes than any other answer. Votes
are compared by a key (by default the parsed answer itself; a pydantic model
or a dict is keyed by its canonical JSON, so equal answers collide).

Example:
    >>> tally = Tally()
    >>> for answer in ["a", "b", "a", "a"]:
    ...     _ = tally.add(answer)
    >>> tally.winner(k=2)
    'a'
    >>> first_to_ahead_by_k({"a": 2, "b": 1}, k=2) is None
    True
    >>> samples_needed({"a": 2, "b": 1}, k=2)
    1
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, TypeVar

__all__ = [
    "KeyFunction",
    "Tally",
    "canonical_key",
    "first_to_ahead_by_k",
    "lead",
    "plurality",
    "samples_needed",
    "top_two",
]

K = TypeVar("K", bound=Hashable)
KeyFunction = Callable[[Any], Hashable]
"""Maps a parsed answer to its vote key: answers with equal keys are the same vote."""


def top_two(counts: Mapping[Any, int]) -> tuple[Any, int, int]:
    """The leading key (earliest inserted among ties), its count and the runner-up's count.

    Example:
        >>> top_two({"a": 3, "b": 1, "c": 3})
        ('a', 3, 3)
    """
    best: Any = None
    first = second = 0
    for key, n in counts.items():
        if n > first:
            best, second, first = key, first, n
        elif n > second:
            second = n
    return best, first, second


def first_to_ahead_by_k(counts: Mapping[K, int], k: int) -> K | None:
    """The answer with at least k more votes than every other answer, or None.

    Args:
        counts: votes per answer key.
        k: the required margin, at least 1.

    Returns:
        The winning key, or None while no answer leads by k.

    Example:
        >>> first_to_ahead_by_k({"x": 3}, k=3)
        'x'
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    best, first, second = top_two(counts)
    return best if first - second >= k else None


def lead(counts: Mapping[Any, int]) -> int:
    """How many votes the leader has over the runner-up (0 with no votes)."""
    _, first, second = top_two(counts)
    return first - second


def samples_needed(counts: Mapping[Any, int], k: int) -> int:
    """The fewest further valid votes that could decide the step: k minus the current lead.

    A round that draws more than this could only waste samples: at best every one
    of them goes to the leader, and the leader wins after exactly this many.
    Returns 0 when the step is already decided.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return max(0, k - lead(counts))


def plurality(counts: Mapping[K, int]) -> K | None:
    """The key with the most votes; ties go to the answer that was seen first."""
    return top_two(counts)[0]  # type: ignore[no-any-return]


def canonical_key(value: Any) -> Hashable:
    """The default vote key of a parsed answer.

    Hashable values key as themselves; pydantic models, dicts and lists key as
    their canonical JSON (sorted keys), so equal structures collide.
    """
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return json.dumps(dump(mode="json"), sort_keys=True, separators=(",", ":"))
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value  # type: ignore[no-any-return]


class Tally:
    """Votes per answer key for one step, remembering the first answer seen per key.

    A tally lives in the locals of one step's vote (never shared across steps).
    """

    __slots__ = ("counts", "values")

    def __init__(self, votes: Iterable[Hashable] = ()) -> None:
        self.counts: dict[Hashable, int] = {}
        self.values: dict[Hashable, Any] = {}
        for v in votes:
            self.add(v)

    def add(self, value: Any, key: Hashable | None = None) -> Hashable:
        """Count one vote for `value` (keyed by `key`, or `canonical_key(value)`)."""
        if key is None:
            key = canonical_key(value)
        counts = self.counts
        if key in counts:
            counts[key] += 1
        else:
            counts[key] = 1
            self.values[key] = value
        return key

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def winner_key(self, k: int) -> Hashable | None:
        return first_to_ahead_by_k(self.counts, k)

    def winner(self, k: int) -> Any:
        """The winning answer (first value seen with the winning key), or None."""
        key = first_to_ahead_by_k(self.counts, k)
        return None if key is None else self.values[key]

    def needed(self, k: int) -> int:
        return samples_needed(self.counts, k)

    def __repr__(self) -> str:
        return f"Tally({self.counts!r})"
