"""`maker_graph.checkpointers`: one string opens a memory, SQLite or PostgreSQL checkpointer."""
# The kill test's child and driver: tests/checkpoint_kill_child.py.

from __future__ import annotations

import operator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from checkpoint_kill_child import check_resume_after_kill, kill_mid_write
from langgraph.graph import END, START, StateGraph

from maker_graph.checkpointers import (
    CHECKPOINT_DB_NAME,
    open_async_checkpointer,
    open_checkpointer,
    store_kind,
)
from maker_graph.errors import ConfigurationError


class S(TypedDict):
    i: int
    seen: Annotated[list[int], operator.add]


def counting_graph(n: int, calls: list[int], crash_at: set[int]) -> StateGraph[Any, Any, Any, Any]:
    def step(state: S) -> dict[str, Any]:
        calls.append(state["i"])
        if state["i"] in crash_at:
            crash_at.discard(state["i"])
            raise RuntimeError("crash")
        return {"i": state["i"] + 1, "seen": [state["i"]]}

    builder: StateGraph[Any, Any, Any, Any] = StateGraph(S)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: END if s["i"] >= n else "step")
    return builder


def test_kinds() -> None:
    assert [store_kind(x) for x in (None, "memory", "runs/a", "sqlite:///a.db")] == [
        "memory",
        "memory",
        "sqlite",
        "sqlite",
    ]
    assert store_kind("postgresql://u@127.0.0.1/db?run_id=r") == "postgres"
    with pytest.raises(ConfigurationError, match="unknown store 'redis://h'"):
        store_kind("redis://h")


@pytest.mark.parametrize("form", ["dir", "file", "url"])
def test_sqlite_checkpoints_survive_a_crash(tmp_path: Path, form: str) -> None:
    target = {
        "dir": str(tmp_path / "run"),
        "file": str(tmp_path / "cp.db"),
        "url": f"sqlite:///{tmp_path}/cp.db",  # an absolute path: sqlite:////tmp/...
    }[form]
    calls: list[int] = []
    crash = {3}
    cfg = {"configurable": {"thread_id": "t"}}
    with open_checkpointer(target) as saver:
        graph = counting_graph(6, calls, crash).compile(checkpointer=saver)
        with pytest.raises(RuntimeError, match="crash"):
            graph.invoke({"i": 0, "seen": []}, cfg, durability="sync")
    with open_checkpointer(target) as saver:  # a new connection, as after a restart
        out = counting_graph(6, calls, crash).compile(checkpointer=saver).invoke(None, cfg)
    assert out["seen"] == list(range(6))
    assert calls == [0, 1, 2, 3, 3, 4, 5]
    if form == "dir":
        assert (tmp_path / "run" / CHECKPOINT_DB_NAME).is_file()


def test_sqlite_checkpoints_survive_a_killed_process_mid_write(tmp_path: Path) -> None:
    """SIGKILL lands inside a checkpoint write whose INSERT has run but not committed:
    every committed checkpoint and node write survives, the half-written one is not
    visible, and the resumed graph runs each node exactly once across both processes."""
    store = str(tmp_path / "run")
    marks = kill_mid_write(store, tmp_path / "marks", n=8, stall=3)
    lines = [line for i in range(4) for line in (f"committed {i}", f"ran {i}")]
    assert marks == [*lines, "mid 4 True 0"]  # killed inside an open transaction
    import sqlite3
    from contextlib import closing

    # closing(): a sqlite3 connection's own `with` commits but does not close.
    with closing(sqlite3.connect(tmp_path / "run" / CHECKPOINT_DB_NAME)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    check_resume_after_kill(store)


async def test_async_sqlite_checkpointer(tmp_path: Path) -> None:
    cfg = {"configurable": {"thread_id": "t"}}
    async with open_async_checkpointer(tmp_path) as saver:
        graph = counting_graph(3, [], set()).compile(checkpointer=saver)
        assert (await graph.ainvoke({"i": 0, "seen": []}, cfg))["seen"] == [0, 1, 2]
    async with open_async_checkpointer(tmp_path) as saver:
        graph = counting_graph(3, [], set()).compile(checkpointer=saver)
        assert (await graph.aget_state(cfg)).values["seen"] == [0, 1, 2]


def test_the_old_module_name_still_works_and_says_where_it_moved() -> None:
    import maker_graph.store as old

    with pytest.warns(DeprecationWarning, match="maker_graph.checkpointers.open_checkpointer"):
        opener = old.open_checkpointer
    assert opener is open_checkpointer
    with pytest.raises(AttributeError):
        old.no_such_name  # noqa: B018 - the attribute access is the test
