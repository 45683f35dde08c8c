"""MakerMiddleware in a real `langchain.agents.create_agent` agent.

The simulated model (`SimulatedToolModel`) is right 75 % of the time, calls the
wrong tool 15 % (the same neighbour per conversation, so wrong votes can agree)
and the right tool with a near-miss argument 10 %.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from typing import Any, Literal

import pytest
from langchain.agents import create_agent
from langchain.agents.structured_output import ToolStrategy
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from pydantic import BaseModel

from maker_graph import MakerMiddleware, NoConsensusError, tool_call_key
from maker_graph.actions import tool_call_problem
from maker_graph.scaling import p_step
from maker_graph.testing import SimulatedToolModel

RAN: Counter[str] = Counter()


def _tools(return_direct: bool = False) -> list[Any]:
    @tool(return_direct=return_direct)
    def refund(order_id: str) -> str:
        """Refund an order."""
        RAN[f"refund:{order_id}"] += 1
        return f"refunded {order_id}"

    @tool(return_direct=return_direct)
    def cancel(order_id: str) -> str:
        """Cancel an order."""
        RAN[f"cancel:{order_id}"] += 1
        return f"cancelled {order_id}"

    @tool(return_direct=return_direct)
    def track(order_id: str) -> str:
        """Track an order."""
        RAN[f"track:{order_id}"] += 1
        return f"tracking {order_id}"

    return [refund, cancel, track]


def policy(messages: list[Any]) -> Any:
    """The right move: the tool the customer asked for, then a final answer."""
    last = messages[-1]
    if isinstance(last, ToolMessage):
        return f"Done: {last.content}"
    verb, order = str(last.content).split()
    return {"name": verb, "args": {"order_id": order}}


def _requests(n: int) -> list[tuple[str, str]]:
    verbs = ["refund", "cancel", "track"]
    return [(verbs[i % 3], f"A{i}") for i in range(n)]


def _exact_accuracy(probs: list[float], k: int, budget: int = 200) -> float:
    """P(the right action wins) of a sequential first-to-ahead-by-k vote (probs[0] right)."""
    states = {tuple([0] * len(probs)): 1.0}
    win = 0.0
    for _ in range(budget):
        nxt: dict[tuple[int, ...], float] = {}
        for s, pr in states.items():
            for i, p in enumerate(probs):
                t = list(s)
                t[i] += 1
                ranked = sorted(t, reverse=True)
                if ranked[0] - ranked[1] >= k:
                    win += pr * p if t[0] == ranked[0] else 0.0
                    continue
                nxt[tuple(t)] = nxt.get(tuple(t), 0.0) + pr * p
        states = nxt
        if sum(states.values()) < 1e-12:
            break
    return win


def _accuracy(agent: Any, n: int) -> float:
    async def one(verb: str, order: str) -> bool:
        out = await agent.ainvoke({"messages": [HumanMessage(f"{verb} {order}")]})
        calls = [c for m in out["messages"] if isinstance(m, AIMessage) for c in m.tool_calls]
        return (
            len(calls) == 1 and calls[0]["name"] == verb and calls[0]["args"] == {"order_id": order}
        )

    async def run() -> list[bool]:
        return await asyncio.gather(*[one(v, o) for v, o in _requests(n)])

    return sum(asyncio.run(run())) / n


N = 300


def test_tool_accuracy_lifted_to_the_vote_prediction_two_sided() -> None:
    model = SimulatedToolModel(policy=policy, seed=11)
    plain = _accuracy(create_agent(model, _tools(return_direct=True)), N)
    voted = _accuracy(
        create_agent(model, _tools(return_direct=True), middleware=[MakerMiddleware(k=3)]), N
    )
    # One sample: right 75 % (3 s.e. at n=300 is 0.075).
    assert abs(plain - 0.75) <= 3 * math.sqrt(0.75 * 0.25 / N), plain
    # The bound: at least p_step(0.75, 3) - 3 s.e. (p_step assumes one rival).
    floor = p_step(0.75, 3)
    assert voted >= floor - 3 * math.sqrt(floor * (1 - floor) / N), voted
    # Two-sided against the exact value for this error mix (two rivals: 15 % and 10 %).
    expected = _exact_accuracy([0.75, 0.15, 0.10], 3)
    se = math.sqrt(expected * (1 - expected) / N)
    assert abs(voted - expected) <= 3 * se, (voted, expected)
    # The check can tell k=2 from k=3 here (k=4 is within 3 s.e. at this n; too close).
    assert abs(_exact_accuracy([0.75, 0.15, 0.10], 2) - expected) > 3 * se


def _agent(**options: Any) -> Any:
    model = SimulatedToolModel(policy=policy, seed=options.pop("seed", 3))
    checkpointer = options.pop("checkpointer", None)
    return create_agent(
        model, _tools(), middleware=[MakerMiddleware(**options)], checkpointer=checkpointer
    )


def _check_turns(messages: list[Any], order: str, verb: str) -> None:
    ais = [m for m in messages if isinstance(m, AIMessage)]
    # One AIMessage per model turn: the tool call, then the final answer.
    assert len(ais) == 2
    assert [c["name"] for c in ais[0].tool_calls] == [verb]
    assert ais[1].content == f"Done: {'refunded' if verb == 'refund' else verb + 'ed'} {order}" or (
        ais[1].content.startswith("Done:")
    )
    assert ais[0].response_metadata["maker"]["decided_by"] == "vote"
    assert sum(ais[0].response_metadata["maker"]["tally"].values()) >= 3


def test_sync_one_tool_runs_per_turn_and_one_message_per_turn() -> None:
    agent = _agent(k=3)
    for verb, order in _requests(12):
        RAN.clear()
        out = agent.invoke({"messages": [HumanMessage(f"{verb} {order}")]})
        _check_turns(out["messages"], order, verb)
        # Exactly one tool ran, the winner's: no losing sample reached the tools.
        assert sum(RAN.values()) == 1
        assert RAN[f"{verb}:{order}"] == 1


def test_async_with_checkpointer_keeps_one_message_per_turn() -> None:
    agent = _agent(k=3, checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t1"}}

    async def run() -> Any:
        await agent.ainvoke({"messages": [HumanMessage("refund A1")]}, config)
        return await agent.ainvoke({"messages": [HumanMessage("track A2")]}, config)

    RAN.clear()
    out = asyncio.run(run())
    ais = [m for m in out["messages"] if isinstance(m, AIMessage)]
    assert len(ais) == 4 and len(out["messages"]) == 8
    # One tool run per request (the voted winner; rarely a wrong one at k=3).
    assert sum(RAN.values()) == 2
    assert sorted(name.split(":")[1] for name in RAN) in (
        ["A1", "A2"],
        ["A10", "A2"],
        ["A1", "A20"],
        ["A10", "A20"],
    )


def _stream_ids(chunks: list[Any]) -> list[str]:
    return [msg.id for msg, meta in chunks if isinstance(msg, AIMessage)]


def test_each_turn_streams_once_sync_and_async() -> None:
    agent = _agent(k=3)
    sync_chunks = list(
        agent.stream({"messages": [HumanMessage("cancel B7")]}, stream_mode="messages")
    )

    async def run() -> list[Any]:
        return [
            c
            async for c in agent.astream(
                {"messages": [HumanMessage("cancel B8")]}, stream_mode="messages"
            )
        ]

    for chunks in (sync_chunks, asyncio.run(run())):
        ids = _stream_ids(chunks)
        # Two model turns, each once (k=3 draws at least 3 samples per turn).
        assert len(ids) == 2 and len(set(ids)) == 2, ids
        first = next(m for m, _ in chunks if isinstance(m, AIMessage))
        assert first.tool_calls and "maker" in first.response_metadata


class _Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.chat: list[tuple[list[str], Any, Any]] = []
        self.chains: list[str] = []

    def on_chat_model_start(self, serialized: Any, messages: Any, **kw: Any) -> None:
        params = kw.get("invocation_params") or {}
        self.chat.append(
            (
                kw.get("tags") or [],
                params.get("temperature"),
                (kw.get("metadata") or {}).get("maker_sample_index"),
            )
        )

    def on_chain_start(self, serialized: Any, inputs: Any, **kw: Any) -> None:
        self.chains.append(kw.get("name") or "")


def test_samples_are_nostream_child_runs_with_the_temperature_schedule() -> None:
    recorder = _Recorder()
    _agent(k=2, name="support").invoke(
        {"messages": [HumanMessage("track C1")]}, {"callbacks": [recorder]}
    )
    assert recorder.chat
    for tags, temperature, index in recorder.chat:
        assert "nostream" in tags
        assert temperature == (0.0 if index == 0 else 0.1)
    assert "support.sample[0]" in recorder.chains and "support.sample[1]" in recorder.chains


def test_models_rotation_uses_every_model() -> None:
    seen: Counter[str] = Counter()

    def named(tag: str) -> Any:
        def p(messages: list[Any]) -> Any:
            seen[tag] += 1
            return policy(messages)

        return SimulatedToolModel(policy=p, wrong_tool=0, wrong_argument=0)

    agent = create_agent(
        SimulatedToolModel(policy=policy),
        _tools(),
        middleware=[MakerMiddleware(k=2, models=[named("a"), named("b")])],
    )
    agent.invoke({"messages": [HumanMessage("refund Z1")]})
    assert seen["a"] >= 2 and seen["b"] >= 2


def test_tool_call_red_flags_are_redrawn_never_crash() -> None:
    model = SimulatedToolModel(
        policy=policy,
        wrong_tool=0,
        wrong_argument=0,
        unknown_tool=0.2,
        bad_args=0.2,
        malformed=0.2,
        seed=5,
    )
    agent = create_agent(model, _tools(), middleware=[MakerMiddleware(k=2)])
    flags: Counter[str] = Counter()
    for verb, order in _requests(15):
        RAN.clear()
        out = agent.invoke({"messages": [HumanMessage(f"{verb} {order}")]})
        first = next(m for m in out["messages"] if isinstance(m, AIMessage))
        assert first.tool_calls == [
            {
                "name": verb,
                "args": {"order_id": order},
                "id": first.tool_calls[0]["id"],
                "type": "tool_call",
            }
        ]
        assert not first.invalid_tool_calls
        assert sum(RAN.values()) == 1
        flags.update(first.response_metadata["maker"]["red_flags"])
    assert {"unknown_tool", "invalid_tool_args", "invalid_tool_call"} <= set(flags), flags


def test_tool_call_problem_reasons() -> None:
    tools = _tools()
    ok = AIMessage(
        content="", tool_calls=[{"name": "refund", "args": {"order_id": "A"}, "id": "1"}]
    )
    assert tool_call_problem(ok, tools) is None
    unknown = AIMessage(content="", tool_calls=[{"name": "nuke", "args": {}, "id": "1"}])
    assert tool_call_problem(unknown, tools)[0] == "unknown_tool"  # type: ignore[index]
    bad = AIMessage(content="", tool_calls=[{"name": "refund", "args": {"order": 1}, "id": "1"}])
    assert tool_call_problem(bad, tools)[0] == "invalid_tool_args"  # type: ignore[index]
    broken = AIMessage(
        content="",
        invalid_tool_calls=[
            {"name": "refund", "args": '{"order_id": ', "id": "1", "error": "bad JSON"}
        ],
    )
    assert tool_call_problem(broken, tools)[0] == "invalid_tool_call"  # type: ignore[index]
    # The key of the same action ignores call ids.
    again = AIMessage(
        content="", tool_calls=[{"name": "refund", "args": {"order_id": "A"}, "id": "zz"}]
    )
    assert tool_call_key(ok) == tool_call_key(again)


class Ticket(BaseModel):
    category: Literal["refund", "cancel", "track"]
    order_id: str


def test_response_format_votes_on_the_structured_response() -> None:
    def ticket_policy(messages: list[Any]) -> Any:
        verb, order = str(messages[-1].content).split()
        return {"name": "Ticket", "args": {"category": verb, "order_id": order}}

    model = SimulatedToolModel(
        policy=ticket_policy, wrong_tool=0, wrong_argument=0.15, bad_args=0.2, seed=2
    )
    agent = create_agent(
        model, [], response_format=ToolStrategy(Ticket), middleware=[MakerMiddleware(k=3)]
    )
    flags: Counter[str] = Counter()
    for verb, order in _requests(15):
        out = agent.invoke({"messages": [HumanMessage(f"{verb} {order}")]})
        assert out["structured_response"] == Ticket(category=verb, order_id=order)  # type: ignore[arg-type]
        ais = [m for m in out["messages"] if isinstance(m, AIMessage)]
        assert len(ais) == 1
        meta = ais[0].response_metadata["maker"]
        assert meta["winner_key"].startswith("structured:")
        flags.update(meta["red_flags"])
    # Arguments failing the schema made invalid structured responses: redrawn, never voted.
    assert flags["invalid_structured_response"] > 0


def _split_seed(tools: list[Any]) -> int:
    """A seed whose first four samples split 2-2 between refund and cancel (so any
    first three split 2-1 and no k=3 lead is possible in four)."""
    for seed in range(200):
        model = SimulatedToolModel(policy=policy, wrong_tool=0.5, wrong_argument=0, seed=seed)
        bound = model.bind_tools(tools)
        names = [
            bound.invoke(
                [HumanMessage("refund A1")], {"metadata": {"maker_sample_index": i}}
            ).tool_calls[0]["name"]
            for i in range(4)
        ]
        if sorted(names) == ["cancel", "cancel", "refund", "refund"]:
            return seed
    raise AssertionError("no seed splits the vote")


def test_escalation_interrupts_like_hitl_and_resumes() -> None:
    tools = _tools()[:2]  # refund, cancel: wrong_tool always picks the other one
    seed = _split_seed(tools)
    model = SimulatedToolModel(policy=policy, wrong_tool=0.5, wrong_argument=0, seed=seed)
    agent = create_agent(
        model,
        tools,
        checkpointer=InMemorySaver(),
        middleware=[MakerMiddleware(k=3, max_samples=4, on_no_consensus="escalate")],
    )
    config = {"configurable": {"thread_id": "esc"}}
    RAN.clear()
    out = agent.invoke({"messages": [HumanMessage("refund A1")]}, config)
    (pending,) = out["__interrupt__"]
    value = pending.value
    assert {"action_requests", "review_configs", "maker"} <= set(value)
    # 2-1 after the first round: the last sample could not make a 3-vote lead, so the
    # engine does not draw it.
    assert value["maker"]["samples_drawn"] == 3
    assert sorted(value["maker"]["tally"].values()) == [1, 2]
    assert len(value["maker"]["candidates"]) == 2
    assert value["review_configs"][0]["allowed_decisions"][:3] == ["approve", "edit", "reject"]
    assert not RAN  # nothing ran while undecided
    # A malformed resume is asked for again, saying why; the thread is not stuck on it.
    again = agent.invoke(Command(resume="banana"), config)
    refused = again["__interrupt__"][0].value["maker"]
    assert refused["refused"] == "banana" and "decisions" in refused["question"]
    assert not RAN
    decision = {"type": "edit", "edited_action": {"name": "refund", "args": {"order_id": "A1"}}}
    # The final turn after the tool also splits? It is a text answer: always agreed.
    out = agent.invoke(Command(resume={"decisions": [decision]}), config)
    assert RAN == Counter({"refund:A1": 1})
    ais = [m for m in out["messages"] if isinstance(m, AIMessage)]
    assert [c["name"] for c in ais[0].tool_calls] == ["refund"]
    assert ais[0].response_metadata["maker"]["decided_by"] == "escalation"
    assert len(ais) == 2


def test_no_consensus_raises_or_takes_the_best() -> None:
    tools = _tools()[:2]
    seed = _split_seed(tools)
    model = SimulatedToolModel(policy=policy, wrong_tool=0.5, wrong_argument=0, seed=seed)
    agent = create_agent(model, tools, middleware=[MakerMiddleware(k=3, max_samples=4)])
    with pytest.raises(NoConsensusError):
        agent.invoke({"messages": [HumanMessage("refund A1")]})
    best = create_agent(
        model, tools, middleware=[MakerMiddleware(k=3, max_samples=4, on_no_consensus="best")]
    )
    out = best.invoke({"messages": [HumanMessage("refund A1")]})
    first = next(m for m in out["messages"] if isinstance(m, AIMessage))
    assert first.response_metadata["maker"]["decided_by"] == "plurality"


def test_react_graph_maker_node_red_flags_unknown_tools() -> None:
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    from maker_graph import maker_node, valid_tool_calls

    tools = _tools()
    model = SimulatedToolModel(
        policy=policy, wrong_tool=0, wrong_argument=0, unknown_tool=0.3, bad_args=0.2, seed=8
    )
    graph = StateGraph(MessagesState)
    graph.add_node(
        "agent",
        maker_node(
            model.bind_tools(tools),
            k=2,
            input_keys=["messages"],
            output_key="messages",
            red_flags=[valid_tool_calls(tools)],
        ),
    )
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition, ["tools", END])
    graph.add_edge("tools", "agent")
    app = graph.compile()
    for verb, order in _requests(9):
        RAN.clear()
        out = app.invoke({"messages": [HumanMessage(f"{verb} {order}")]})
        ais = [m for m in out["messages"] if isinstance(m, AIMessage)]
        assert len(ais) == 2 and ais[0].tool_calls[0]["name"] == verb
        assert RAN == Counter({f"{verb}:{order}": 1})
