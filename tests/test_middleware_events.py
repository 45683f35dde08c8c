"""MakerMiddleware streams the documented `maker.*` events, labelled with the agent's
model node, on the `custom` stream (sync and async), like the graph surfaces do."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatResult
from langchain_core.tools import tool

from maker_graph import MakerMiddleware
from maker_graph.errors import SamplerError
from maker_graph.graph.events import EVENT_FIELDS, EVENT_NAMES
from maker_graph.sampling import ProviderRetry
from maker_graph.testing import SimulatedToolModel

MODEL_NODE = "model"  # the node create_agent runs the model call in


@tool
def refund(order_id: str) -> str:
    """Refund an order."""
    return f"refunded {order_id}"


@tool
def cancel(order_id: str) -> str:
    """Cancel an order."""
    return f"cancelled {order_id}"


def policy(messages: list[Any]) -> Any:
    last = messages[-1]
    if isinstance(last, ToolMessage):
        return f"Done: {last.content}"
    verb, order = str(last.content).split()
    return {"name": verb, "args": {"order_id": order}}


class _DownModel(SimulatedToolModel):
    """Sample 1 of every turn always fails at the provider."""

    def _respond(
        self, messages: list[BaseMessage], metadata: dict[str, Any] | None, kwargs: dict[str, Any]
    ) -> ChatResult:
        if (metadata or {}).get("maker_sample_index") == 1:
            raise ConnectionError("provider down")
        return super()._respond(messages, metadata, kwargs)


def _check_fields(events: list[dict[str, Any]], node: str) -> set[str]:
    for event in events:
        assert event["event"] in EVENT_NAMES, event
        assert set(event) == {"event", "node", *EVENT_FIELDS[event["event"]]}, event
        assert event["node"] == node, event
    return {event["event"] for event in events}


def _agent(model: Any, **options: Any) -> Any:
    return create_agent(model, [refund, cancel], middleware=[MakerMiddleware(k=3, **options)])


INPUT = {"messages": [HumanMessage("refund A1")]}


def _sync(agent: Any) -> list[dict[str, Any]]:
    return list(agent.stream(INPUT, stream_mode="custom"))


def _async(agent: Any) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        return [event async for event in agent.astream(INPUT, stream_mode="custom")]

    return asyncio.run(run())


def _model(**rates: Any) -> SimulatedToolModel:
    # Seeded dice: 40 % unknown tool (a red flag), 20 % the other tool (a rival vote).
    return SimulatedToolModel(
        policy=policy,
        wrong_tool=rates.get("wrong_tool", 0.2),
        wrong_argument=0.0,
        unknown_tool=rates.get("unknown_tool", 0.4),
        seed=5,
    )


@pytest.mark.parametrize("stream", [_sync, _async], ids=["sync", "async"])
def test_agent_turns_stream_the_documented_events(stream: Any) -> None:
    events = stream(_agent(_model()))
    kinds = _check_fields(events, MODEL_NODE)
    assert {"maker.round", "maker.sample", "maker.red_flag", "maker.decided"} <= kinds
    # Two model turns (the tool call, then the final answer): one decision each.
    decided = [e for e in events if e["event"] == "maker.decided"]
    assert len(decided) == 2
    assert decided[0]["winner"]["tool_calls"][0]["name"] == "refund"
    assert decided[1]["winner"]["content"] == "Done: refunded A1"
    # Per turn: rounds numbered 1, 2, ...; every sample is announced by its round
    # first, the rounds' sizes add up to the samples drawn and flagged samples are
    # the red flags counted in the decision.
    turns: list[list[dict[str, Any]]] = [[]]
    for event in events:
        turns[-1].append(event)
        if event["event"] == "maker.decided":
            turns.append([])
    for turn, done in zip(turns, decided, strict=False):
        rounds = [e for e in turn if e["event"] == "maker.round"]
        samples = [e for e in turn if e["event"] == "maker.sample"]
        assert [r["round"] for r in rounds] == list(range(1, len(rounds) + 1))
        assert rounds[0]["drawn"] == 0 and rounds[0]["samples"] == 3  # k votes first
        assert sum(r["samples"] for r in rounds) == len(samples) == done["samples_drawn"]
        assert {s["round"] for s in samples} == {r["round"] for r in rounds}
        flagged = [e for e in turn if e["event"] == "maker.red_flag"]
        assert len(flagged) == sum(done["red_flags"].values())
        assert len(flagged) == sum(1 for s in samples if not s["valid"])
    assert sum(len(t) for t in turns) == len(events)


@pytest.mark.parametrize("stream", [_sync, _async], ids=["sync", "async"])
def test_a_provider_that_stays_down_streams_a_provider_failure(stream: Any) -> None:
    retry = ProviderRetry(max_attempts=2, initial_delay=0.001, jitter=0.0)
    agent = _agent(_DownModel(policy=policy, wrong_tool=0, wrong_argument=0), retry=retry)
    seen: list[dict[str, Any]] = []

    async def collect() -> None:
        async for event in agent.astream(INPUT, stream_mode="custom"):
            seen.append(event)

    with pytest.raises(SamplerError):
        if stream is _sync:
            for event in agent.stream(INPUT, stream_mode="custom"):
                seen.append(event)
        else:
            asyncio.run(collect())
    kinds = _check_fields(seen, MODEL_NODE)
    assert "maker.provider_failure" in kinds and "maker.decided" not in kinds
    failure = next(e for e in seen if e["event"] == "maker.provider_failure")
    assert failure["index"] == 1
    assert "provider down" in failure["error"]
    assert failure["failures"] and sum(failure["failures"].values()) == 2


def test_the_node_label_follows_the_agent_not_the_middleware_name() -> None:
    agent = create_agent(
        _model(unknown_tool=0.0, wrong_tool=0.0),
        [refund, cancel],
        middleware=[MakerMiddleware(k=2, name="vote")],
    )
    events = _sync(agent)
    assert events and {e["node"] for e in events} == {MODEL_NODE}
