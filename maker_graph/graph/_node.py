"""Graph-node plumbing shared by the LangGraph surfaces (private).

`DualNode` is a node with a synchronous and an asynchronous body, so one node
works under both `invoke` and `ainvoke` (an async-only node cannot run under a
sync `invoke`, and a sync-only node costs a worker thread per call under
`ainvoke`): LangGraph's `RunnableCallable`, as `add_node` makes of a function.
Sync bodies run their async work through `maker_graph._sync.run_sync`: neither
`RunnableCallable` nor `RunnableLambda` bridges a sync call to async work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

try:
    # LangGraph's only non-_internal path to it: a re-export mypy does not count as
    # public, marked "to be removed"; the fallback keeps a later LangGraph importable.
    from langgraph.utils.runnable import RunnableCallable  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - a LangGraph without the compat module
    from langgraph._internal._runnable import RunnableCallable

from .events import emit

__all__ = ["ROUTE", "DualNode", "emit", "router"]

ROUTE = "maker_graph.route"
"""Key under which a voting node's body returns its routing decision.

The node decides once (it knows the budget, the sample, the tally); the named
router (`red_flag_condition`, ...) reads the decision from the body's output,
and the node hands LangGraph a `Command` with the rest as its update. The key
never reaches the state, so routing works in any state schema.
"""


class DualNode(RunnableCallable):
    """A node with a sync body for `invoke` and an async body for `ainvoke`.

    `trace=False`: the body runs in the node's own run, with no child run. (Not
    `RunnableLambda(func, afunc=)`, measured: its child run parents the sample runs
    (test_maker_node_tracing fails) and outside a graph its config lacks LangGraph's
    runtime: `KeyError('__pregel_runtime')`, test_node_runs_outside_a_graph_too.)
    """

    def __init__(
        self,
        name: str,
        func: Callable[[Any], Any],
        afunc: Callable[[Any], Awaitable[Any]] | None = None,
    ) -> None:
        super().__init__(func, afunc, name=name, trace=False)


def router(fn: Callable[[Any], Any]) -> DualNode:
    """A pure routing function as a runnable LangGraph calls directly under `ainvoke`.

    A plain sync function given to `add_conditional_edges` runs in a worker thread
    under `ainvoke`; routers that only read the state should not pay for that.
    """
    return DualNode(fn.__name__, fn)
