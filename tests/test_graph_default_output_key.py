"""`maker_node`'s default output key (issue 15): the winner joins `messages` in a
messages state, and goes to `answer` everywhere else."""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph

from maker_graph.errors import ConfigurationError
from maker_graph.graph import maker_node
from maker_graph.testing import SimulatedChatModel


def hello(messages: list[Any]) -> str:
    return "hello"


async def run(graph: Any, inputs: Any, *, use_async: bool) -> Any:
    config = {"configurable": {"thread_id": "t"}}
    if use_async:
        return await graph.ainvoke(inputs, config)
    return await asyncio.to_thread(graph.invoke, inputs, config)


def graph_of(schema: Any, node: Any, *, checkpointer: Any = None) -> Any:
    builder = StateGraph(schema)
    builder.add_node("agent", node)
    builder.add_edge(START, "agent").add_edge("agent", END)
    return builder.compile(checkpointer=checkpointer)


@pytest.mark.parametrize("durable", [False, True])
@pytest.mark.parametrize("use_async", [False, True])
async def test_messages_state_default_appends_the_winning_ai_message(
    use_async: bool, durable: bool
) -> None:
    # No input_keys, no output_key: the model reads the conversation and its winning
    # reply joins it, as a hand-written agent node's would.
    node = maker_node(SimulatedChatModel(oracle=hello), k=2, durable=durable)
    graph = graph_of(MessagesState, node, checkpointer=InMemorySaver())
    out = await run(graph, {"messages": [HumanMessage("hi")]}, use_async=use_async)
    assert [type(m) for m in out["messages"]] == [HumanMessage, AIMessage]
    assert out["messages"][-1].content == "hello"


def test_a_function_step_in_a_messages_state_joins_as_an_ai_message() -> None:
    node = maker_node(lambda s: f"{len(s['messages'])} so far", k=1)
    out = graph_of(MessagesState, node).invoke({"messages": [HumanMessage("hi")]})
    assert isinstance(out["messages"][-1], AIMessage)
    assert out["messages"][-1].content == "1 so far"


class WithAnswer(MessagesState, total=False):
    answer: str


def test_a_state_with_an_answer_key_keeps_the_answer_default() -> None:
    node = maker_node(SimulatedChatModel(oracle=hello), k=2)
    out = graph_of(WithAnswer, node).invoke({"messages": [HumanMessage("hi")]})
    assert out["answer"] == "hello"
    assert [type(m) for m in out["messages"]] == [HumanMessage]


class Plain(TypedDict, total=False):
    q: str


def test_a_state_with_neither_key_names_the_default_and_the_fix() -> None:
    node = maker_node(lambda s: "x", k=1, input_keys="q")
    with pytest.raises(ConfigurationError, match=r"output_key='answer' \(the default\)"):
        graph_of(Plain, node).invoke({"q": "x"})


def test_outside_a_graph_the_default_stays_answer() -> None:
    node = maker_node(lambda s: "yes", k=1)
    assert node.invoke({"messages": [HumanMessage("hi")]}) == {"answer": "yes"}
