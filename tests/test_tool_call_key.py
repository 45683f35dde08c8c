"""Tool-calling answers vote on their action: tool name plus arguments, never call ids."""

from __future__ import annotations

import doctest
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

import maker_graph.actions
from maker_graph import maker_node, tool_call_key
from maker_graph.sampling import ChatModelSampler, message_text
from maker_graph.testing import ScriptedChatModel
from maker_graph.vote import VotePolicy, Voter, default_key, default_parser


def call(name: str, call_id: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def acting(*calls: dict[str, Any]) -> AIMessage:
    return AIMessage(content="", tool_calls=list(calls))


def test_the_docstring_examples_hold() -> None:
    failed, tried = doctest.testmod(maker_graph.actions)
    assert tried >= 3 and failed == 0


def test_the_tool_name_is_part_of_the_key() -> None:
    refund = acting(call("refund", "a", order_id="A1"))
    cancel = acting(call("cancel", "a", order_id="A1"))
    assert tool_call_key(refund) != tool_call_key(cancel)
    assert default_key(refund) != default_key(cancel)
    # The text of a tool-calling message keeps its tool name too.
    assert "refund" in message_text(refund) and "cancel" in message_text(cancel)


def test_ids_and_call_order_never_enter_the_key() -> None:
    one = acting(call("lookup", "id-1", order_id="A1"), call("notify", "id-2", channel="mail"))
    two = acting(call("notify", "x9", channel="mail"), call("lookup", "x8", order_id="A1"))
    assert tool_call_key(one) == tool_call_key(two)
    # A multiset: calling a tool twice is another action than calling it once.
    twice = acting(call("lookup", "1", order_id="A1"), call("lookup", "2", order_id="A1"))
    once = acting(call("lookup", "1", order_id="A1"))
    assert tool_call_key(twice) != tool_call_key(once)
    # Arguments are compared as data, whatever their order in the JSON.
    assert tool_call_key(acting(call("t", "1", a=1, b=2))) == tool_call_key(
        acting(call("t", "2", b=2, a=1))
    )
    assert tool_call_key(acting(call("t", "1", a=1))) != tool_call_key(acting(call("t", "1", a=2)))


def test_a_text_answer_keys_as_its_normalised_text() -> None:
    assert tool_call_key(AIMessage(content="  Paris \n\t is  the answer ")) == "Paris is the answer"
    assert default_key(AIMessage(content="Paris")) == default_key(AIMessage(content=" Paris\n"))


def test_a_tool_calling_message_is_its_own_answer() -> None:
    message = acting(call("refund", "a", order_id="A1"))
    assert default_parser(message) is message
    assert default_parser(AIMessage(content=" 4 ")) == "4"


@pytest.mark.parametrize("run_async", [False, True])
async def test_a_vote_separates_tools_and_returns_the_winning_message(run_async: bool) -> None:
    # Round 1 (k = 2 samples): refund vs cancel, tied. Round 2: two more refunds, so
    # refund leads 3 to 1 and wins after exactly 4 samples. Ids differ on every sample.
    answers = [
        acting(call("refund", "r1", order_id="A1")),
        acting(call("cancel", "c1", order_id="A1")),
        acting(call("refund", "r2", order_id="A1")),
        acting(call("refund", "r3", order_id="A1")),
    ]
    model = ScriptedChatModel(answers=answers)
    voter = Voter(ChatModelSampler(model), policy=VotePolicy(k=2, max_samples=8))
    result = await voter.vote("refund order A1")
    assert result.samples_drawn == 4
    assert isinstance(result.winner, AIMessage)
    assert [c["name"] for c in result.winner.tool_calls] == ["refund"]
    assert result.winner.tool_calls[0]["args"] == {"order_id": "A1"}
    assert len(model.calls) == 4


class TicketState(TypedDict, total=False):
    ticket: str
    action: Any
    maker_stats: Any


def test_maker_node_writes_the_winning_tool_call_message() -> None:
    answers = [acting(call("refund", f"r{i}", order_id="A1")) for i in range(2)]
    model = ScriptedChatModel(answers=answers)
    builder = StateGraph(TicketState)
    builder.add_node(
        "decide",
        maker_node(model, k=2, input_keys=["ticket"], output_key="action", stats_key="maker_stats"),
    )
    builder.add_edge(START, "decide")
    builder.add_edge("decide", END)
    out = builder.compile().invoke({"ticket": "refund A1"})
    assert isinstance(out["action"], AIMessage)
    assert out["action"].tool_calls[0]["name"] == "refund"
    assert out["maker_stats"]["samples_drawn"] == 2
