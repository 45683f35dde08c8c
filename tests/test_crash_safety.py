"""Crash safety: `maker-graph hanoi` killed with SIGKILL at 20 random moments of one run and
resumed each time ends solved, with every step in its log exactly once and in order, and
its run budget (`--max-total-samples`) exact across the kills; a torn or truncated tail of
the log is detected and recovered from, never silently accepted.

The PostgreSQL variant of the kill test is `tests/postgres/test_crash_safety_postgres.py`.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from crash_harness import (
    BEFORE,
    BETWEEN,
    DURING,
    PACED_MODEL,
    SESSION_TIMEOUT,
    cli,
    committed,
    finish_and_check,
    kill_and_resume,
    run_cli,
)

from maker_graph.cli.hanoi import DEMO_ERRORS
from maker_graph.errors import BudgetExhaustedError, RunLogError
from maker_graph.run import count_errors, run_task_sync
from maker_graph.runlog import open_run_log
from maker_graph.runlog.sqlite import DB_NAME
from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
from maker_graph.vote import VotePolicy

DISKS = 13  # 8,191 steps at ~1,000 a second (the harness paces the model), batches every 0.5 s
# The run's sample budget, on every session. An unkilled run draws 16,531 samples (k = 2,
# seed 3) and each kill redoes at most one batch (<= 2,000 steps, ~4,000 samples), so the
# run finishes within it; what it proves is the count, exact across the kills. The resume
# after the last kill runs under a budget STOP_AFTER samples past what the log had
# reserved, which must stop it there (~1,000 steps on, of the >= 4,000 still to do).
BUDGET = 100_000
STOP_AFTER = 2_000


@pytest.mark.slow  # ~40-60 s: 22 CLI starts, 4 commits held open 1.5 s
def test_twenty_kills_then_resume_leave_every_step_once(tmp_path: Path) -> None:
    """And the sample count is exact across the kills: the report counts exactly what the
    model was asked for (the probe counts it, every session) plus what dying sessions had
    reserved, and a budget set after the kills stops the run with the model asked for no
    more than it."""
    run_dir = tmp_path / "run"
    location = ["--run-dir", str(run_dir)]
    report = kill_and_resume(
        disks=DISKS,
        location_args=location,
        store=str(run_dir),
        workdir=tmp_path,
        aimed=True,
        budget=BUDGET,
    )
    assert len(report.kills) == 20
    # Where the kills landed (the probe's commit marks), every class at least once, and
    # each aimed kill where it was aimed.
    landed = Counter(report.landed)
    assert set(landed) == {BEFORE, DURING, BETWEEN}, landed
    for aim, where, (_, before, after), start in zip(
        report.aims, report.landed, report.kills, report.session_start, strict=True
    ):
        expected = {"before": BEFORE, "during": DURING, "between": BETWEEN}.get(aim, where)
        assert where == expected, (aim, where, landed)
        if where == BEFORE:
            assert before == after == start  # the session committed nothing
        if where == DURING:
            assert after == before  # the open transaction left nothing behind
        if where == BETWEEN:
            assert before > start  # the session had committed something
    # The moments were spread over the run, not bunched at its start.
    assert report.committed_points >= 3, report.kills
    assert report.unfinished == 20, report.kills
    # A killed process never leaves a torn batch behind: commits are atomic.
    assert not any("torn" in err for err in report.stderr), report.stderr
    finish_and_check(
        disks=DISKS,
        location_args=location,
        store=str(run_dir),
        workdir=tmp_path,
        kills=report,
        budget=BUDGET,
        stop_after=STOP_AFTER,
    )


SMALL = 10  # 1,023 steps for the torn-tail cases


def _half_done_run(where: Path) -> int:
    """A Hanoi run stopped by its sample budget, as a killed run would be left."""
    task = HanoiTask(SMALL)
    with pytest.raises(BudgetExhaustedError):
        run_task_sync(
            task,
            simulated_sampler(task),
            VotePolicy(k=2),
            run_log=str(where),
            chunk_size=100,
            max_total_samples=1500,
        )
    return committed(str(where))


def _tamper(run_dir: Path, statement: str) -> None:
    db = sqlite3.connect(run_dir / DB_NAME)
    db.execute(statement)
    db.commit()
    db.close()


@pytest.mark.parametrize(
    "damage",
    [
        "DELETE FROM steps WHERE step = (SELECT MAX(step) FROM steps)",
        "DELETE FROM batches WHERE batch = (SELECT MAX(batch) FROM batches WHERE "
        "last_step >= first_step)",
    ],
    ids=["truncated-batch", "lost-batch-record"],
)
def test_a_torn_tail_is_detected_and_recovered(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = _half_done_run(tmp_path)
    assert 0 < before < 1023
    _tamper(tmp_path, damage)
    if "DELETE FROM batches" not in damage:
        # Detected: verification refuses the log; nothing is silently accepted.
        with (
            pytest.raises(RunLogError, match="corrupt: batch"),
            open_run_log(str(tmp_path), readonly=True) as log,
        ):
            log.verify()
    task = HanoiTask(SMALL)
    with caplog.at_level("WARNING", logger="maker_graph.runlog"):
        report = run_task_sync(
            task, simulated_sampler(task), VotePolicy(k=2), run_log=str(tmp_path)
        )
    assert "torn" in caplog.text and "will be decided again" in caplog.text
    assert report.done and report.resumed_from < before  # the torn steps were redone
    with open_run_log(str(tmp_path), readonly=True) as log:
        assert log.verify() == 1023
        assert [r.step for r in log.steps()] == list(range(1023))
        assert count_errors(task, log.steps()) == 0


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE steps SET action = '[99, 9, 9]' WHERE step = (SELECT MAX(step) FROM steps)",
        "UPDATE batches SET checkpoint = replace(checkpoint, '\"done\":false', '\"done\":true')"
        " WHERE batch = (SELECT MAX(batch) FROM batches)",
    ],
    ids=["corrupted-row", "corrupted-checkpoint"],
)
def test_a_changed_tail_is_corruption_and_is_refused(tmp_path: Path, damage: str) -> None:
    """All rows there but not matching the checksum: no torn write makes that (commits
    are atomic), so a resume refuses it, naming the batch, and keeps the evidence."""
    before = _half_done_run(tmp_path)
    _tamper(tmp_path, damage)
    task = HanoiTask(SMALL)
    with pytest.raises(RunLogError, match="corrupt: batch"):
        run_task_sync(task, simulated_sampler(task), VotePolicy(k=2), run_log=str(tmp_path))
    assert committed(str(tmp_path)) == before or "checkpoint" in damage  # nothing dropped
    with open_run_log(str(tmp_path), readonly=True) as log:
        assert log.last_step() == before - 1


def test_the_cli_says_when_it_recovers_a_torn_tail(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    _half_done_run(run_dir)
    _tamper(run_dir, "DELETE FROM steps WHERE step = (SELECT MAX(step) FROM steps)")
    check = run_cli(["log", "verify", "--run-dir", str(run_dir)], tmp_path)
    assert check.returncode == 1 and "corrupt: batch" in check.stderr, check
    resumed = run_cli(
        ["hanoi", "--disks", str(SMALL), "--run-dir", str(run_dir), "--no-progress", "--resume"],
        tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "dropped the torn last batch" in resumed.stderr
    assert "solved: true, errors: 0" in resumed.stdout


WAL_DISKS = 14  # 16,383 steps: held at >= 4,000, far from the end
WAL_HOLD_AT = 4000
WAL_CHILD = Path(__file__).resolve().with_name("wal_kill_child.py")


def _marks(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    return [(word, int(n)) for word, n in (line.split() for line in path.read_text().splitlines())]


def test_a_truncated_write_ahead_log_loses_only_whole_batches(tmp_path: Path) -> None:
    """Kill a writer, then cut its WAL file short (a torn write at the file level)."""
    run_dir = tmp_path / "run"
    marks = tmp_path / "marks"
    # Not the paced model: it reserves each sample in the log before asking, so the WAL's
    # newest frames would be reservations, not the last batch, and the cut would tear
    # nothing. The unpaced CLI instead, under `wal_kill_child.py`, which holds it still
    # right after the first batch commit at or past WAL_HOLD_AT steps and says so: the
    # kill waits for that mark (an event), not for the machine to be fast enough.
    env = {
        **os.environ,
        "MAKER_GRAPH_WAL_MARKS": str(marks),
        "MAKER_GRAPH_WAL_HOLD_AT": str(WAL_HOLD_AT),
    }
    args = ["hanoi", "--disks", str(WAL_DISKS), "--run-dir", str(run_dir), "--no-progress"]
    with (tmp_path / "writer.out").open("wb") as out, (tmp_path / "writer.err").open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(WAL_CHILD), *args], cwd=tmp_path, stdout=out, stderr=err, env=env
        )
    try:
        deadline = time.monotonic() + SESSION_TIMEOUT
        while not any(word == "held" for word, _ in _marks(marks)):
            assert proc.poll() is None, (tmp_path / "writer.err").read_text()
            assert time.monotonic() < deadline, f"no commit reached {WAL_HOLD_AT} steps"
            time.sleep(0.01)
        held = _marks(marks)[-1][1]
        assert committed(str(run_dir)) == held  # the held commit is durable and visible
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    commits = [n for word, n in _marks(marks) if word == "commit"]
    assert commits[-1] == held and WAL_HOLD_AT <= held < 2**WAL_DISKS - 1, commits
    wal = run_dir / f"{DB_NAME}-wal"
    assert wal.exists() and wal.stat().st_size > 10_000
    full = committed(str(run_dir))
    with open(wal, "r+b") as f:  # cut the last few KiB: the newest frames are torn
        f.truncate(wal.stat().st_size - 5000)
    cut = committed(str(run_dir))
    assert full == held
    # The torn tail vanished as whole batches, never half of one: what is left is the log
    # as one of the earlier commits left it, and something was lost.
    assert 0 < cut < full and cut in commits, (cut, commits)
    with open_run_log(str(run_dir), readonly=True) as log:
        assert log.verify() == cut
    task = HanoiTask(WAL_DISKS)
    settings_seed = 0  # the CLI's default seed: the same simulated model goes on
    sampler = simulated_sampler(task, replace(DEMO_ERRORS, seed=settings_seed))
    # k as the CLI chose it (k_min for the size, in the log's settings): a resume may
    # not change k (issue 14).
    with open_run_log(str(run_dir), readonly=True) as log:
        meta = log.meta()
        assert meta is not None
        k = int(meta.settings["k"])
    report = run_task_sync(task, sampler, VotePolicy(k=k), run_log=str(run_dir))
    assert report.done and report.resumed_from == cut
    with open_run_log(str(run_dir), readonly=True) as log:
        assert [r.step for r in log.steps()] == list(range(task.total_steps))
        assert count_errors(task, log.steps()) == 0


def test_a_second_cli_on_the_same_run_directory_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # Paced, so the first writer is still running (and holding the log) however long the
    # second CLI takes to start.
    args = [
        "hanoi",
        "--disks",
        "16",
        "--run-dir",
        str(run_dir),
        "--no-progress",
        "--model",
        PACED_MODEL,
    ]
    first = cli(args, tmp_path, tmp_path, "first")
    try:
        deadline = time.monotonic() + 60
        while committed(str(run_dir)) == 0 and time.monotonic() < deadline:
            assert first.poll() is None, "the first writer ended early"
            time.sleep(0.02)
        assert committed(str(run_dir)) > 0  # the first writer holds a started log
        second = run_cli([*args, "--resume"], tmp_path)
        assert first.poll() is None  # ... and still held it when the second was refused
    finally:
        first.kill()
        first.wait(timeout=30)
    assert second.returncode == 2
    assert second.stderr.strip().splitlines() == [
        f"error: the run in {run_dir} is being written by pid {first.pid}; wait for it to "
        "finish or stop it (two writers would corrupt the run)"
    ]
