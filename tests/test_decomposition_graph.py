"""Decomposition graphs: chunked and one-step-per-superstep MAD loops, resume from a
checkpointer and from the run log, streamed progress, escalation, hybrid pipelines."""

from __future__ import annotations

import asyncio
import pickle
from typing import Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from maker_graph.errors import ConfigurationError, NoConsensusError
from maker_graph.graph import create_decomposition_graph, decomposition_node
from maker_graph.records import RawSample
from maker_graph.run import count_errors
from maker_graph.runlog import open_run_log
from maker_graph.sampling import ProviderRetry
from maker_graph.tasks.hanoi import HanoiStep, HanoiTask, format_answer, simulated_sampler
from maker_graph.testing import ErrorModel
from maker_graph.vote import VotePolicy

NOISY = ErrorModel(error_rate=0.1, malformed_rate=0.05, seed=7)


def goal(n: int) -> list[list[int]]:
    return [[], [], list(range(n, 0, -1))]


def cfg(thread: str, limit: int = 10_000) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}, "recursion_limit": limit}


async def run(graph: Any, inputs: Any, config: Any = None, *, use_async: bool) -> Any:
    if use_async:
        return await graph.ainvoke(inputs, config)
    return await asyncio.to_thread(graph.invoke, inputs, config)


class Outage:
    """Wraps a sampler; raises a non-retried error from step `fail_at` while `broken`."""

    def __init__(self, inner: Any, fail_at: int) -> None:
        self.inner = inner
        self.fail_at = fail_at
        self.broken = True
        self.steps_seen: list[int] = []

    async def sample(self, step_input: HanoiStep, index: int) -> RawSample:
        if index == 0:
            self.steps_seen.append(step_input.step)
        if self.broken and step_input.step == self.fail_at:
            raise KeyError("provider bug")  # outside ProviderRetry.retry_on below
        return await self.inner.sample(step_input, index)


NO_RETRY = VotePolicy(k=3, retry=ProviderRetry(max_attempts=1, retry_on=(ConnectionError,)))


# --------------------------------------------------------------------------- chunked


@pytest.mark.parametrize("use_async", [False, True])
async def test_chunked_graph_solves_hanoi(use_async: bool) -> None:
    task = HanoiTask(6)
    graph = create_decomposition_graph(task, simulated_sampler(task, NOISY), chunk=20).compile()
    out = await run(graph, {}, use_async=use_async)
    assert out["step"] == 63 and out["done"] and out["state"] == goal(6)
    assert out["totals"]["samples"] >= 3 * 63
    assert out["totals"]["red_flags"].get("parse_error", 0) > 0


def test_drawing_shows_the_chunk_loop() -> None:
    task = HanoiTask(2)
    drawn = create_decomposition_graph(task, simulated_sampler(task)).compile()
    mermaid = drawn.get_graph().draw_mermaid()
    assert "chunk -. &nbsp;next&nbsp; .-> chunk" in mermaid
    assert "chunk -. &nbsp;done&nbsp; .-> __end__" in mermaid


async def test_progress_is_streamed_per_chunk() -> None:
    task = HanoiTask(5)
    graph = create_decomposition_graph(task, simulated_sampler(task), chunk=10).compile()
    chunks = [
        e async for e in graph.astream({}, stream_mode="custom") if e["event"] == "maker.chunk"
    ]
    assert [e["steps_done"] for e in chunks] == [10, 20, 30, 31]
    assert [e["done"] for e in chunks] == [False, False, False, True]


@pytest.mark.parametrize("use_async", [False, True])
async def test_resume_from_a_checkpointer_keeps_finished_chunks(use_async: bool) -> None:
    task = HanoiTask(5)
    sampler = Outage(simulated_sampler(task, NOISY), fail_at=17)
    graph = create_decomposition_graph(task, sampler, chunk=5, policy=NO_RETRY).compile(
        checkpointer=InMemorySaver()
    )
    config = cfg(f"cp-{use_async}")
    with pytest.raises(KeyError):
        await run(graph, {}, config, use_async=use_async)
    assert graph.get_state(config).values["step"] == 15  # three chunks committed
    sampler.broken = False
    out = await run(graph, None, config, use_async=use_async)
    assert out["step"] == 31 and out["state"] == goal(5)
    # Steps 0..14 ran once; the failed chunk (15..19) was redone from its start.
    assert sampler.steps_seen.count(3) == 1 and sampler.steps_seen.count(16) == 2


