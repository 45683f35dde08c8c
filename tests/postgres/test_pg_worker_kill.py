"""Opt-in: SIGKILL one of two `langgraph-api` workers in the middle of the load.

Same set-up and gating as `test_pg_runtime_server.py` (`MAKER_GRAPH_PG_RUNTIME_PYTHON`
names the python of a venv with `langgraph-runtime-pg`; Debian's `redis-server`).
The server (`benchmarks/scale_out.Server`: Redis, uvicorn with 2 workers, the
graphs of `examples/configs/served.py`) runs with 2-second heartbeats, so the
runtime sweeps a dead worker's runs back to `pending` within seconds and a
living worker takes them.

The load: agent turns and Towers of Hanoi decomposition runs, each on its own
thread, created before the kill. Once every decomposition run has committed
steps to its run log in PostgreSQL, the worker that writes the most of them is
killed with SIGKILL. Then every run must finish (joined again when the killed
worker was the one answering the HTTP call); each agent turn decided once
(`decisions == [turn]`); each decomposition run solved, its log verified by
`maker-graph log verify` with `export` listing every step exactly once, and the
runs the dead worker was writing finished by another process. Every wait is
bounded; every process started is killed by process group, and the test checks
that none is left.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import scale_out  # noqa: E402

RUNTIME_PYTHON = os.environ.get("MAKER_GRAPH_PG_RUNTIME_PYTHON", "")

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.server,
    pytest.mark.timeout(300),
    # httpx's pooled connections to the killed worker die under it; their transports
    # are reported unclosed when collected, which is the kill, not a leak of ours.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.skipif(
        not RUNTIME_PYTHON,
        reason="set MAKER_GRAPH_PG_RUNTIME_PYTHON to the "
        "python of a venv with langgraph-runtime-pg",
    ),
]
AGENT_RUNS = 40
DECOMPOSE_RUNS = 4
DISKS = 8  # 255 steps: ~12 s per run at 50 ms median latency
RUN_TIMEOUT = 150.0


def _writers(database_uri: str) -> dict[str, tuple[str, int]]:
    """run id -> (writer, steps committed), from the run-log tables."""
    import psycopg

    with psycopg.connect(database_uri, connect_timeout=10) as conn:
        exists = conn.execute("select to_regclass('maker_graph.runs')").fetchone()
        if exists is None or exists[0] is None:
            return {}
        rows = conn.execute(
            "select r.run_id, r.writer, count(s.step) from maker_graph.runs r "
            "left join maker_graph.steps s using (run_id) group by 1, 2"
        ).fetchall()
    return {run_id: (writer, int(n)) for run_id, writer, n in rows}


async def _finish(client: Any, thread_id: str, run_id: str, deadline: float) -> Any:
    """The thread's values once the run is over: polled, as the HTTP call may have been
    served by the killed worker (and `runs.join` on this runtime can answer early)."""
    while True:
        try:
            run = await client.runs.get(thread_id, run_id)
            if run["status"] in ("success", "error", "timeout", "interrupted"):
                assert run["status"] == "success", run
                state = await client.threads.get_state(thread_id)
                return state["values"]
        except (httpx.TransportError, httpx.HTTPStatusError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} on thread {thread_id} did not finish")
        await asyncio.sleep(0.5)


def _group_alive(pgid: int) -> list[int]:
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive.append(int(entry.name))
    return alive


def test_sigkill_one_worker_every_run_finishes_once(postgres_url: str, tmp_path: Path) -> None:
    from langgraph_sdk import get_client

    server = scale_out.Server(RUNTIME_PYTHON, postgres_url, 2, tmp_path, heartbeat=2)
    groups: list[int] = []
    try:
        server.start()
        groups = [p.pid for p in server.processes]
        workers = server.worker_pids()
        assert len(workers) == 2

        async def drive() -> dict[str, Any]:
            client = get_client(url=server.url, timeout=httpx.Timeout(30, connect=10))
            agent, decompose = [], []
            for _ in range(DECOMPOSE_RUNS):
                tid = await scale_out.new_thread(client)
                run = await client.runs.create(
                    tid, "decompose", input={}, config={"configurable": {"disks": DISKS}}
                )
                decompose.append((tid, run["run_id"]))
            for i in range(AGENT_RUNS):
                tid = await scale_out.new_thread(client)
                run = await client.runs.create(
                    tid,
                    "agent",
                    input={"ticket": f"{scale_out.TICKETS[i % 4]} #{i}", "turn": f"turn-{i}"},
                )
                agent.append((tid, run["run_id"], f"turn-{i}"))
            # Kill once every decomposition run is under way, and no later than 60 s.
            deadline = time.monotonic() + 60
            while True:
                writers = await asyncio.to_thread(_writers, postgres_url)
                started = {tid for tid, _ in decompose if writers.get(tid, ("", 0))[1] > 0}
                if len(started) == DECOMPOSE_RUNS or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.3)
            per_pid: dict[int, int] = {}
            for tid, _ in decompose:
                writer = writers.get(tid, ("", 0))[0] or ""
                for pid in workers:
                    if writer.startswith(f"pid {pid} "):
                        per_pid[pid] = per_pid.get(pid, 0) + 1
            victim = max(workers, key=lambda pid: per_pid.get(pid, 0))
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            victims_runs = {
                tid
                for tid, _ in decompose
                if (writers.get(tid, ("", 0))[0] or "").startswith(f"pid {victim} ")
            }
            steps_at_kill = {tid: writers.get(tid, ("", 0))[1] for tid, _ in decompose}
            end = time.monotonic() + RUN_TIMEOUT
            agent_out = await asyncio.gather(*[_finish(client, t, r, end) for t, r, _ in agent])
            decompose_out = await asyncio.gather(
                *[_finish(client, t, r, end) for t, r in decompose]
            )
            await client.aclose()
            return {
                "victim": victim,
                "victims_runs": victims_runs,
                "agent": agent,
                "agent_out": agent_out,
                "decompose": decompose,
                "decompose_out": decompose_out,
                "steps_at_kill": steps_at_kill,
                "recovery_s": time.monotonic() - killed_at,
            }

        result = asyncio.run(drive())
        for (_, _, turn), out in zip(result["agent"], result["agent_out"], strict=True):
            assert out.get("decisions") == [turn], out
            assert out.get("label") in scale_out.LABELS
        steps = 2**DISKS - 1
        writers = _writers(postgres_url)
        for (tid, _), out in zip(result["decompose"], result["decompose_out"], strict=True):
            assert out.get("done") is True and out.get("step") == steps, out
            assert out.get("state") == scale_out.solved(DISKS)
            assert scale_out.check_run_log(postgres_url, tid, steps) == ""
        # The kill hit runs in flight, and another process finished them.
        assert result["victims_runs"], f"the killed worker wrote no run: {result}"
        for tid in result["victims_runs"]:
            assert result["steps_at_kill"][tid] < steps, "the run was over before the kill"
            assert not writers[tid][0].startswith(f"pid {result['victim']} "), writers[tid]
        assert "Swept stale run" in server.log_text()
        print(
            f"killed pid {result['victim']} while it wrote {len(result['victims_runs'])} "
            f"of {DECOMPOSE_RUNS} decomposition runs; every run finished "
            f"{result['recovery_s']:.1f} s after the kill"
        )
    finally:
        server.stop()
        for pgid in groups:
            assert _group_alive(pgid) == [], f"processes left in group {pgid}"
