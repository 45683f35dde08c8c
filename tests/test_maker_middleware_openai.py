"""MakerMiddleware through the real `ChatOpenAI` client against the loopback stub.

The stub answers in OpenAI's wire format: tool calls with `function.arguments`
as a JSON string (sometimes malformed), `finish_reason: "tool_calls"`, and tool-call
deltas when streaming. A quarter of its answers are wrong: the neighbouring tool,
a near-miss order id, or arguments that are not valid JSON (which LangChain
reports as `invalid_tool_calls`: a red flag, never a crash). It also rate-limits
now and then; those are retried, never voted.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

pytest.importorskip("langchain_openai")

from langchain.agents import create_agent  # noqa: E402
from langchain_core.messages import AIMessage, HumanMessage  # noqa: E402
from langchain_core.tools import tool  # noqa: E402
from langchain_openai import ChatOpenAI  # noqa: E402
from openai_stub import OpenAIStub, StubBehaviour, tool_calls_text  # noqa: E402

from maker_graph import MakerMiddleware  # noqa: E402

VERBS = ["refund", "cancel", "track"]
RAN: Counter[str] = Counter()


def _tools() -> list[Any]:
    @tool
    def refund(order_id: str) -> str:
        """Refund an order."""
        RAN[f"refund:{order_id}"] += 1
        return f"refunded {order_id}"

    @tool
    def cancel(order_id: str) -> str:
        """Cancel an order."""
        RAN[f"cancel:{order_id}"] += 1
        return f"cancelled {order_id}"

    @tool
    def track(order_id: str) -> str:
        """Track an order."""
        RAN[f"track:{order_id}"] += 1
        return f"tracking {order_id}"

    return [refund, cancel, track]


def _request(messages: list[dict[str, Any]]) -> tuple[str, str] | None:
    last = messages[-1]
    if last.get("role") != "user":
        return None
    verb, order = str(last["content"]).split()
    return verb, order


def oracle(messages: list[dict[str, Any]]) -> str:
    asked = _request(messages)
    if asked is None:
        return "Done: " + str(messages[-1].get("content"))
    verb, order = asked
    return tool_calls_text((verb, {"order_id": order}))


def wrong(messages: list[dict[str, Any]], rival: int) -> str:
    asked = _request(messages)
    if asked is None:
        return oracle(messages)  # the closing summary is never wrong
    verb, order = asked
    kind = rival % 3
    if kind == 0:  # the neighbouring tool
        return tool_calls_text((VERBS[(VERBS.index(verb) + 1) % 3], {"order_id": order}))
    if kind == 1:  # a near-miss argument
        return tool_calls_text((verb, {"order_id": order + "0"}))
    return tool_calls_text((verb, '{"order_id": "' + order))  # malformed JSON


BEHAVIOUR = StubBehaviour(
    wrong_rate=0.25,
    ramble_rate=0,
    malformed_rate=0,
    rate_limit_rate=0.05,
    server_error_rate=0,
    retry_after=0.01,
    seed=3,
)


def _agent(stub: OpenAIStub, streaming: bool = False) -> Any:
    model = ChatOpenAI(
        base_url=stub.base_url,
        api_key="stub-key",
        model="stub-model",
        max_retries=0,
        streaming=streaming,
    )
    return create_agent(model, _tools(), middleware=[MakerMiddleware(k=3)])


def _check(out: dict[str, Any], verb: str, order: str, flags: Counter[str]) -> bool:
    ais = [m for m in out["messages"] if isinstance(m, AIMessage)]
    assert len(ais) == 2  # one AIMessage per model turn
    assert not ais[0].invalid_tool_calls  # a malformed sample never wins
    (call,) = ais[0].tool_calls
    flags.update(ais[0].response_metadata["maker"]["red_flags"])
    return bool(call["name"] == verb and call["args"] == {"order_id": order})


def test_chat_openai_tool_calls_are_voted_sync() -> None:
    flags: Counter[str] = Counter()
    with OpenAIStub(oracle, wrong, BEHAVIOUR) as stub:
        agent = _agent(stub)
        right = 0
        for i in range(16):
            verb, order = VERBS[i % 3], f"B{i}"
            RAN.clear()
            out = agent.invoke({"messages": [HumanMessage(f"{verb} {order}")]})
            right += _check(out, verb, order, flags)
            assert sum(RAN.values()) == 1  # only the winner's tool ran
        assert stub.stats["rate_limited"] > 0  # retried, and still no crash
    # k=3 on a 75 %-right model is right ~99 % of the time; 14/16 leaves room for luck.
    assert right >= 14
    # Malformed argument JSON reached the client as invalid_tool_calls and was red-flagged.
    assert flags["invalid_tool_call"] > 0, flags


def test_chat_openai_streaming_turns_stream_once_async() -> None:
    flags: Counter[str] = Counter()

    async def run(agent: Any, verb: str, order: str) -> list[Any]:
        return [
            c
            async for c in agent.astream(
                {"messages": [HumanMessage(f"{verb} {order}")]}, stream_mode="messages"
            )
        ]

    with OpenAIStub(oracle, wrong, BEHAVIOUR) as stub:
        agent = _agent(stub, streaming=True)
        for i in range(6):
            verb, order = VERBS[i % 3], f"C{i}"
            RAN.clear()
            chunks = asyncio.run(run(agent, verb, order))
            ais = [m for m, _ in chunks if isinstance(m, AIMessage)]
            # Two model turns, each streamed once as a whole message: no sample's tokens.
            assert len(ais) == 2 and len({m.id for m in ais}) == 2, ais
            assert ais[0].tool_calls and not ais[0].invalid_tool_calls
            flags.update(ais[0].response_metadata["maker"]["red_flags"])
            assert sum(RAN.values()) == 1
        assert stub.stats["requests"] >= 6 * 6
