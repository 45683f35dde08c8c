"""`make demo` in small: the installed CLI solves 8-disk Hanoi and its run log replays.

The 20-disk figure stays in benchmarks; this runs the same command line (entry point,
run directory, report) on 255 steps and checks the result independently of the CLI's
own `solved` flag: every committed move is re-applied with the task's rules.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from maker_graph.runlog import open_run_log
from maker_graph.tasks.hanoi import HanoiTask, apply_move, optimal_moves

DISKS = 8
STEPS = 2**DISKS - 1


def run_demo(tmp_path: Path, *extra: str) -> tuple[dict, Path]:
    run_dir = tmp_path / "run"
    report = tmp_path / "r.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "maker_graph",
            "hanoi",
            "--disks",
            str(DISKS),
            "--run-dir",
            str(run_dir),
            "--report",
            str(report),
            "--no-progress",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "solved: true, errors: 0" in proc.stdout
    return json.loads(report.read_text()), run_dir


def replay(run_dir: Path) -> list[tuple[int, int, int]]:
    """Re-apply the committed moves; `apply_move` raises on the first illegal one."""
    task = HanoiTask(DISKS)
    log = open_run_log(run_dir, readonly=True)
    try:
        assert log.verify() == STEPS  # checksums of every batch hold
        records = list(log.steps())
        checkpoint = log.checkpoint()
    finally:
        log.close()
    assert [r.step for r in records] == list(range(STEPS))
    state = task.initial_state()
    moves = []
    for record in records:
        move = task.load_action(json.loads(record.action))
        assert move is not None
        state = apply_move(state, move)
        # The logged state fingerprint is of the state the move produced.
        assert record.state_hash == task.state_hash(state), record.step
        moves.append(move)
    assert task.is_done(state)
    assert state == ((), (), tuple(range(DISKS, 0, -1)))
    assert checkpoint is not None and checkpoint.done
    assert task.load_state(checkpoint.state) == state
    return moves


# Default settings are what `make demo` runs; the noisier model makes the vote do work
# (at 5 % some samples in most runs are wrong, so a broken vote would commit one).
@pytest.mark.parametrize("extra", [(), ("--error-rate", "0.05", "--seed", "3")])
def test_demo_solves_and_log_replays(tmp_path: Path, extra: tuple[str, ...]) -> None:
    report, run_dir = run_demo(tmp_path, *extra)
    assert report["solved"] is True
    assert report["done"] is True
    assert report["steps"] == STEPS
    assert report["total_steps"] == STEPS
    assert report["errors"] == 0
    assert report["decided_by"] == {"vote": STEPS}
    assert sum(report["rounds_histogram"].values()) == STEPS
    assert report["samples"] >= report["k"] * STEPS  # a margin of k needs k samples
    moves = replay(run_dir)
    # 2**n - 1 moves solve it only along the unique shortest path.
    assert moves == list(optimal_moves(DISKS))
