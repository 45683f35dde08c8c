"""A `maker_node` setup error names the node as the graph knows it (issue 15)."""

from __future__ import annotations

from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from maker_graph.errors import ConfigurationError
from maker_graph.graph import maker_node


class State(TypedDict, total=False):
    ticket: str
    label: str


def graph_with(node: Any) -> Any:
    builder = StateGraph(State)
    builder.add_node("classify", node)
    builder.add_edge(START, "classify").add_edge("classify", END)
    return builder.compile()


@pytest.mark.parametrize("durable", [False, True])
@pytest.mark.parametrize("use_async", [False, True])
async def test_misspelt_output_key_names_the_node_it_was_added_as(
    use_async: bool, durable: bool
) -> None:
    node = maker_node(
        lambda s: "billing", k=1, input_keys="ticket", output_key="lable", durable=durable
    )
    graph = graph_with(node)
    with pytest.raises(ConfigurationError, match=r"^maker_node 'classify': output_key='lable'"):
        if use_async:
            await graph.ainvoke({"ticket": "charged twice"})
        else:
            graph.invoke({"ticket": "charged twice"})


def test_the_graph_node_name_wins_over_name() -> None:
    node = maker_node(
        lambda s: "x",
        k=1,
        input_keys="ticket",
        output_key="label",
        stats_key="stats",
        name="labeller",
    )
    with pytest.raises(ConfigurationError, match=r"^maker_node 'classify': stats_key='stats'"):
        graph_with(node).invoke({"ticket": "x"})


def test_outside_a_graph_the_error_names_name() -> None:
    class Fields:
        ticket = "x"

    node = maker_node(lambda s: "x", k=1, input_keys="ticket", output_key="lable", name="labeller")
    with pytest.raises(ConfigurationError, match=r"^maker_node 'labeller': output_key='lable'"):
        node.invoke(Fields())
