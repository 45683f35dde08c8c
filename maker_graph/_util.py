"""Small helpers shared by several layers."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableLambda


def is_async_callable(fn: Any) -> bool:
    """True for coroutine functions and for objects whose `__call__` is one."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(type(fn), "__call__", None)  # noqa: B004 - we want the method, not callability
    return call is not None and inspect.iscoroutinefunction(call)


def compact_json(value: Any) -> str:
    """Canonical compact JSON (sorted keys, no spaces; unknown objects as their repr).

    The form the run log stores actions and tallies in, so that equal values
    always store as equal text.
    """
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=repr)


def identity(value: Any) -> Any:
    """The default codec of task states: stored as they are."""
    return value


def clip(text: str, limit: int = 60) -> str:
    """`text` cut to `limit` characters, ending in `...` when cut (for messages)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def async_node(
    name: str, afunc: Callable[[Any], Coroutine[Any, Any, Any]]
) -> RunnableLambda[Any, Any]:
    """A LangGraph node (a `RunnableLambda`) with both shells around one async core:
    `ainvoke` awaits it, `invoke` runs it on maker_graph's long-lived background loop
    (so async provider clients stay valid between calls)."""
    from langchain_core.runnables import RunnableLambda

    from ._sync import run_sync

    def func(value: Any) -> Any:
        return run_sync(afunc(value))

    return RunnableLambda(func, afunc=afunc, name=name)


def find_cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """One representative cycle per strongly connected component (Tarjan, iterative),
    each starting at its smallest member; a node with an edge to itself is a cycle.

    Example:
        >>> find_cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]})
        [['a', 'b', 'c']]
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            successors = edges.get(node, [])
            if i < len(successors):
                work.append((node, i + 1))
                nxt = successors[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges.get(node, []):
                    found.append(_cycle_through(sorted(component), edges))
    return found


def _cycle_through(members: list[str], edges: dict[str, list[str]]) -> list[str]:
    """A cycle through the component, starting at its first member, for the message."""
    allowed = set(members)
    start = members[0]
    path = [start]
    seen = {start}
    node = start
    while True:
        nxt = next((n for n in edges.get(node, []) if n in allowed), None)
        if nxt is None or nxt == start or nxt in seen:
            return path
        path.append(nxt)
        seen.add(nxt)
        node = nxt
