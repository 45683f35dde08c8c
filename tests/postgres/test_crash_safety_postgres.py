"""Crash safety with the run log in PostgreSQL (`--store postgresql://...?run_id=...`):
20 SIGKILLs at seeded moments of one run, resumed each time, leave every step once, in
order, solved, with the run budget exact across the kills; a second CLI on the same run
id is refused with one clear line."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from crash_harness import cli, committed, finish_and_check, kill_and_resume

pytestmark = pytest.mark.postgres

DISKS = 13
BUDGET, STOP_AFTER = 100_000, 2_000  # as in tests/test_crash_safety.py


@pytest.mark.slow  # ~30-50 s: 22 CLI starts
def test_twenty_kills_then_resume_with_the_postgres_store(
    postgres_url: str, tmp_path: Path
) -> None:
    store = f"{postgres_url}?run_id=crash-test"
    # Another run in the same database must come through untouched.
    other = f"{postgres_url}?run_id=neighbour"
    neighbour = subprocess.run(
        [
            sys.executable,
            "-m",
            "maker_graph",
            "hanoi",
            "--disks",
            "5",
            "--store",
            other,
            "--no-progress",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert neighbour.returncode == 0 and "solved: true, errors: 0" in neighbour.stdout
    # Every session under --max-total-samples; the report must count exactly what the
    # model was asked for, and a budget set after the kills must hold (finish_and_check).
    report = kill_and_resume(
        disks=DISKS,
        location_args=["--store", store],
        store=store,
        workdir=tmp_path,
        budget=BUDGET,
    )
    assert len(report.kills) == 20
    assert report.committed_points >= 3 and report.unfinished == 20, report.kills
    assert not any("torn" in err for err in report.stderr), report.stderr
    finish_and_check(
        disks=DISKS,
        location_args=["--store", store],
        store=store,
        workdir=tmp_path,
        kills=report,
        budget=BUDGET,
        stop_after=STOP_AFTER,
    )
    assert committed(other) == 31


def test_a_second_cli_on_the_same_run_is_refused(postgres_url: str, tmp_path: Path) -> None:
    store = f"{postgres_url}?run_id=busy"
    first = cli(
        ["hanoi", "--disks", "16", "--store", store, "--no-progress"], tmp_path, tmp_path, "first"
    )
    try:
        deadline = time.monotonic() + 60
        while committed(store) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "maker_graph",
                "hanoi",
                "--disks",
                "16",
                "--store",
                store,
                "--no-progress",
                "--resume",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        first.kill()
        first.wait(timeout=30)
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: run busy in postgresql://"), lines
    assert f"is being written by pid {first.pid}" in lines[0]


def test_store_url_without_run_id_is_one_clear_line(postgres_url: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "maker_graph", "hanoi", "--disks", "3", "--store", postgres_url],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --store postgresql://... needs ?run_id=NAME in the URL: it names the run "
        "among the others in that database"
    ]
