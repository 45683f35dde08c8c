"""The voting nodes' routers: named decisions that follow each node's own output.

Each node's body decides where the step goes next (it knows the budget, the
sample, the tally) and returns that decision under `ROUTE` beside its update.
The router turns it into a destination, and the node returns both as a
`Command` to destinations it declared, so no route key ever reaches the state
(a pydantic or dataclass state would drop it) and the drawn graph still shows
the labelled edges; `red_flag_condition` is the red-flag guard edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, cast

from langgraph.types import Send

from ._node import ROUTE

__all__ = ["dispatch_condition", "red_flag_condition", "tally_condition"]


def dispatch_condition(state: Mapping[str, Any]) -> list[Send]:
    """Router after `dispatch`: the first round's `Send`s, one per sample."""
    return cast(list[Send], state.get(ROUTE) or [])


def red_flag_condition(state: Mapping[str, Any]) -> Literal["vote", "red_flag"] | Send:
    """The red-flag guard edge after `sample`.

    A red-flagged sample (or a provider failure worth one more try) goes straight
    back to `sample` as a `Send` with a fresh sample index, while the step's budget
    allows; every other sample goes on to the tally as a vote (`"vote"`). The
    decision is made in the `sample` node, which knows the budget; this router
    only follows it, so the guard is a visible, named edge in the drawn graph.
    """
    route = state.get(ROUTE)
    if isinstance(route, Send):
        return route
    return "vote"


def tally_condition(
    state: Mapping[str, Any],
) -> Literal["decided", "no_consensus"] | list[Send]:
    """Router after `tally`: end, fan out the next round, escalate, or wait (no route)."""
    route = state.get(ROUTE)
    if route in ("decided", "no_consensus"):
        return cast(Literal["decided", "no_consensus"], route)
    return cast(list[Send], route or [])
