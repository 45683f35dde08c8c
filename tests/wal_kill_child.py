"""Run `python -m maker_graph ...` and hold it still right after a batch commit, for the
WAL-truncation test (a helper script, not a test file; the test starts it in place of the
CLI and kills it with SIGKILL once it is held).

    MAKER_GRAPH_WAL_MARKS=FILE MAKER_GRAPH_WAL_HOLD_AT=N python tests/wal_kill_child.py hanoi ...

Each batch commit of the SQLite run log writes `commit S` to FILE once `append` returned
(S: the batch checkpoint's next step, so the steps committed so far). The first commit
with S >= N then writes `held S` and sleeps until the test kills the process, so the
kill finds the run unfinished with a batch of steps as the log's newest write, however
fast or slow the machine: the test waits for the mark, not for a number of steps in a
time. Nothing runs between the commit and the hold: no further step is decided and no
sample asked for (the simulated model is instant and the run has no sample budget, so
the log holds no reservations either).

The marks are unbuffered `O_APPEND` writes, in FILE however the process dies.
"""

from __future__ import annotations

import os
import runpy
import sys
import time
from typing import Any

from maker_graph.runlog import sqlite as sqlite_log

HOLD_SECONDS = 120  # far past the test's wait; the test kills the child long before

_MARKS = os.open(os.environ["MAKER_GRAPH_WAL_MARKS"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
_HOLD_AT = int(os.environ["MAKER_GRAPH_WAL_HOLD_AT"])
_append = sqlite_log.SqliteRunLog.append


def _held_append(self: Any, records: Any, checkpoint: Any) -> None:
    _append(self, records, checkpoint)  # committed once it returns
    os.write(_MARKS, f"commit {checkpoint.next_step}\n".encode())
    if checkpoint.next_step >= _HOLD_AT and not checkpoint.done:
        os.write(_MARKS, f"held {checkpoint.next_step}\n".encode())
        time.sleep(HOLD_SECONDS)
        # Never killed: the test is gone or broken. Stop without writing anything more.
        os._exit(3)


sqlite_log.SqliteRunLog.append = _held_append  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.argv = ["maker_graph", *sys.argv[1:]]
    runpy.run_module("maker_graph", run_name="__main__", alter_sys=True)
