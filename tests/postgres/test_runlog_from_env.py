"""A served decomposition graph keeps its run log in the deployment's PostgreSQL.

`examples/configs/served.py:decompose` is the graph factory LangGraph's server
calls per run; with `DATABASE_URI` set (as the server has it) the run's steps go
to PostgreSQL under the thread id. A second build of the graph (another worker)
on the same thread sees those steps and commits none twice.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from maker_graph.runlog.postgres import PostgresRunLog

pytestmark = [pytest.mark.postgres]

SERVED = Path(__file__).resolve().parents[2] / "examples" / "configs" / "served.py"


def _served() -> ModuleType:
    spec = importlib.util.spec_from_file_location("served_under_test", SERVED)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_served_decomposition_commits_each_step_once_to_the_deployments_postgres(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAKER_GRAPH_RUNLOG_URL", raising=False)
    monkeypatch.setenv("DATABASE_URI", postgres_url)
    served = _served()
    config = {"configurable": {"thread_id": "thread-a", "disks": 3}}
    first = served.decompose(config).compile(checkpointer=InMemorySaver())
    out = first.invoke({}, config)
    assert (out["step"], out["done"]) == (7, True)

    log = PostgresRunLog(postgres_url, run_id="thread-a", readonly=True)
    try:
        assert [r.step for r in log.steps()] == list(range(7))
        assert log.verify() == 7
        first_actions = [r.action for r in log.steps()]
    finally:
        log.close()

    # Another worker, its own checkpointer and a fresh input, same thread: it
    # resumes from the shared log and decides nothing again.
    second = served.decompose(config).compile(checkpointer=InMemorySaver())
    again = second.invoke({}, config)
    assert (again["step"], again["done"], again["state"]) == (7, True, out["state"])
    log = PostgresRunLog(postgres_url, run_id="thread-a", readonly=True)
    try:
        assert [r.step for r in log.steps()] == list(range(7))
        assert [r.action for r in log.steps()] == first_actions
    finally:
        log.close()

    # A graph built without a thread (the server's schema endpoints) has no run log.
    assert served.run_log_url_from_env("x") is not None
    bare = served.decompose({"configurable": {"disks": 2}}).compile()
    assert bare.invoke({})["step"] == 3
