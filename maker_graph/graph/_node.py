"""Graph-node plumbing shared by the LangGraph surfaces (private).

`DualNode` is a node with a synchronous and an asynchronous body, so one node
works under both `invoke` and `ainvoke` (an async-only node cannot run under a
sync `invoke`, and a sync-only node costs a worker thread per call under
`ainvoke`). Sync bodies run their async work through `maker_graph._sync.run_sync`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig

from .events import emit

__all__ = ["ROUTE", "DualNode", "emit", "router"]

ROUTE = "maker_graph.route"
"""Key under which a voting node's body returns its routing decision.

The node decides once (it knows the budget, the sample, the tally); the named
router (`red_flag_condition`, ...) reads the decision from the body's output,
and the node hands LangGraph a `Command` with the rest as its update. The key
never reaches the state, so routing works in any state schema.
"""


class DualNode(Runnable[Any, Any]):
    """A node with a sync body for `invoke` and an async body for `ainvoke`."""

    def __init__(
        self,
        name: str,
        func: Callable[[Any], Any],
        afunc: Callable[[Any], Awaitable[Any]] | None = None,
    ) -> None:
        self.name = name
        self.func = func
        self.afunc = afunc

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self.func(input)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        if self.afunc is None:
            return self.func(input)
        return await self.afunc(input)

    def __repr__(self) -> str:
        return f"DualNode({self.name!r})"


def router(fn: Callable[[Any], Any]) -> DualNode:
    """A pure routing function as a runnable LangGraph calls directly under `ainvoke`.

    A plain sync function given to `add_conditional_edges` runs in a worker thread
    under `ainvoke`; routers that only read the state should not pay for that.
    """
    return DualNode(fn.__name__, fn)
