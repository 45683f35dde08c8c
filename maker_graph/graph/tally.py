"""The k-ahead reducer and the per-step tally it keeps (plain data, checkpoint-safe).

The voting sub-graph's `sample` branches each write one update to the tally key;
`k_ahead_reducer(k)` joins them in `Send` order and records the first answer to
get k votes ahead. A new step replaces the whole tally with
`Overwrite(new_tally(...))`, so votes never carry over between steps.

Example:
    >>> join = k_ahead_reducer(1)
    >>> t = join(new_tally("q"), {"op": "sample", "key": "a", "value": "A", "drawn": 1})
    >>> t["values"][t["winner"]]
    'A'
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any, cast

from ..errors import ConfigurationError
from ..voting import first_to_ahead_by_k

__all__ = ["freeze_key", "k_ahead_reducer", "new_tally"]


def freeze_key(value: Any) -> Hashable:
    """A vote key in the form it keeps after a checkpoint round trip (lists as tuples)."""
    # Checkpointers store tuples as lists; freezing keeps vote keys comparable and
    # hashable after a round trip through any of them.
    if isinstance(value, (list, tuple)):
        return tuple(freeze_key(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), freeze_key(v)) for k, v in value.items()))
    return cast(Hashable, value)


def new_tally(step_input: Any = None) -> dict[str, Any]:
    """An empty tally for one step: plain data, so any checkpointer can store it.

    Fields: `input` (the step input), `keys`/`counts`/`values` (vote keys in order of
    first appearance, their votes, and the first answer seen per key), `messages` (the
    first raw message per key, when the output key is a messages list), `winner` (index
    of the first key to get k ahead, or None), `decided_by`, `drawn` (samples drawn,
    red-flagged included), `valid`, `flags` (red flags by reason), `failures` (failed
    provider calls by kind), `in_flight`, `next_index`, `round`, `tokens_in`,
    `tokens_out`, `started` (wall-clock time of dispatch).
    """
    return {
        "input": step_input,
        "keys": [],
        "counts": [],
        "values": [],
        "messages": [],
        "winner": None,
        "decided_by": None,
        "drawn": 0,
        "valid": 0,
        "flags": {},
        "failures": {},
        "in_flight": 0,
        "next_index": 0,
        "round": 0,
        "tokens_in": 0,
        "tokens_out": 0,
        "started": time.time(),
    }


def _merge_counts(into: dict[str, int], more: Mapping[str, int]) -> dict[str, int]:
    if not more:
        return into
    out = dict(into)
    for name, n in more.items():
        out[name] = out.get(name, 0) + n
    return out


def k_ahead_reducer(k: int) -> Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]:
    """The reducer that joins one step's votes and records the first answer k ahead.

    Parallel `sample` branches each write one update; LangGraph applies them in
    `Send` order, so the result does not depend on which branch finished first.
    Updates are `{"op": "sample", ...}` (one checked sample) and `{"op": "round",
    ...}` / `{"op": "decided", ...}` (from the tally node). A new step replaces the
    whole tally with `Overwrite(new_tally(...))`.

    Example:
        >>> join = k_ahead_reducer(2)
        >>> t = new_tally("q")
        >>> for key in ["a", "b", "a", "a"]:
        ...     t = join(t, {"op": "sample", "key": key, "value": key, "drawn": 1})
        >>> t["keys"][t["winner"]], t["counts"]
        ('a', [3, 1])
    """
    if not isinstance(k, int) or k < 1:
        raise ConfigurationError(f"k must be an integer >= 1, got {k!r}")

    def join_votes(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
        tally = dict(current) if current else new_tally()
        op = update.get("op")
        if op == "sample":
            tally["in_flight"] = tally["in_flight"] - 1 + update.get("continues", 0)
            tally["drawn"] += update.get("drawn", 0)
            tally["next_index"] = max(tally["next_index"], update.get("next_index", 0))
            tally["tokens_in"] += update.get("tokens_in", 0)
            tally["tokens_out"] += update.get("tokens_out", 0)
            tally["failures"] = _merge_counts(tally["failures"], update.get("failures", {}))
            flag = update.get("flag")
            if flag is not None:
                tally["flags"] = _merge_counts(tally["flags"], {flag: 1})
            elif update.get("drawn"):
                tally["valid"] += 1
                key = freeze_key(update.get("key"))
                keys = [freeze_key(k_) for k_ in tally["keys"]]
                counts = list(tally["counts"])
                if key in keys:
                    counts[keys.index(key)] += 1
                    tally["keys"] = keys
                else:
                    tally["keys"] = [*keys, key]
                    counts.append(1)
                    # `messages` is kept index for index beside `values` (for a messages
                    # output key); a tally saved before it existed is padded.
                    prior = tally.get("messages") or [None] * len(tally["values"])
                    tally["values"] = [*tally["values"], update.get("value")]
                    tally["messages"] = [*prior, update.get("message")]
                tally["counts"] = counts
                if tally["winner"] is None:
                    lead = first_to_ahead_by_k(dict(enumerate(counts)), k)
                    if lead is not None:
                        tally["winner"] = lead
        elif op == "round":
            tally["in_flight"] += update["n"]
            tally["round"] = update["round"]
            tally["next_index"] = max(tally["next_index"], update["next_index"])
        elif op == "decided":
            tally["decided_by"] = update["decided_by"]
        else:
            raise ValueError(f"unknown tally update {update!r}")
        return tally

    join_votes.__qualname__ = join_votes.__name__ = f"k_ahead_reducer_k{k}"
    return join_votes
