"""Kill `maker-graph hanoi` at random moments and resume it; shared by the SQLite and
PostgreSQL crash tests (a helper module, not a test file).

A "moment" is a committed-step target plus a time jitter, both drawn from a seeded
generator. For each moment the harness starts the CLI with `--resume`, waits until
its header line is out (the settings are resolved and the run is about to open the
log for writing: the header comes *before* the log is locked, so a kill right after it
can land while the log is being opened), then until the run log has committed at least
the target, then sleeps the jitter so the kill lands anywhere within the next batch
(while steps are decided, while a batch commits) and sends SIGKILL. Targets stop short
of the end so that every kill finds the run unfinished. Every wait is bounded.

Every session runs under `tests/kill_probe.py`, which counts each sample the simulated
model is asked for in a file that survives the kills. With `budget` every session runs
under `--max-total-samples`: the harness records, at each kill, what the model had been
asked for and what the log had reserved, and `finish_and_check` holds the run's report
to them exactly (see `check_samples`). With `aimed=True` (SQLite only) the probe also
marks every batch commit, so the harness knows where each kill landed (before the
session's first commit, during a commit, between commits), and some kills are aimed:
right after the header (before the first commit) or into a commit the probe holds open.
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


PROBE = Path(__file__).resolve().with_name("kill_probe.py")


def cli(
    args: list[str], cwd: Path, log_dir: Path, name: str, probe_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `python -m maker_graph ARGS` with stdout/stderr to files in `log_dir`
    (under `kill_probe.py` with `probe_env` added to its environment, when given)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(probe_env or {})}
    command = [sys.executable, *([str(PROBE)] if probe_env else ["-m", "maker_graph"]), *args]
    # The child gets its own copies of the two files; the parent's are closed here
    # (left open they leak, a ResourceWarning that pytest turns into an error).
    with (log_dir / f"{name}.out").open("wb") as out, (log_dir / f"{name}.err").open("wb") as err:
        return subprocess.Popen(
            command, cwd=cwd, stdout=out, stderr=err, env=env, preexec_fn=_ctrl_c_as_in_a_terminal
        )


def _ctrl_c_as_in_a_terminal() -> None:
    """In the child before exec: SIGINT back to its default, so Python turns it into
    KeyboardInterrupt. A shell starts background jobs (a CI step run with `&`) with
    SIGINT ignored, which a child would inherit and a Ctrl-C test would then hang on."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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


def reserved(store: str) -> int:
    """Samples the run log holds reserved (an upper bound of what the run asked for)."""
    with open_run_log(store, readonly=True) as log:
        return log.reserved()


def asked(workdir: Path) -> int:
    """Samples the simulated model was asked for, over every probed session so far."""
    path = workdir / "logs" / "asks"
    return path.stat().st_size if path.exists() else 0


@dataclass
class KillReport:
    """What happened at each kill: `(target, committed when killed, committed after)`."""

    total: int
    asked: list[int] = field(default_factory=list)
    """Per kill, samples the model had been asked for so far (every session)."""
    reserved: list[int] = field(default_factory=list)
    """Per kill, samples the log held reserved after it."""
    kills: list[tuple[int, int, int]] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    aims: list[str] = field(default_factory=list)
    """With `aimed`: per kill, "before", "during", "between" or "anywhere" (the aim)."""
    landed: list[str] = field(default_factory=list)
    """With `aimed`: per kill, where it landed by the probe's marks (see `landing`)."""
    session_start: list[int] = field(default_factory=list)
    """Steps committed when each session started."""

    @property
    def unfinished(self) -> int:
        """Kills that found the run not yet complete in the log."""
        return sum(1 for _, before, after in self.kills if before == after and before < self.total)

    @property
    def committed_points(self) -> int:
        """Distinct numbers of committed steps the kills found (how spread they were)."""
        return len({before for _, before, _ in self.kills})


BEFORE, DURING, BETWEEN = "before first commit", "during a commit", "between commits"


def landing(marks: str) -> str:
    """Where a kill landed, from the marks `kill_probe.py` left (the last one decides)."""
    lines = marks.splitlines()
    if not lines:
        return BEFORE
    last = lines[-1].split()[0]
    return BETWEEN if last == "end" else DURING


