"""Kill `maker-graph hanoi` at random moments and resume it; shared by the SQLite and
PostgreSQL crash tests (a helper module, not a test file).

A "moment" is a committed-step target plus a time jitter, both drawn from a seeded
generator. For each moment the harness starts the CLI with `--resume`, waits until
it has started running (its header line is out: the log is open and locked), then
until the run log has committed at least the target, then sleeps the jitter so the
kill lands anywhere within the next batch (while steps are decided, while a batch
commits, while the log is being opened) and sends SIGKILL. Targets stop short of
the end so that every kill finds the run unfinished. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maker_graph.errors import RunLogError
from maker_graph.runlog import open_run_log
from maker_graph.tasks.hanoi import optimal_moves

PACED_MODEL = "simulated:latency_median=0.0005,latency_sigma=0"
"""The simulated model with half a millisecond per call. Without it a run finishes faster
than the harness can aim a kill (a whole 14-disk run takes about a second), so kills would
land after the end; with it a run advances at most ~1,000 steps a second on any machine,
and a kill due in the first half of the run always finds it unfinished."""

SESSION_TIMEOUT = 120.0
"""Seconds one CLI session may take before the test fails (never reached when healthy)."""


def committed(store: str) -> int:
    """Steps committed so far (0 while there is no log yet)."""
    try:
        log = open_run_log(store, readonly=True)
    except RunLogError:
        return 0
    try:
        cp = log.checkpoint()
        return 0 if cp is None else cp.next_step
    except Exception:  # noqa: BLE001 - a log being created may not have its tables yet
        return 0
    finally:
        log.close()


def cli(args: list[str], cwd: Path, log_dir: Path, name: str) -> subprocess.Popen[bytes]:
    """Start `python -m maker_graph ARGS` with stdout/stderr to files in `log_dir`."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # The child gets its own copies of the two files; the parent's are closed here
    # (left open they leak, a ResourceWarning that pytest turns into an error).
    with (log_dir / f"{name}.out").open("wb") as out, (log_dir / f"{name}.err").open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "maker_graph", *args], cwd=cwd, stdout=out, stderr=err, env=env
        )


def run_cli(
    args: list[str], cwd: Path, timeout: float = SESSION_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "maker_graph", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class KillReport:
    """What happened at each kill: `(target, committed when killed, committed after)`."""

    total: int
    kills: list[tuple[int, int, int]] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    @property
    def unfinished(self) -> int:
        """Kills that found the run not yet complete in the log."""
        return sum(1 for _, before, after in self.kills if before == after and before < self.total)

    @property
    def committed_points(self) -> int:
        """Distinct numbers of committed steps the kills found (how spread they were)."""
        return len({before for _, before, _ in self.kills})


def _wait_for(predicate: Any, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + SESSION_TIMEOUT
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the CLI exited (code {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def kill_and_resume(
    *,
    disks: int,
    location_args: list[str],
    store: str,
    workdir: Path,
    kills: int = 20,
    seed: int = 20251109,
    max_jitter: float = 0.3,
) -> KillReport:
    """Start the run, kill it `kills` times at random moments, resuming each time.

    Targets are drawn from the first half of the run, so that however fast the
    machine, half the run (several batches) is still to do when a kill is due.
    """
    total = 2**disks - 1
    if total < 4 * kills:
        raise ValueError(f"{disks} disks is too short a run for {kills} kills")
    rng = random.Random(seed)
    targets = sorted(rng.randrange(0, total // 2) for _ in range(kills))
    jitters = [rng.uniform(0.0, max_jitter) for _ in range(kills)]
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    report = KillReport(total)
    base = [
        "hanoi", "--disks", str(disks), *location_args, "--no-progress", "--seed", "3",
        "--model", PACED_MODEL,
    ]
    for i, (target, jitter) in enumerate(zip(targets, jitters, strict=True)):
        proc = cli([*base, "--resume"], workdir, logs, f"session{i}")
        out = logs / f"session{i}.out"
        try:
            _wait_for(lambda o=out: b"hanoi:" in o.read_bytes(), proc, f"session {i} started")
            _wait_for(
                lambda t=target: committed(store) >= t, proc, f"step {target} (session {i})"
            )
            time.sleep(jitter)
            if proc.poll() is not None:
                raise AssertionError(
                    f"session {i} ended (code {proc.returncode}) before its kill: "
                    + (logs / f"session{i}.err").read_text()[-2000:]
                )
            before = committed(store)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        report.kills.append((target, before, committed(store)))
        report.stderr.append((logs / f"session{i}.err").read_text())
    return report


def finish_and_check(
    *, disks: int, location_args: list[str], export_args: list[str], workdir: Path
) -> dict[str, Any]:
    """Resume to the end, then check the exported log: every step once, in order, right."""
    total = 2**disks - 1
    done = run_cli(
        ["hanoi", "--disks", str(disks), *location_args, "--no-progress", "--resume",
         "--report", str(workdir / "report.json")],
        workdir,
    )
    assert done.returncode == 0, done.stderr
    assert "solved: true, errors: 0" in done.stdout, done.stdout
    exported = run_cli(["log", "export", *export_args], workdir)
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [line["step"] for line in lines] == list(range(total))  # each once, in order
    truth = [list(m) for m in optimal_moves(disks)]
    assert [line["move"] for line in lines] == truth
    verified = run_cli(["log", "verify", *export_args], workdir)
    assert verified.returncode == 0 and "the run is complete" in verified.stdout, verified
    report: dict[str, Any] = json.loads((workdir / "report.json").read_text())
    assert report["solved"] is True and report["errors"] == 0 and report["steps"] == total
    return report
