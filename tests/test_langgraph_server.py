"""The example specs served by the real LangGraph dev server, driven by `langgraph-sdk`.

Starts `langgraph dev` (langgraph-cli[inmem]) on a free loopback port from a
copy of `examples/configs/`, with analytics and version checks off, and with a
`sitecustomize` that refuses (and records) every connection the server tries
to make beyond loopback: the test proves the server needs no network. The
server is always stopped in a `finally`; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.server, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "configs"
LANGGRAPH = Path(sys.executable).parent / "langgraph"
START_TIMEOUT = 90.0
CALL_TIMEOUT = 60.0

_GUARD = textwrap.dedent(
    '''
    """Test-only: refuse and record non-loopback connections in the server process."""
    import ipaddress
    import os
    import socket

    _LOG = os.environ["MAKER_NET_GUARD_LOG"]
    with open(os.environ["MAKER_NET_GUARD_LOADED"], "a") as _f:
        _f.write(f"{os.getpid()}\\n")


    def _record(what):
        with open(_LOG, "a") as f:
            f.write(what + "\\n")


    def _loopback(host):
        if host in (None, "", "localhost") or not isinstance(host, str):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


    _connect = socket.socket.connect
    _connect_ex = socket.socket.connect_ex
    _getaddrinfo = socket.getaddrinfo


    def connect(self, address):
        if isinstance(address, tuple) and not _loopback(address[0]):
            _record(f"connect {address!r}")
            raise OSError(f"network blocked by the test: {address!r}")
        return _connect(self, address)


    def connect_ex(self, address):
        if isinstance(address, tuple) and not _loopback(address[0]):
            _record(f"connect_ex {address!r}")
            return 111
        return _connect_ex(self, address)


    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if not _loopback(name):
            _record(f"getaddrinfo {name!r}")
            raise socket.gaierror(f"network blocked by the test: {name!r}")
        return _getaddrinfo(host, *args, **kwargs)


    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo
    '''
)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Server:
    url: str
    port: int
    log: Path
    net_log: Path
    guard_loaded: Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(_ANSI.sub("", path.read_text(errors="replace")).splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server and everything it started (its own process group)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not LANGGRAPH.exists():
        pytest.skip("langgraph-cli[inmem] is not installed (extra: maker-graph[server])")
    base = tmp_path_factory.mktemp("langgraph-server")
    app_dir = base / "configs"
    shutil.copytree(EXAMPLES, app_dir, ignore=shutil.ignore_patterns(".langgraph_api"))
    guard = base / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(_GUARD)
    port = _free_port()
    log = base / "server.log"
    net_log = base / "network-attempts.log"
    loaded = base / "guard-loaded.log"
    env = {
        **os.environ,
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "1",
        "LANGSMITH_TRACING": "false",
        "LANGCHAIN_TRACING_V2": "false",
        "PYTHONPATH": os.pathsep.join([str(guard), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "MAKER_NET_GUARD_LOG": str(net_log),
        "MAKER_NET_GUARD_LOADED": str(loaded),
    }
    command = [
        str(LANGGRAPH),
        "dev",
        "--no-reload",
        "--no-browser",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--config",
        "langgraph.json",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=app_dir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"langgraph dev exited with {process.returncode}:\n{_tail(log)}")
            try:
                if httpx.get(f"{url}/ok", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"langgraph dev did not answer within {START_TIMEOUT:.0f} s:\n{_tail(log)}"
                )
            time.sleep(0.25)
        # The dev server silently moves to another port when its port is taken: make
        # sure the server that answered is ours, on the port we asked for.
        announced = re.search(r"API: http://127\.0\.0\.1:(\d+)", _ANSI.sub("", log.read_text()))
        assert announced is not None, _tail(log)
        assert int(announced.group(1)) == port, f"server moved to port {announced.group(1)}"
        yield Server(url, port, log, net_log, loaded)
    finally:
        _stop(process)


async def _bounded(awaitable: Any, seconds: float = CALL_TIMEOUT) -> Any:
    return await asyncio.wait_for(awaitable, timeout=seconds)


@asynccontextmanager
async def _client(server: Server) -> AsyncIterator[Any]:
    """A `langgraph-sdk` client, closed on exit (an unclosed one is finalized on a dead loop)."""
    from langgraph_sdk import get_client

    client = get_client(url=server.url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_the_server_serves_every_example_graph(server: Server) -> None:
    async with _client(server) as client:
        assistants = await _bounded(client.assistants.search(limit=20))
        assert {a["graph_id"] for a in assistants} >= {"triage", "hanoi", "hybrid"}
        schemas = await _bounded(
            client.assistants.get_schemas(
                next(a["assistant_id"] for a in assistants if a["graph_id"] == "triage")
            )
        )
        assert set(schemas["input_schema"]["properties"]) == {"ticket"}


async def test_triage_runs_wait_and_the_thread_keeps_its_state(server: Server) -> None:
    async with _client(server) as client:
        thread = await _bounded(client.threads.create())
        result = await _bounded(
            client.runs.wait(
                thread["thread_id"], "triage", input={"ticket": "I was charged twice this month"}
            )
        )
        assert result["category"] == "billing"
        assert result["reply"].startswith("Billing desk")
        assert result["triage_stats"]["decided_by"] == "vote"
        state = await _bounded(client.threads.get_state(thread["thread_id"]))
        assert state["values"]["category"] == "billing"  # kept by the server's checkpointer


async def test_hanoi_streams_node_updates(server: Server) -> None:
    async with _client(server) as client:
        thread = await _bounded(client.threads.create())

        async def collect() -> list[Any]:
            return [
                part
                async for part in client.runs.stream(
                    thread["thread_id"], "hanoi", input={"disks": 3}, stream_mode="updates"
                )
            ]

        parts = await _bounded(collect())
        updates = [p.data for p in parts if p.event == "updates"]
        assert [next(iter(u)) for u in updates] == ["solve", "report"]
        result = updates[0]["solve"]["result"]
        assert result["steps"] == 7 and result["done"] is True
        assert result["final_state"] == [[], [], [3, 2, 1]]
        assert not [p for p in parts if p.event == "error"]


async def test_hybrid_pipeline_over_the_server(server: Server) -> None:
    async with _client(server) as client:
        thread = await _bounded(client.threads.create())
        order = await _bounded(
            client.runs.wait(
                thread["thread_id"], "hybrid", input={"request": "Where is order AB-123? asap"}
            )
        )
        assert order["intent"] == "order"
        assert order["answer"] == "Your order AB-123 is shipped."
        puzzle = await _bounded(
            client.runs.wait(
                None, "hybrid", input={"request": "Solve the tower of hanoi with 4 disks"}
            )
        )
        assert puzzle["answer"].startswith("Solved the 4-disk puzzle")


async def test_a_failing_run_reports_the_spec_budget(server: Server) -> None:
    async with _client(server) as client:
        result = await _bounded(
            client.runs.wait(None, "hanoi", input={"disks": 16}, raise_error=False)
        )
        assert "samples budget spent" in str(result)
        assert "nodes.solve.max_total_samples" in str(result)


def test_the_server_made_no_network_connection(server: Server) -> None:
    # Runs last in this module: by now the server has started and served every graph.
    assert server.guard_loaded.exists(), "the network guard was not loaded in the server"
    attempts = server.net_log.read_text() if server.net_log.exists() else ""
    assert attempts == "", f"the dev server tried to reach the network:\n{attempts}"
