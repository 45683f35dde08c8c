"""A run on `--store postgresql://...` stopped by its budget says so in one line, with the
resume command, and nothing else: found by the 20-kill test's budget stop (issue 14)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres


def test_a_budget_stop_on_a_postgres_store_is_one_message(
    postgres_url: str, tmp_path: Path
) -> None:
    store = f"{postgres_url}?run_id=budget-stop"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "maker_graph",
            "hanoi",
            "--disks",
            "6",
            "--store",
            store,
            "--no-progress",
            "--max-total-samples",
            "20",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc
    assert "samples budget spent" in proc.stderr and "--resume" in proc.stderr, proc.stderr
    assert "error:" not in proc.stderr, proc.stderr
