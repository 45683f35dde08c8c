"""`add_maker_step`: edges from the step's nodes, and LangGraph's own node options.

A LangGraph node's edges fire every time it runs; the step's dispatch node (named
after the step) runs before its samples and its tally once per round, so an edge
from either would leave before the winner exists. The step refuses to start with
one and names the fix (`then=`). Edges into the step's name start the vote.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, TypedDict

import pytest
from langgraph.cache.memory import InMemoryCache
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_config
from langgraph.graph import END, START, StateGraph
from langgraph.types import CachePolicy
from langgraph.types import RetryPolicy as GraphRetryPolicy

from maker_graph.errors import ConfigurationError, SamplerError
from maker_graph.graph import add_maker_step
from maker_graph.sampling import ProviderRetry as SampleRetry

FAST = SampleRetry(max_attempts=1, initial_delay=0.001, jitter=0.0)


class Ticket(TypedDict, total=False):
    ticket: str
    label: str
    routed: str


async def run(graph: Any, inputs: Any, config: Any = None, *, use_async: bool) -> Any:
    if use_async:
        return await graph.ainvoke(inputs, config)
    return await asyncio.to_thread(graph.invoke, inputs, config)


def cfg(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


class Counting:
    """A step answering "bug", counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, inputs: dict[str, Any]) -> str:
        self.calls += 1
        return "bug"


# --------------------------------------------------------------------------- edges


@pytest.mark.parametrize("use_async", [False, True])
async def test_an_edge_from_the_step_name_is_refused_before_anything_runs(use_async: bool) -> None:
    step = Counting()
    reached: list[dict[str, Any]] = []
    builder = StateGraph(Ticket)
    add_maker_step(builder, "classify", step, input_keys=["ticket"], output_key="label")
    builder.add_node("route", lambda s: reached.append(dict(s)) or {"routed": "x"})
    builder.add_edge(START, "classify")
    builder.add_edge("classify", "route")
    graph = builder.compile()
    with pytest.raises(ConfigurationError, match=r"from 'classify' to \['route'\]") as err:
        await run(graph, {"ticket": "t"}, use_async=use_async)
    assert "then=" in str(err.value)
    # Refused at dispatch: no sample was drawn and the early node never ran.
    assert step.calls == 0 and reached == []


@pytest.mark.parametrize("use_async", [False, True])
async def test_a_conditional_edge_from_the_step_name_is_refused(use_async: bool) -> None:
    step = Counting()
    routed: list[Any] = []

    def route(state: dict[str, Any]) -> str:
        routed.append(state.get("label"))
        return "done"

    builder = StateGraph(Ticket)
    add_maker_step(builder, "classify", step, input_keys=["ticket"], output_key="label")
    builder.add_node("done", lambda s: {"routed": s["label"]})
    builder.add_edge(START, "classify")
    builder.add_conditional_edges("classify", route, ["done"])
    graph = builder.compile()
    with pytest.raises(ConfigurationError, match=r"from 'classify' to \['route\(\)'\]"):
        await run(graph, {"ticket": "t"}, use_async=use_async)
    assert step.calls == 0 and routed == []  # the bare KeyError of old came from here


@pytest.mark.parametrize("use_async", [False, True])
async def test_an_edge_from_the_tally_node_is_refused_too(use_async: bool) -> None:
    builder = StateGraph(Ticket)
    nodes = add_maker_step(
        builder, "classify", Counting(), input_keys=["ticket"], output_key="label"
    )
    builder.add_node("after", lambda s: {})
    builder.add_edge(START, "classify")
    builder.add_edge(nodes.tally, "after")
    with pytest.raises(ConfigurationError, match="from 'classify_tally'"):
        await run(builder.compile(), {"ticket": "t"}, use_async=use_async)


@pytest.mark.parametrize("use_async", [False, True])
async def test_routing_after_the_vote_goes_on_the_then_node(use_async: bool) -> None:
    """The fix the error names: edges into the name start the vote, `then` follows it."""
    step = Counting()
    seen: list[str] = []

    def route(state: dict[str, Any]) -> str:
        seen.append(state["label"])  # the winner is in the state by now
        return "bugs" if state["label"] == "bug" else END

    builder = StateGraph(Ticket)
    add_maker_step(
        builder, "classify", step, k=2, input_keys=["ticket"], output_key="label", then="route"
    )
    builder.add_node("route", lambda s: {})
    builder.add_node("bugs", lambda s: {"routed": f"queue:{s['label']}"})
    builder.add_edge(START, "classify")
    builder.add_conditional_edges("route", route, ["bugs", END])
    builder.add_edge("bugs", END)
    out = await run(builder.compile(), {"ticket": "t"}, use_async=use_async)
    assert out["routed"] == "queue:bug" and seen == ["bug"] and step.calls == 2


