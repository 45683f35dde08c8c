"""State schemas built at run time for the LangGraph surfaces (private).

The voting graph, `add_maker_step` and the decomposition graph name their state
keys after the caller's options, so their schemas cannot be declared as classes.
"""

from __future__ import annotations

from typing import Annotated, Any, cast

# typing_extensions, not typing: LangGraph's server reads key docs and schemas from it on
# Python < 3.12.
from typing_extensions import TypedDict

from .tally import k_ahead_reducer

__all__ = ["typed_dict", "votes_channel"]


def typed_dict(name: str, fields: dict[str, Any]) -> type[Any]:
    """A `TypedDict` (total=False) named `name` with `fields`, built at run time."""
    return cast(type[Any], cast(Any, TypedDict)(name, fields, total=False))


def votes_channel(k: int) -> Any:
    """The type of a step's tally key: a dict joined by the k-ahead reducer for `k`."""
    return Annotated[dict[str, Any], k_ahead_reducer(k)]
