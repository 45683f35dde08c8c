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
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from pydantic import BaseModel

from maker_graph.errors import ConfigurationError
from maker_graph.graph import add_maker_step, create_voting_graph, maker_node
from maker_graph.graph._options import is_chat_model
from maker_graph.testing import SimulatedChatModel

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
async def test_add_maker_step_in_pydantic_and_dataclass_graph(schema: Any, use_async: bool) -> None:
    builder = StateGraph(schema)
    nodes = add_maker_step(builder, "step", shout, k=2, input_keys=["q"], output_key="a")
    builder.add_edge(START, nodes.entry)
    graph = builder.compile(checkpointer=InMemorySaver())
    out = await run(graph, {"q": "hi"}, use_async=use_async)
    assert out["a"] == "HI"


def refund(order_id: str) -> str:
    """Refund an order."""
    return f"refunded {order_id}"


def refund_oracle(messages: list[Any]) -> str:
    # JSON text: with tools bound, the simulated model answers with a call of the tool.
    return '{"order_id": "A1"}'


def text_oracle(messages: list[Any]) -> str:
    return "hello"


@pytest.mark.parametrize("use_async", [False, True])
async def test_messages_state_gets_the_winning_ai_message(use_async: bool) -> None:
    model = SimulatedChatModel(oracle=text_oracle)
    builder = StateGraph(MessagesState)
    builder.add_node("n", maker_node(model, k=2, output_key="messages"))
    builder.add_edge(START, "n").add_edge("n", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    out = await run(graph, {"messages": [HumanMessage("hi")]}, use_async=use_async)
    assert [type(m) for m in out["messages"]] == [HumanMessage, AIMessage]
    assert out["messages"][-1].content == "hello"


@pytest.mark.parametrize("use_async", [False, True])
async def test_bound_model_is_a_chat_model_and_its_tool_call_joins_messages(
    use_async: bool,
) -> None:
    bound = SimulatedChatModel(oracle=refund_oracle).bind_tools([refund])
    node = maker_node(
        bound, k=2, output_key="messages", temperature=0.0, prompt=lambda s: s["messages"]
    )
    builder = StateGraph(MessagesState)
    builder.add_node("agent", node)
    builder.add_edge(START, "agent").add_edge("agent", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    out = await run(graph, {"messages": [HumanMessage("refund A1")]}, use_async=use_async)
    last = out["messages"][-1]
    assert isinstance(last, AIMessage)
    assert [(c["name"], c["args"]) for c in last.tool_calls] == [("refund", {"order_id": "A1"})]


def test_bound_and_configured_models_accept_chat_options() -> None:
    model = SimulatedChatModel(oracle=text_oracle)
    for step in (model.bind_tools([refund]), model.with_config(tags=["x"]), model):
        assert is_chat_model(step)
        # Chat options are refused for anything that is not a chat model; these pass.
        maker_node(step, prompt=lambda s: s["messages"], temperature=0.2, models=[model])
    assert not is_chat_model(lambda s: "x")


def test_init_chat_model_wrapper_is_a_chat_model() -> None:
    from langchain.chat_models import init_chat_model

    # Without a fixed model, init_chat_model returns a configurable wrapper that
    # is not a BaseChatModel; it still takes prompt= and temperature=.
    configurable = init_chat_model(configurable_fields="any")
    assert is_chat_model(configurable)
    maker_node(configurable, prompt=lambda s: s["messages"], temperature=0.3)


@pytest.mark.parametrize("schema", [PydanticState, DataclassState])
def test_misspelt_output_key_names_the_key_and_the_fields(schema: Any) -> None:
    builder = StateGraph(schema)
    builder.add_node("n", maker_node(shout, k=1, input_keys=["q"], output_key="lable"))
    builder.add_edge(START, "n").add_edge("n", END)
    fields = r"output_key='lable' is not a key of the graph state.*\['q', 'a'\]"
    with pytest.raises(ConfigurationError, match=fields):
        builder.compile().invoke({"q": "x"})


@pytest.mark.parametrize("use_async", [False, True])
async def test_add_maker_step_appends_the_winning_tool_call_to_messages(use_async: bool) -> None:
    bound = SimulatedChatModel(oracle=refund_oracle).bind_tools([refund])
    builder = StateGraph(MessagesState)
    nodes = add_maker_step(
        builder, "agent", bound, k=2, output_key="messages", prompt=lambda s: s["messages"]
    )
    builder.add_edge(START, nodes.entry)
    graph = builder.compile(checkpointer=InMemorySaver())
    out = await run(graph, {"messages": [HumanMessage("refund A1")]}, use_async=use_async)
    assert [type(m) for m in out["messages"]] == [HumanMessage, AIMessage]
    assert [c["name"] for c in out["messages"][-1].tool_calls] == ["refund"]


class PydanticVoteState(BaseModel):
    step_input: str = ""
    answer: str | None = None


@dataclass
class DataclassVoteState:
    step_input: str = ""
    answer: str | None = None


@pytest.mark.parametrize("use_async", [False, True])
@pytest.mark.parametrize("schema", [PydanticVoteState, DataclassVoteState])
async def test_voting_graph_as_subgraph_of_pydantic_and_dataclass_graph(
    schema: Any, use_async: bool
) -> None:
    sub = create_voting_graph(lambda q: q.upper(), k=2, stats_key=None).compile()
    builder = StateGraph(schema)
    builder.add_node("vote", sub)
    builder.add_edge(START, "vote").add_edge("vote", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    out = await run(graph, {"step_input": "hi"}, use_async=use_async)
    assert out["answer"] == "HI"
