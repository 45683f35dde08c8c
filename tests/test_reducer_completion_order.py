"""The voting sub-graph's result never depends on which sample branch finishes first.

`k_ahead_reducer` documents that LangGraph applies the branches' updates in `Send`
order. Each sample here answers by its index (so the votes are fixed) but sleeps a
seeded, per-permutation amount, so branches finish in a different order on every run.
Winner, the winning value (the first answer seen for the winning key, which a reducer
that joined in completion order would change), tally order, flags and the set of drawn
samples must all be identical.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from maker_graph.graph import create_voting_graph, maker_node

K = 3
CASES = [11, 12, 13, 14]  # seeds of the per-index answer tables (one step each)
DELAY_SEEDS = [1, 2, 3, "reversed"]  # "reversed": later indices finish first
MAX_DELAY = 0.03  # seconds; far above scheduling jitter, so the order is the delays'


def answer_of(case: int, index: int) -> str:
    """Sample `index`'s answer in step `case`: a vote key plus the index, or a red flag.

    The suffix makes every raw answer distinct while `vote_key` maps them to "a"/"b",
    so the value the step returns shows which sample of the winning key came first.
    """
    rng = random.Random(case * 100_003 + index)
    return f"{rng.choice(['a', 'a', 'a', 'b', 'b', 'BAD'])}-{index}"


def delay_of(delays: int | str, index: int) -> float:
    if delays == "reversed":
        return MAX_DELAY * max(0.0, 1 - index / 40)
    return random.Random(f"{delays}:{index}").uniform(0, MAX_DELAY)


def parse(raw: Any) -> str:
    text = str(raw)
    if text.startswith("BAD"):
        raise ValueError("red-flagged on purpose")
    return text


def vote_key(answer: str) -> str:
    return answer.split("-")[0]


class Delayed:
    """Async sampler: the answer fixed by index, the finishing time by `delays`."""

    def __init__(self, case: int, delays: int | str | None) -> None:
        self.case = case
        self.delays = delays
        self.finished: list[int] = []

    async def __call__(self, step_input: Any, index: int) -> str:
        if self.delays is not None:
            await asyncio.sleep(delay_of(self.delays, index))
        self.finished.append(index)
        return answer_of(self.case, index)


def comparable(stats: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in stats.items() if key != "wall_seconds"}


async def vote_once(case: int, delays: int | str | None) -> tuple[Any, list[int]]:
    sampler = Delayed(case, delays)
    graph = create_voting_graph(
        sampler,
        k=K,
        parser=parse,
        key=vote_key,
        on_no_consensus="plurality",
        stats_key="maker_stats",
    ).compile()
    out = await asyncio.wait_for(graph.ainvoke({"step_input": f"step {case}"}), timeout=30)
    return (out["answer"], comparable(out["maker_stats"])), sampler.finished


@pytest.mark.parametrize("case", CASES)
async def test_voting_graph_result_ignores_completion_order(case: int) -> None:
    reference, in_order = await vote_once(case, None)
    answer, stats = reference
    assert stats["decided_by"] == "vote"
    assert answer == stats["winner"] and stats["k"] == K
    finish_orders = set()
    for delays in DELAY_SEEDS:
        result, finished = await vote_once(case, delays)
        assert result == reference, f"delays {delays!r}: {result} != {reference}"
        assert sorted(finished) == sorted(in_order)  # the same samples were drawn
        finish_orders.add(tuple(finished))
    # The check is only worth something if the branches really finished in other orders.
    assert len(finish_orders) >= 3
    assert any(list(order) != sorted(order) for order in finish_orders)


def test_cases_exercise_red_flags_and_several_rounds() -> None:
    """Guards the fixture: the answer tables are not trivially one-round unanimous."""
    results = [asyncio.run(vote_once(case, None))[0][1] for case in CASES]
    assert any(stats["red_flags"] for stats in results)
    assert any(stats["rounds"] >= 3 for stats in results)
    assert any(len(stats["tally"]) == 2 for stats in results)


class Ticket(TypedDict, total=False):
    question: str
    label: str
    stats: dict[str, Any]


async def durable_once(case: int, delays: int | str | None) -> tuple[Any, list[int]]:
    sampler = Delayed(case, delays)

    async def step(inputs: dict[str, Any], index: int) -> str:
        return await sampler(inputs["question"], index)

    node = maker_node(
        step,
        k=K,
        parser=parse,
        key=vote_key,
        on_no_consensus="plurality",
        input_keys=["question"],
        output_key="label",
        stats_key="stats",
        durable=True,
    )
    builder = StateGraph(Ticket)
    builder.add_node("classify", node)
    builder.add_edge(START, "classify")
    builder.add_edge("classify", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": f"order-{case}-{delays}"}}
    out = await asyncio.wait_for(graph.ainvoke({"question": f"step {case}"}, config), 30)
    return (out["label"], comparable(out["stats"])), sampler.finished


@pytest.mark.parametrize("case", CASES[:2])
async def test_durable_maker_node_result_ignores_completion_order(case: int) -> None:
    reference, in_order = await durable_once(case, None)
    # The durable node runs the same sub-graph: same result as the bare graph.
    assert reference[0] == (await vote_once(case, None))[0][0]
    finish_orders = set()
    for delays in DELAY_SEEDS:
        result, finished = await durable_once(case, delays)
        assert result == reference, f"delays {delays!r}: {result} != {reference}"
        assert sorted(finished) == sorted(in_order)
        finish_orders.add(tuple(finished))
    assert len(finish_orders) >= 3
