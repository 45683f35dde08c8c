"""The SQLite run log's durability setting is really applied (docs/reliability.md).

`synchronous="FULL"` is what makes a committed batch survive a power cut; the
default `NORMAL` survives a killed process only. Timing cannot tell them apart
reliably, so these tests ask SQLite itself: `PRAGMA synchronous` on the very
connection the log writes through (0 = OFF, 1 = NORMAL, 2 = FULL, 3 = EXTRA),
after `start` and an `append`, so a mode set and later lost is caught too.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from maker_graph.runlog import Checkpoint, RunLog, SqliteRunLog, StepRecord, open_run_log
from maker_graph.runlog.sqlite import DB_NAME

NORMAL, FULL = 1, 2


def _write_some(log: RunLog) -> None:
    log.start("t", {})
    log.append(
        [
            StepRecord(i, f'"a{i}"', f"{i:08x}", "[3]", 3, 3, None, 1, 10, 5, "vote")
            for i in range(3)
        ],
        Checkpoint(next_step=3, state=[3], previous_action=2, totals={"samples": 9}, done=False),
    )
    assert log.last_step() == 2


def _pragmas(log: RunLog) -> tuple[int, str]:
    # The log's own connection (PRAGMA synchronous is per connection, so another
    # connection to the same file would not show it).
    db = log._connect()  # type: ignore[attr-defined]
    assert isinstance(db, sqlite3.Connection)
    (sync,) = db.execute("PRAGMA synchronous").fetchone()
    (journal,) = db.execute("PRAGMA journal_mode").fetchone()
    return int(sync), str(journal)


OPENERS: dict[str, Callable[[Path], RunLog]] = {
    "run directory": lambda d: open_run_log(d, synchronous="FULL"),
    "sqlite URL": lambda d: open_run_log(f"sqlite:///{d / 'x.db'}", synchronous="FULL"),
    "SqliteRunLog": lambda d: SqliteRunLog(d / DB_NAME, synchronous="FULL"),
}


@pytest.mark.parametrize("how", sorted(OPENERS))
def test_full_is_set_on_the_writing_connection(tmp_path: Path, how: str) -> None:
    with OPENERS[how](tmp_path) as log:
        _write_some(log)
        assert _pragmas(log) == (FULL, "wal")


def test_the_default_is_normal(tmp_path: Path) -> None:
    with open_run_log(tmp_path) as log:
        _write_some(log)
        assert _pragmas(log) == (NORMAL, "wal")
