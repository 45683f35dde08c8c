"""LangGraph checkpoints in PostgreSQL through `maker_graph.checkpointers`: a crashed graph resumes
from another connection (as another process would) without redoing finished supersteps."""

from __future__ import annotations

import operator
import time
from typing import Annotated, Any, TypedDict

import pytest
from checkpoint_kill_child import check_resume_after_kill, kill_mid_write
from langgraph.graph import END, START, StateGraph

from maker_graph.checkpointers import open_async_checkpointer, open_checkpointer, store_kind
from maker_graph.graph import create_voting_graph

pytestmark = pytest.mark.postgres


class LoopState(TypedDict):
    i: int
    done: Annotated[list[int], operator.add]


class Boom(RuntimeError):
    pass


def loop_graph(n: int, calls: list[int], crash_at: set[int]) -> StateGraph[Any, Any, Any, Any]:
    def step(state: LoopState) -> dict[str, Any]:
        i = state["i"]
        calls.append(i)
        if i in crash_at:
            crash_at.discard(i)  # crash once, as a killed process would
            raise Boom(f"crashed at {i}")
        return {"i": i + 1, "done": [i]}

    builder: StateGraph[Any, Any, Any, Any] = StateGraph(LoopState)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: END if s["i"] >= n else "step")
    return builder


def test_store_kinds() -> None:
    assert store_kind("postgresql+psycopg://h/db") == "postgres"
    assert store_kind(None) == "memory"
    assert store_kind("sqlite:///x.db") == "sqlite"


def test_crashed_graph_resumes_from_postgres(postgres_url: str) -> None:
    calls: list[int] = []
    crash = {4}
    cfg = {"configurable": {"thread_id": "t1"}}
    with open_checkpointer(f"{postgres_url}?run_id=ignored") as saver:
        graph = loop_graph(8, calls, crash).compile(checkpointer=saver)
        with pytest.raises(Boom):
            graph.invoke({"i": 0, "done": []}, cfg, durability="sync")
    # A new connection, as a restarted process would open.
    with open_checkpointer(postgres_url) as saver:
        graph = loop_graph(8, calls, crash).compile(checkpointer=saver)
        out = graph.invoke(None, cfg, durability="sync")
    assert out["done"] == list(range(8))
    assert calls == [0, 1, 2, 3, 4, 4, 5, 6, 7]  # only the crashed superstep ran twice


def test_checkpoints_survive_a_killed_process_mid_write(postgres_url: str, tmp_path: Any) -> None:
    """SIGKILL lands while the server holds the child's checkpoint write in an open
    transaction (its blob and checkpoint upserts ran, no COMMIT): the committed
    checkpoints and node writes survive, the half-written one is rolled back, and the
    resumed graph runs each node exactly once across both processes."""
    import psycopg

    marks = kill_mid_write(postgres_url, tmp_path / "marks", n=8, stall=3)
    lines = [line for i in range(4) for line in (f"committed {i}", f"ran {i}")]
    assert marks[:-1] == lines
    word, step, in_tx, pid = marks[-1].split()
    assert (word, step, in_tx) == ("mid", "4", "True")
    with psycopg.connect(postgres_url, autocommit=True, connect_timeout=10) as conn:
        # The killed client's backend ends its transaction (a rollback) once it sees
        # the closed socket; wait for that, bounded, before reading.
        for _ in range(500):
            row = conn.execute(
                "SELECT state FROM pg_stat_activity WHERE pid = %s", (int(pid),)
            ).fetchone()
            if row is None:
                break
            time.sleep(0.02)
        assert row is None, f"the killed client's backend is still there ({row})"
    check_resume_after_kill(postgres_url)


async def test_voting_graph_on_async_postgres_saver(postgres_url: str) -> None:
    cfg = {"configurable": {"thread_id": "vote"}}
    async with open_async_checkpointer(postgres_url) as saver:
        graph = create_voting_graph(
            lambda q: q.upper(), k=2, input_keys="q", output_key="a"
        ).compile(checkpointer=saver)
        out = await graph.ainvoke({"q": "yes"}, cfg)
        assert out["a"] == "YES"
        state = await graph.aget_state(cfg)
        assert state.values["a"] == "YES"
    async with open_async_checkpointer(postgres_url) as saver:
        graph = create_voting_graph(
            lambda q: q.upper(), k=2, input_keys="q", output_key="a"
        ).compile(checkpointer=saver)
        assert (await graph.aget_state(cfg)).values["a"] == "YES"  # persisted


def test_decomposition_graph_resumes_with_log_and_checkpoints_in_postgres(
    postgres_url: str,
) -> None:
    """The provider goes down mid-run of the decomposition graph, whose run log and
    LangGraph checkpoints are both in PostgreSQL: the graph, resumed from new
    connections once the provider is back, ends solved with each step once."""
    from maker_graph.errors import SamplerError
    from maker_graph.graph import create_decomposition_graph
    from maker_graph.run import count_errors
    from maker_graph.runlog.postgres import PostgresRunLog
    from maker_graph.sampling import ProviderRetry
    from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
    from maker_graph.testing import ErrorModel, SimulatedProviderError
    from maker_graph.vote import VotePolicy

    task = HanoiTask(8)
    good = simulated_sampler(task, ErrorModel(error_rate=0.01, seed=2))

    class DownFromStep150:
        async def sample(self, step_input: Any, index: int) -> Any:
            if step_input.step >= 150:
                raise SimulatedProviderError("the provider is down")
            return await good.sample(step_input, index)

    policy = VotePolicy(k=3, retry=ProviderRetry(initial_delay=0.0001, max_attempts=2))
    url = f"{postgres_url}?run_id=decomposed"
    cfg = {"configurable": {"thread_id": "decomposed"}}
    with open_checkpointer(url) as saver:
        graph = create_decomposition_graph(
            task, DownFromStep150(), policy=policy, chunk=64, run_log=url
        ).compile(checkpointer=saver)
        with pytest.raises(SamplerError):
            graph.invoke({}, cfg, durability="sync")
    with PostgresRunLog(url, readonly=True) as log:
        assert log.last_step() == 149  # everything decided before the outage is committed
    with open_checkpointer(url) as saver:
        graph = create_decomposition_graph(
            task, good, policy=policy, chunk=64, run_log=url
        ).compile(checkpointer=saver)
        out = graph.invoke(None, cfg, durability="sync")
    assert out["done"] and out["step"] == 255
    with PostgresRunLog(url, readonly=True) as log:
        records = list(log.steps())
    assert [r.step for r in records] == list(range(255))
    assert count_errors(task, records) == 0
