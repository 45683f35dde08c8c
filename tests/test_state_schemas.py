"""The graph surfaces in any state schema LangGraph accepts (issue 11, item 4).

A user's state may be a TypedDict, a pydantic model, a dataclass or
`MessagesState`; `maker_node` and `add_maker_step` read it by key or by
attribute and route without a hidden state key.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel

from maker_graph.graph import add_maker_step, maker_node

_threads = itertools.count()


class PydanticState(BaseModel):
    q: str = ""
    a: str | None = None


@dataclass
class DataclassState:
    q: str = ""
    a: str | None = None


async def run(graph: Any, inputs: Any, *, use_async: bool) -> Any:
    # A fresh thread id per run: the checkpointer must not resume an earlier run.
    config = {"configurable": {"thread_id": f"t{next(_threads)}"}}
    if use_async:
        return await graph.ainvoke(inputs, config)
    return await asyncio.to_thread(graph.invoke, inputs, config)


def shout(inputs: dict[str, Any]) -> str:
    return str(inputs["q"]).upper()


@pytest.mark.parametrize("use_async", [False, True])
@pytest.mark.parametrize("schema", [PydanticState, DataclassState])
async def test_maker_node_reads_pydantic_and_dataclass_state(schema: Any, use_async: bool) -> None:
    builder = StateGraph(schema)
    builder.add_node("n", maker_node(shout, k=2, input_keys=["q"], output_key="a"))
    builder.add_edge(START, "n").add_edge("n", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    out = await run(graph, {"q": "hi"}, use_async=use_async)
    assert out["a"] == "HI"


@pytest.mark.parametrize("schema", [PydanticState, DataclassState])
def test_maker_node_whole_state_input(schema: Any) -> None:
    seen: list[dict[str, Any]] = []

    def step(inputs: dict[str, Any]) -> str:
        seen.append(inputs)
        return "ok"

    builder = StateGraph(schema)
    builder.add_node("n", maker_node(step, k=1, output_key="a"))
    builder.add_edge(START, "n").add_edge("n", END)
    assert builder.compile().invoke({"q": "x"})["a"] == "ok"
    # The whole state is handed over as a dict of its fields.
    assert seen and seen[0] == {"q": "x", "a": None}


@pytest.mark.parametrize("use_async", [False, True])
@pytest.mark.parametrize("schema", [PydanticState, DataclassState])
async def test_add_maker_step_in_pydantic_and_dataclass_graph(
    schema: Any, use_async: bool
) -> None:
    builder = StateGraph(schema)
    nodes = add_maker_step(builder, "step", shout, k=2, input_keys=["q"], output_key="a")
    builder.add_edge(START, nodes.entry)
    graph = builder.compile(checkpointer=InMemorySaver())
    out = await run(graph, {"q": "hi"}, use_async=use_async)
    assert out["a"] == "HI"
