"""`maker_node(durable=True, output_key="messages")` appends the winning sample's own
AIMessage, tool calls included, exactly as the node does without `durable=True`.

The parser maps each sample to its action's name, so the parsed winner is a string:
only the sample's message carries the tool call and its arguments.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from maker_graph.graph import maker_node
from maker_graph.testing import SimulatedToolModel

RAN: list[str] = []


@tool
def refund(order_id: str) -> str:
    """Refund an order."""
    RAN.append(f"refund:{order_id}")
    return f"refunded {order_id}"


@tool
def cancel(order_id: str) -> str:
    """Cancel an order."""
    RAN.append(f"cancel:{order_id}")
    return f"cancelled {order_id}"


def policy(messages: list[Any]) -> Any:
    last = messages[-1]
    if isinstance(last, ToolMessage):
        return f"Done: {last.content}"
    verb, order = str(last.content).split()
    return {"name": verb, "args": {"order_id": order}}


def action_name(message: AIMessage) -> str:
    return message.tool_calls[0]["name"] if message.tool_calls else message.text


def react_graph(*, durable: bool) -> Any:
    tools = [refund, cancel]
    # Always right: the test is about what reaches the state, not about accuracy.
    model = SimulatedToolModel(policy=policy, wrong_tool=0, wrong_argument=0, seed=5)
    builder = StateGraph(MessagesState)
    builder.add_node(
        "agent",
        maker_node(
            model.bind_tools(tools), k=2, output_key="messages", parser=action_name, durable=durable
        ),
    )
    builder.add_node("tools", ToolNode(tools))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=InMemorySaver())


def _run(graph: Any, text: str, thread: str, use_async: bool) -> dict[str, Any]:
    config = {"configurable": {"thread_id": thread}}
    inputs = {"messages": [HumanMessage(text)]}
    if use_async:
        return asyncio.run(graph.ainvoke(inputs, config))  # type: ignore[no-any-return]
    return graph.invoke(inputs, config)  # type: ignore[no-any-return]


@pytest.mark.parametrize("use_async", [False, True])
def test_durable_node_appends_the_winning_message_with_its_tool_calls(use_async: bool) -> None:
    RAN.clear()
    out = _run(react_graph(durable=True), "cancel B4", f"durable-{use_async}", use_async)
    ais = [m for m in out["messages"] if isinstance(m, AIMessage)]
    assert len(ais) == 2
    call = ais[0].tool_calls
    assert [(c["name"], c["args"]) for c in call] == [("cancel", {"order_id": "B4"})]
    # The sample's own message: its provider metadata and run id survive.
    assert ais[0].response_metadata["finish_reason"] == "tool_calls"
    assert ais[0].id is not None and ais[0].id.startswith("lc_run-")
    # The tool ran once, for the winner, and the final turn is the model's own message.
    assert RAN == ["cancel:B4"]
    assert ais[1].content == "Done: cancelled B4"
    assert ais[1].response_metadata["finish_reason"] == "stop"


@pytest.mark.parametrize("use_async", [False, True])
def test_durable_and_plain_nodes_write_the_same_turns(use_async: bool) -> None:
    def turns(durable: bool) -> list[tuple[Any, ...]]:
        out = _run(
            react_graph(durable=durable), "refund A7", f"same-{durable}-{use_async}", use_async
        )
        return [
            (
                type(m).__name__,
                m.content,
                [(c["name"], c["args"], c["id"]) for c in getattr(m, "tool_calls", [])],
                m.response_metadata.get("finish_reason"),
            )
            for m in out["messages"]
        ]

    plain = turns(False)
    assert [t[0] for t in plain] == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    assert turns(True) == plain


def test_durable_second_turn_on_a_thread_gets_its_own_message() -> None:
    # The sub-graph's saved tally from the first turn must not leak its message
    # into the second turn on the same thread.
    graph = react_graph(durable=True)
    config = {"configurable": {"thread_id": "twice"}}
    graph.invoke({"messages": [HumanMessage("refund A1")]}, config)
    out = graph.invoke({"messages": [HumanMessage("cancel A2")]}, config)
    calls = [
        c["name"] + ":" + c["args"]["order_id"]
        for m in out["messages"]
        if isinstance(m, AIMessage)
        for c in m.tool_calls
    ]
    assert calls == ["refund:A1", "cancel:A2"]