async def test_resume_from_the_run_log(tmp_path: Any) -> None:
    task = HanoiTask(5)
    sampler = Outage(simulated_sampler(task, NOISY), fail_at=23)
    graph = create_decomposition_graph(
        task, sampler, chunk=10, run_log=str(tmp_path), policy=NO_RETRY
    ).compile()
    with pytest.raises(KeyError):
        await graph.ainvoke({})
    # run_task commits everything decided before the error: steps 0..22.
    with open_run_log(str(tmp_path), readonly=True) as log:
        assert log.checkpoint().next_step == 23
    sampler.broken = False
    fresh = create_decomposition_graph(
        task, sampler, chunk=10, run_log=str(tmp_path), policy=NO_RETRY
    ).compile()
    out = await fresh.ainvoke({})
    assert out["step"] == 31 and out["done"]
    with open_run_log(str(tmp_path), readonly=True) as log:
        records = list(log.steps())
    assert len(records) == 31 and count_errors(task, records) == 0
    assert sampler.steps_seen.count(5) == 1  # no committed step ran twice


async def test_state_stays_small_over_many_chunks() -> None:
    task = HanoiTask(7)
    graph = create_decomposition_graph(task, simulated_sampler(task), chunk=4).compile(
        checkpointer=InMemorySaver()
    )
    config = cfg("small")
    await graph.ainvoke({}, config)
    sizes = [len(pickle.dumps(s.values)) for s in graph.get_state_history(config)]
    assert len(sizes) > 30 and max(sizes) < 2500


async def test_run_budget_stops_cleanly() -> None:
    from maker_graph.errors import BudgetExhaustedError

    task = HanoiTask(6)
    graph = create_decomposition_graph(
        task, simulated_sampler(task), chunk=10, max_total_samples=40
    ).compile()
    with pytest.raises(BudgetExhaustedError):
        await graph.ainvoke({})


def test_bad_configurations() -> None:
    task = HanoiTask(3)
    sampler = simulated_sampler(task)
    with pytest.raises(ConfigurationError, match="chunk"):
        create_decomposition_graph(task, sampler, chunk=0)
    with pytest.raises(ConfigurationError, match="run log"):
        create_decomposition_graph(task, sampler, chunk=1, run_log="/tmp/x")
    with pytest.raises(ConfigurationError, match="budgets"):
        create_decomposition_graph(task, sampler, chunk=1, max_total_samples=5)


# --------------------------------------------------------------------------- chunk = 1


@pytest.mark.parametrize("use_async", [False, True])
async def test_one_step_per_superstep_through_the_voting_nodes(use_async: bool) -> None:
    task = HanoiTask(4)
    graph = create_decomposition_graph(task, simulated_sampler(task, NOISY), chunk=1).compile()
    drawn = graph.get_graph().draw_mermaid()
    assert "sample -. &nbsp;red_flag&nbsp; .-> sample" in drawn
    assert "tally -. &nbsp;decided&nbsp; .-> advance" in drawn
    out = await run(graph, {}, cfg("one"), use_async=use_async)
    assert out["step"] == 15 and out["done"] and out["state"] == goal(4)
    assert out["totals"]["samples"] >= 45


async def test_one_step_streams_voting_events_and_resumes() -> None:
    task = HanoiTask(3)
    sampler = Outage(simulated_sampler(task, NOISY), fail_at=4)
    graph = create_decomposition_graph(task, sampler, chunk=1, policy=NO_RETRY).compile(
        checkpointer=InMemorySaver()
    )
    config = cfg("one-resume")
    events: list[dict[str, Any]] = []
    with pytest.raises(Exception, match="provider bug"):
        async for event in graph.astream({}, config, stream_mode="custom"):
            events.append(event)
    decided = [e for e in events if e["event"] == "maker.decided"]
    assert len(decided) == 4 and graph.get_state(config).values["step"] == 4
    sampler.broken = False
    out = await graph.ainvoke(None, config)
    assert out["step"] == 7 and out["state"] == goal(3)
    assert sampler.steps_seen.count(2) == 1


async def test_one_step_escalation_interrupts() -> None:
    task = HanoiTask(2)
    start = task.initial_state()
    right = task.true_step(start, None)

    async def split(step_input: HanoiStep, index: int) -> str:
        # Two answers that both parse, alternating: no consensus within 4 samples.
        if index % 2:
            return format_answer((1, 0, 2), ((2,), (), (1,)))
        return format_answer(right.action, right.next_state)

    graph = create_decomposition_graph(
        task,
        split,
        chunk=1,
        policy=VotePolicy(k=2, max_samples=4, on_no_consensus="escalate"),
    ).compile(checkpointer=InMemorySaver())
    paused = await graph.ainvoke({}, cfg("esc"))
    (request,) = paused["__interrupt__"]
    assert request.value["event"] == "maker.escalation"
    resumed = await graph.ainvoke(
        Command(
            resume={"action": list(right.action), "next_state": [list(p) for p in right.next_state]}
        ),
        cfg("esc"),
    )
    assert "__interrupt__" in resumed and resumed["step"] == 1  # the next step splits too