STALL = 1.5
"""Seconds the probe holds an aimed commit open: far longer than the kill takes to land."""


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
    aimed: bool = False,
    budget: int | None = None,
) -> KillReport:
    """Start the run, kill it `kills` times at random moments, resuming each time.

    Targets are drawn from the first half of the run, so that however fast the
    machine, half the run (several batches) is still to do when a kill is due.
    With `aimed` (SQLite), a fifth of the kills go right after the header, a fifth
    into the 1st-3rd commit of their session (held open by the probe) and a fifth just
    after one; every kill's landing is recorded from the probe's marks. With `budget`,
    every session runs under `--max-total-samples budget`.
    """
    total = 2**disks - 1
    if total < 4 * kills:
        raise ValueError(f"{disks} disks is too short a run for {kills} kills")
    rng = random.Random(seed)
    targets = sorted(rng.randrange(0, total // 2) for _ in range(kills))
    jitters = [rng.uniform(0.0, max_jitter) for _ in range(kills)]
    aims = ["anywhere"] * kills
    stall_at = [0] * kills
    if aimed:
        share = max(1, kills // 5)
        aims = ["before", "during", "between"] * share + ["anywhere"] * (kills - 3 * share)
        rng.shuffle(aims)
        # The commit a "during" kill waits for (held open), or after which a "between"
        # kill lands (within half a commit interval, long before the next one).
        stall_at = [rng.randint(1, 3) if aim in ("during", "between") else 0 for aim in aims]
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    report = KillReport(total)
    base = [
        "hanoi",
        "--disks",
        str(disks),
        *location_args,
        "--no-progress",
        "--seed",
        "3",
        "--model",
        PACED_MODEL,
        *(["--max-total-samples", str(budget)] if budget is not None else []),
    ]
    for i, (target, jitter) in enumerate(zip(targets, jitters, strict=True)):
        marks = logs / f"session{i}.marks"
        probe_env = {"MAKER_GRAPH_KILL_ASKS": str(logs / "asks")}
        if aimed:
            probe_env |= {
                "MAKER_GRAPH_KILL_MARKS": str(marks),
                "MAKER_GRAPH_KILL_STALL_AT": str(stall_at[i] if aims[i] == "during" else 0),
                "MAKER_GRAPH_KILL_STALL": str(STALL),
            }
            marks.touch()
        report.session_start.append(committed(store))
        proc = cli([*base, "--resume"], workdir, logs, f"session{i}", probe_env)
        out = logs / f"session{i}.out"
        try:
            _wait_for(lambda o=out: b"hanoi:" in o.read_bytes(), proc, f"session {i} started")
            if aims[i] == "during":
                mark = f"commit {stall_at[i]}\n".encode()
                _wait_for(
                    lambda m=marks, t=mark: t in m.read_bytes(),
                    proc,
                    f"commit {stall_at[i]} of session {i}",
                )
            elif aims[i] == "between":
                mark = f"end {stall_at[i]}\n".encode()
                _wait_for(
                    lambda m=marks, t=mark: t in m.read_bytes(),
                    proc,
                    f"the end of commit {stall_at[i]} of session {i}",
                )
                time.sleep(jitter * 0.1 / max_jitter)  # <= 0.1 s: the next commit is >= 0.5 s on
            elif aims[i] == "anywhere":
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
        report.asked.append(asked(workdir))
        report.reserved.append(reserved(store))
        report.stderr.append((logs / f"session{i}.err").read_text())
        if aimed:
            report.aims.append(aims[i])
            report.landed.append(landing(marks.read_text()))
    return report


def check_samples(report: dict[str, Any], kills: KillReport, workdir: Path) -> int:
    """The report's sample count is exact: what the model was asked for over every
    session, plus the samples reserved but never asked for when a session died (a run
    reserves each sample in its log before asking, so those were counted as spent and
    the budget held them back). Returns that reserved-never-asked count."""
    unasked = [r - a for r, a in zip(kills.reserved, kills.asked, strict=True)]
    # Reserved before asked: never negative, and no kill ever forgets a reservation.
    assert all(n >= 0 for n in unasked) and unasked == sorted(unasked), unasked
    lost = unasked[-1] if unasked else 0
    assert report["samples"] == asked(workdir) + lost, (report["samples"], asked(workdir), lost)
    return lost


def _probed(args: list[str], workdir: Path, name: str) -> tuple[int, str, str]:
    """One CLI session to its end under the probe (its samples counted); code, out, err."""
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    proc = cli(args, workdir, logs, name, {"MAKER_GRAPH_KILL_ASKS": str(logs / "asks")})
    try:
        proc.wait(timeout=SESSION_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    return (
        proc.returncode,
        (logs / f"{name}.out").read_text(),
        (logs / f"{name}.err").read_text(),
    )


def finish_and_check(
    *,
    disks: int,
    location_args: list[str],
    store: str,
    workdir: Path,
    kills: KillReport,
    budget: int | None = None,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Resume to the end, then check the exported log: every step once, in order, right;
    and the report's samples against what the model was asked for (`check_samples`).

    Every session runs under `--max-total-samples budget` when given. With `stop_after`,
    a first resume runs under a budget of what the log reserved at the last kill plus
    `stop_after` samples, which must stop the run there with the model asked for no more
    than that budget: the count the budget is held to spans every killed session.
    """
    total = 2**disks - 1
    report_path = workdir / "report.json"
    args = [
        "hanoi",
        "--disks",
        str(disks),
        *location_args,
        "--no-progress",
        "--resume",
        "--report",
        str(report_path),
    ]
    if stop_after is not None:
        tight = kills.reserved[-1] + stop_after
        code, out, err = _probed([*args, "--max-total-samples", str(tight)], workdir, "budget")
        assert code == 1 and "--max-total-samples" in err, (code, out, err)
        stopped: dict[str, Any] = json.loads(report_path.read_text())
        assert kills.kills[-1][1] < stopped["steps"] < total, stopped["steps"]
        check_samples(stopped, kills, workdir)
        # Never past the budget, and spent up to the last step it could still start.
        assert asked(workdir) <= stopped["samples"] <= tight, (asked(workdir), stopped, tight)
        assert tight - stopped["samples"] < stopped["max_samples_in_step"], (stopped, tight)
    if budget is not None:
        args += ["--max-total-samples", str(budget)]
    code, out, err = _probed(args, workdir, "finish")
    assert code == 0, err
    assert "solved: true, errors: 0" in out, out
    # Export through the CLI (it checks every batch it reads); verify in-process, the
    # same check as `log verify` without another interpreter start.
    exported = run_cli(["log", "export", "--run-dir", store], workdir)
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [line["step"] for line in lines] == list(range(total))  # each once, in order
    truth = [list(m) for m in optimal_moves(disks)]
    assert [line["move"] for line in lines] == truth
    with open_run_log(store, readonly=True) as log:
        assert log.verify() == total
    report: dict[str, Any] = json.loads(report_path.read_text())
    assert report["solved"] is True and report["errors"] == 0 and report["steps"] == total
    check_samples(report, kills, workdir)
    return report