@pytest.mark.parametrize("use_async", [False, True])
async def test_escalation_edge_to_then_is_the_steps_own(use_async: bool) -> None:
    # `add_maker_step` itself adds escalate -> then; that edge is not refused.
    def split(inputs: dict[str, Any], index: int) -> str:
        return ["bug", "billing"][index % 2]  # never two ahead within 2 samples

    builder = StateGraph(Ticket)
    add_maker_step(
        builder,
        "classify",
        split,
        k=2,
        max_samples=2,
        input_keys=["ticket"],
        output_key="label",
        on_no_consensus="escalate",
        escalate=lambda result: "other",
        then="done",
    )
    builder.add_node("done", lambda s: {"routed": s["label"]})
    builder.add_edge(START, "classify")
    out = await run(builder.compile(), {"ticket": "t"}, use_async=use_async)
    assert out["routed"] == "other"  # decided by the escalation handler, then `done`


# --------------------------------------------------------------------------- node options


def test_node_options_land_on_the_nodes_where_they_mean_something() -> None:
    builder = StateGraph(Ticket)
    policy = GraphRetryPolicy(max_attempts=4)
    cache = CachePolicy(ttl=60)
    nodes = add_maker_step(
        builder,
        "classify",
        lambda s: "bug",
        input_keys=["ticket"],
        output_key="label",
        on_no_consensus="escalate",
        retry_policy=policy,
        cache_policy=cache,
        metadata={"team": "support"},
    )
    sample = builder.nodes[nodes.sample]
    assert sample.retry_policy == policy and sample.cache_policy is cache
    assert nodes.escalate is not None
    for other in (nodes.entry, nodes.tally, nodes.escalate):
        assert builder.nodes[other].retry_policy is None
        assert builder.nodes[other].cache_policy is None
    for node in (nodes.entry, nodes.sample, nodes.tally, nodes.escalate):
        assert (builder.nodes[node].metadata or {}).get("team") == "support"


@pytest.mark.parametrize("wrong", [SampleRetry(max_attempts=2), [SampleRetry(max_attempts=2)]])
def test_retry_policy_must_be_langgraphs(wrong: Any) -> None:
    with pytest.raises(ConfigurationError, match="langgraph.types.RetryPolicy"):
        add_maker_step(
            StateGraph(Ticket), "classify", lambda s: "bug", output_key="label", retry_policy=wrong
        )


@pytest.mark.parametrize("use_async", [False, True])
async def test_retry_policy_reruns_a_failed_sample_task(use_async: bool) -> None:
    calls: list[int] = []
    broken = {"left": 2}  # index 1 fails twice: its own try and the guard edge's retry

    def step(inputs: dict[str, Any], index: int) -> str:
        calls.append(index)
        if index == 1 and broken["left"] > 0:
            broken["left"] -= 1
            raise ConnectionError("down")
        return "bug"

    def graph(retry_policy: Any) -> Any:
        builder = StateGraph(Ticket)
        add_maker_step(
            builder,
            "classify",
            step,
            k=2,
            input_keys=["ticket"],
            output_key="label",
            retry=FAST,
            retry_policy=retry_policy,
        )
        builder.add_edge(START, "classify")
        return builder.compile()

    with pytest.raises(SamplerError):  # without it, the sample's second failure ends the run
        await run(graph(None), {"ticket": "t"}, use_async=use_async)
    broken["left"] = 2
    calls.clear()
    policy = GraphRetryPolicy(
        max_attempts=2, initial_interval=0.001, jitter=False, retry_on=SamplerError
    )
    out = await run(graph(policy), {"ticket": "t"}, use_async=use_async)
    assert out["label"] == "bug"
    # index 1: tried, retried through the guard edge, then once more by LangGraph.
    assert Counter(calls) == {0: 1, 1: 3}


@pytest.mark.parametrize("use_async", [False, True])
async def test_cache_policy_reuses_samples_of_the_same_input(use_async: bool) -> None:
    def graph(cache_policy: Any, step: Counting) -> Any:
        builder = StateGraph(Ticket)
        add_maker_step(
            builder,
            "classify",
            step,
            k=3,
            input_keys=["ticket"],
            output_key="label",
            cache_policy=cache_policy,
        )
        builder.add_edge(START, "classify")
        return builder.compile(cache=InMemoryCache(), checkpointer=InMemorySaver())

    cached_step, plain_step = Counting(), Counting()
    cached, plain = graph(CachePolicy(), cached_step), graph(None, plain_step)
    for thread in ("a", "b"):
        assert (await run(cached, {"ticket": "t"}, cfg(thread), use_async=use_async))[
            "label"
        ] == "bug"
        assert (await run(plain, {"ticket": "t"}, cfg(thread), use_async=use_async))[
            "label"
        ] == "bug"
    assert cached_step.calls == 3  # the second thread's samples came from the cache
    assert plain_step.calls == 6
    # Another input is drawn afresh.
    await run(cached, {"ticket": "other"}, cfg("c"), use_async=use_async)
    assert cached_step.calls == 6


@pytest.mark.parametrize("use_async", [False, True])
async def test_metadata_reaches_the_sample_run(use_async: bool) -> None:
    seen: list[Any] = []

    def step(inputs: dict[str, Any]) -> str:
        seen.append(get_config().get("metadata", {}).get("team"))
        return "bug"

    builder = StateGraph(Ticket)
    add_maker_step(
        builder,
        "classify",
        step,
        k=2,
        input_keys=["ticket"],
        output_key="label",
        metadata={"team": "support"},
    )
    builder.add_edge(START, "classify")
    await run(builder.compile(), {"ticket": "t"}, use_async=use_async)
    assert seen == ["support", "support"]