async def test_no_consensus_raises_in_chunked_mode() -> None:
    task = HanoiTask(2)

    async def garbage(step_input: HanoiStep, index: int) -> str:
        return f"move = [{index % 3 + 1}, 0, 1]\nnext_state = [[2], [1], []]"

    graph = create_decomposition_graph(
        task, garbage, chunk=10, policy=VotePolicy(k=3, max_samples=6)
    ).compile()
    with pytest.raises(NoConsensusError):
        await graph.ainvoke({})


# --------------------------------------------------------------------------- hybrid


class Pipeline(TypedDict, total=False):
    request: str
    disks: int
    route: str
    answer: Any
    stats: dict[str, Any]


@pytest.mark.parametrize("use_async", [False, True])
async def test_router_hands_a_subtask_to_a_decomposition_node(use_async: bool) -> None:
    def router(state: Pipeline) -> dict[str, Any]:
        words = state["request"].split()
        return {
            "route": "decompose" if "tower" in words else "direct",
            "disks": int(words[-1]) if words[-1].isdigit() else 0,
        }

    solve = decomposition_node(
        lambda inputs: HanoiTask(inputs["disks"]),
        make_sampler=simulated_sampler,
        input_keys=["disks"],
        answer=lambda task, final: len(final[2]) == task.n,
        stats_key="stats",
        chunk=50,
    )
    builder = StateGraph(Pipeline)
    builder.add_node("router", router)
    builder.add_node("decompose", solve)
    builder.add_node("direct", lambda s: {"answer": "no decomposition needed"})
    builder.add_edge(START, "router")
    builder.add_conditional_edges("router", lambda s: s["route"], ["decompose", "direct"])
    builder.add_edge("decompose", END)
    builder.add_edge("direct", END)
    graph = builder.compile()
    out = await run(graph, {"request": "move the tower of 6"}, use_async=use_async)
    assert out["answer"] is True and out["stats"]["steps"] == 63
    plain = await run(graph, {"request": "say hello"}, use_async=use_async)
    assert plain["answer"] == "no decomposition needed"
    if use_async:
        events = [
            (ns, e)
            async for ns, e in graph.astream(
                {"request": "move the tower of 4"}, stream_mode="custom", subgraphs=True
            )
        ]
        assert any(e["event"] == "maker.chunk" and ns for ns, e in events)


def test_decomposition_node_needs_one_sampler() -> None:
    with pytest.raises(ConfigurationError, match="exactly one"):
        decomposition_node(lambda s: HanoiTask(3))


@pytest.mark.parametrize("with_log", [False, True])
async def test_chunked_escalation_interrupts_and_resumes(tmp_path: Any, with_log: bool) -> None:
    task = HanoiTask(3)
    honest = simulated_sampler(task, ErrorModel(error_rate=0.0))
    right = task.true_step(task.initial_state(), None)

    async def split_first(step_input: HanoiStep, index: int) -> Any:
        if step_input.step == 0 and index % 2:
            return format_answer((1, 0, 1), ((3, 2), (1,), ()))
        return await honest.sample(step_input, index)

    graph = create_decomposition_graph(
        task,
        split_first,
        chunk=4,
        run_log=str(tmp_path) if with_log else None,
        policy=VotePolicy(k=2, max_samples=4, on_no_consensus="escalate"),
    ).compile(checkpointer=InMemorySaver())
    paused = await graph.ainvoke({}, cfg("chunk-esc"))
    (request,) = paused["__interrupt__"]
    assert request.value["tally"][0][1] == 2 and request.value["step_input"] == 0
    out = await graph.ainvoke(Command(resume=right), cfg("chunk-esc"))
    assert out["step"] == 7 and out["state"] == goal(3)


@pytest.mark.parametrize("chunk", [1, 4])
async def test_a_run_that_reaches_its_step_count_unfinished_ends(chunk: int) -> None:
    """A wrong move voted in: the task never finishes; the loop must end, not spin."""
    task = HanoiTask(3)
    honest = simulated_sampler(task, ErrorModel(error_rate=0.0))

    async def wrong_first(step_input: HanoiStep, index: int) -> Any:
        if step_input.step == 0:  # every sample agrees on a legal but wrong first move
            return format_answer((1, 0, 1), ((3, 2), (1,), ()))
        return await honest.sample(step_input, index)

    graph = create_decomposition_graph(task, wrong_first, chunk=chunk).compile()
    out = await graph.ainvoke({}, {"recursion_limit": 200})
    assert out["step"] == 7 and not out["done"] and out["stopped"] == "incomplete"
