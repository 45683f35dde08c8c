"""Run `python -m maker_graph ...` with the SQLite run log's commits marked, for the kill
test (a helper script, not a test file; the crash harness starts it in place of the CLI).

Each batch commit writes `begin N` when `append` is entered, `commit N` once its batch
record (the last write before `COMMIT`) is written and `end N` once `append` returned, to
the file named by MAKER_GRAPH_KILL_MARKS. The marks are unbuffered `O_APPEND` writes, so
they are in the file however the process dies. After a SIGKILL the last mark says where
the kill landed: none (before the session's first commit), `begin` or
`commit` (during a commit), `end` (between commits).

MAKER_GRAPH_KILL_STALL_AT=N holds commit N open (before its `COMMIT`) for
MAKER_GRAPH_KILL_STALL seconds after `commit N` is marked, so that a kill aimed into a
commit lands inside its transaction whatever the machine's speed.

MAKER_GRAPH_KILL_ASKS names a file that gets one byte each time the simulated model is
asked for a sample (written before the model answers), so its size is what the model
was asked for over every session, however they died: the count a run budget must bound
and the run's report must account for. Either variable may be left out.
"""

from __future__ import annotations

import os
import runpy
import sys
import time
from typing import Any

from maker_graph.runlog import sqlite as sqlite_log
from maker_graph.testing import simulated


def _append_only(variable: str) -> int | None:
    path = os.environ.get(variable)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if path else None


_FD = _append_only("MAKER_GRAPH_KILL_MARKS")
_ASKS = _append_only("MAKER_GRAPH_KILL_ASKS")
_STALL_AT = int(os.environ.get("MAKER_GRAPH_KILL_STALL_AT", "0"))
_STALL = float(os.environ.get("MAKER_GRAPH_KILL_STALL", "0"))
_commits = 0
_in_append = False


def _mark(text: str) -> None:
    if _FD is not None:
        os.write(_FD, f"{text}\n".encode())


class _Connection:
    """The writer's sqlite3 connection, with each batch's last write marked (and stalled)."""

    def __init__(self, db: Any) -> None:
        self._db = db

    def execute(self, sql: str, *args: Any) -> Any:
        result = self._db.execute(sql, *args)
        # The batch record is a commit's last write: marked and held open right after it,
        # so a kill there finds every write of the batch done and none committed (unless
        # the log commits in pieces, which the resume then reports as a torn batch).
        if _in_append and sql.lstrip().upper().startswith("INSERT INTO BATCHES"):
            _mark(f"commit {_commits}")
            if _commits == _STALL_AT:
                time.sleep(_STALL)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


_writable = sqlite_log.SqliteRunLog._writable
_append = sqlite_log.SqliteRunLog.append


def _marked_writable(self: Any) -> Any:
    return _Connection(_writable(self))


def _marked_append(self: Any, records: Any, checkpoint: Any) -> None:
    global _commits, _in_append
    _commits += 1
    _mark(f"begin {_commits}")
    _in_append = True
    try:
        _append(self, records, checkpoint)
    finally:
        _in_append = False
    _mark(f"end {_commits}")


_sample = simulated.SimulatedSampler.sample


async def _counted_sample(self: Any, step_input: Any, index: int) -> Any:
    if _ASKS is not None:
        os.write(_ASKS, b".")
    return await _sample(self, step_input, index)


if _FD is not None:
    sqlite_log.SqliteRunLog._writable = _marked_writable  # type: ignore[method-assign]
    sqlite_log.SqliteRunLog.append = _marked_append  # type: ignore[method-assign]
simulated.SimulatedSampler.sample = _counted_sample  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.argv = ["maker_graph", *sys.argv[1:]]
    runpy.run_module("maker_graph", run_name="__main__", alter_sys=True)
