"""The voting surfaces' nodes are LangGraph's own `RunnableCallable` (issue 15)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.utils.runnable import RunnableCallable  # type: ignore[attr-defined]

from maker_graph.graph import maker_node
from maker_graph.graph._node import router


class State(TypedDict, total=False):
    q: str
    answer: str


def test_a_voted_node_is_the_node_langgraph_makes_of_a_function() -> None:
    node = maker_node(lambda s: "x", k=1, input_keys="q", name="classify")
    assert isinstance(node, RunnableCallable)
    # No child run of its own: the body runs in the run LangGraph makes for the task.
    assert node.trace is False
    assert node.name == "classify"


def test_a_router_runs_on_the_event_loop_thread_under_ainvoke() -> None:
    threads: list[int] = []

    def where(state: Any) -> str:
        threads.append(threading.get_ident())
        return "end"

    builder = StateGraph(State)
    builder.add_node("n", maker_node(lambda s: "x", k=1, input_keys="q"))
    builder.add_edge(START, "n")
    builder.add_conditional_edges("n", router(where), {"end": END})
    graph = builder.compile()

    async def main() -> int:
        await graph.ainvoke({"q": "x"})
        return threading.get_ident()

    assert threads == [asyncio.run(main())]
