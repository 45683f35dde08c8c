"""A round's samples are in flight together, up to the step's `max_concurrency`.

The sync middleware path runs each sample's model call in a worker thread. It used
the event loop's default executor, whose `cpu_count + 4` threads (6 on a 2-core
machine) capped how many samples of a round were in flight, and whose threads a
hung, timed-out call kept: enough hung calls starved every later sample. A sync
`maker_node(durable=True)` had the same cap from LangGraph's executor. And the
voting sub-graph surfaces accepted `max_concurrency` and ignored it.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any, TypedDict

import pytest
from langchain.agents import create_agent
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.graph import END, START, StateGraph

from maker_graph import (
    MakerMiddleware,
    ProviderRetry,
    add_maker_step,
    create_voting_graph,
    maker_node,
)

ROUND = 10  # more samples than the default executor has threads on up to 6 cores
NO_RETRY = ProviderRetry(max_attempts=1, retry_on=())  # a broken barrier fails the step


def _all_at_once() -> tuple[threading.Barrier, Any]:
    """A barrier of ROUND calls (at most 10 s) and a sample function waiting on it.

    Every call waits until ROUND calls wait together: with fewer in flight at once
    the barrier breaks and the calls fail.
    """
    barrier = threading.Barrier(ROUND, timeout=10)

    def sample(question: str) -> str:
        barrier.wait()
        return "42"

    return barrier, sample


class _SyncOnlyModel(BaseChatModel):
    """A sync-only chat model (no `_agenerate`), answering "42" once `gate` lets it."""

    gate: Any

    @property
    def _llm_type(self) -> str:
        return "sync-only"

    def bind_tools(self, tools: Any, **kwargs: Any) -> _SyncOnlyModel:
        return self

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        self.gate()
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="42"))])


def test_a_rounds_samples_are_all_in_flight_at_once() -> None:
    barrier, _ = _all_at_once()
    model = _SyncOnlyModel(gate=barrier.wait)
    agent = create_agent(model, tools=[], middleware=[MakerMiddleware(k=ROUND, retry=NO_RETRY)])

    out = agent.invoke({"messages": [("user", "6 * 7?")]})

    assert out["messages"][-1].content == "42"
    assert not barrier.broken


def test_hung_calls_do_not_starve_later_samples() -> None:
    # As many calls hang (until the test ends, at most 30 s) as the default executor
    # has threads; each times out after 0.3 s, and its retry must still find a thread.
    hung = min(32, (os.cpu_count() or 1) + 4)
    release = threading.Event()
    calls = 0
    lock = threading.Lock()

    def gate() -> None:
        nonlocal calls
        with lock:
            calls += 1
            hang = calls <= hung
        if hang:
            release.wait(30)

    # 3 samples share the hung calls: each needs at most hung // 3 + 1 attempts.
    retry = ProviderRetry(max_attempts=hung // 3 + 2, timeout=0.3, initial_delay=0.01)
    agent = create_agent(
        _SyncOnlyModel(gate=gate), tools=[], middleware=[MakerMiddleware(k=3, retry=retry)]
    )
    try:
        out = agent.invoke({"messages": [("user", "6 * 7?")]})
    finally:
        release.set()

    assert out["messages"][-1].content == "42"
    assert calls > hung


class _State(TypedDict):
    question: str
    answer: str


def _maker_node_graph(step: Any, **options: Any) -> Any:
    builder = StateGraph(_State)
    builder.add_node(
        "step", maker_node(step, input_keys="question", output_key="answer", **options)
    )
    builder.add_edge(START, "step")
    builder.add_edge("step", END)
    return builder.compile()


def _maker_step_graph(step: Any, **options: Any) -> Any:
    builder = StateGraph(_State)
    add_maker_step(
        builder, "step", step, input_keys="question", output_key="answer", then=END, **options
    )
    builder.add_edge(START, "step")
    return builder.compile()


def _voting_graph(step: Any, **options: Any) -> Any:
    return create_voting_graph(
        step, input_keys="question", output_key="answer", **options
    ).compile()


SURFACES = {
    "maker_node": _maker_node_graph,
    "maker_node(durable=True)": lambda step, **o: _maker_node_graph(step, durable=True, **o),
    "add_maker_step": _maker_step_graph,
    "create_voting_graph": _voting_graph,
}


class _InFlight:
    """A sample function (sync or async) recording the most calls in flight at once."""

    def __init__(self, seconds: float = 0.1) -> None:
        self.seconds = seconds
        self.now = self.peak = self.calls = 0
        self._lock = threading.Lock()

    def _enter(self) -> None:
        with self._lock:
            self.now += 1
            self.calls += 1
            self.peak = max(self.peak, self.now)

    def _leave(self) -> None:
        with self._lock:
            self.now -= 1

    async def asample(self, question: str) -> str:
        self._enter()
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self._leave()
        return "42"


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_max_concurrency_caps_the_samples_in_flight(surface: str, mode: str) -> None:
    # k=6 with max_concurrency=2: six agreeing samples, never more than two at once.
    # add_maker_step and create_voting_graph accepted the option and ran all six.
    step = _InFlight()
    graph = SURFACES[surface](step.asample, k=6, max_concurrency=2)
    if mode == "invoke":
        out = graph.invoke({"question": "6 * 7?"})
    else:
        out = asyncio.run(graph.ainvoke({"question": "6 * 7?"}))
    assert out["answer"] == "42"
    assert step.calls == 6
    assert step.peak == 2


def test_a_sync_durable_maker_node_runs_a_whole_round_at_once() -> None:
    # LangGraph runs a sync sub-graph's parallel tasks on cpu_count + 4 threads unless
    # the run config's max_concurrency says more; the node gives its sub-graph room
    # for a round.
    barrier, sample = _all_at_once()
    graph = _maker_node_graph(sample, k=ROUND, durable=True, retry=NO_RETRY)
    assert graph.invoke({"question": "6 * 7?"})["answer"] == "42"
    assert not barrier.broken


def test_a_sync_maker_step_runs_a_whole_round_given_the_run_configs_room() -> None:
    # add_maker_step's samples are the parent graph's own tasks: a sync run gives them
    # the threads its config's max_concurrency allows (docs/wrapping.md says so).
    barrier, sample = _all_at_once()
    graph = _maker_step_graph(sample, k=ROUND, retry=NO_RETRY)
    out = graph.invoke({"question": "6 * 7?"}, {"max_concurrency": 2 * ROUND})
    assert out["answer"] == "42"
    assert not barrier.broken
