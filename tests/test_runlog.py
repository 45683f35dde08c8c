"""The SQLite run log: create and reopen, refuse another task, one writer at a time,
atomic checksummed batches, corruption detection, streaming reads, URL dispatch."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from maker_graph.errors import ConfigurationError, RunLogError
from maker_graph.runlog import Checkpoint, RunLog, SqliteRunLog, StepRecord, open_run_log
from maker_graph.runlog.base import batch_checksum
from maker_graph.runlog.sqlite import DB_NAME


def records(first: int, n: int, tag: str = "a") -> list[StepRecord]:
    return [
        StepRecord(i, f'"{tag}{i}"', f"{i:08x}", "[3]", 3, 3, None, 1, 10, 5, "vote")
        for i in range(first, first + n)
    ]


def checkpoint(next_step: int, done: bool = False) -> Checkpoint:
    return Checkpoint(
        next_step=next_step,
        state=[next_step],
        previous_action=next_step - 1,
        totals={"samples": 3 * next_step},
        done=done,
    )


def test_create_append_reopen_and_read(tmp_path: Path) -> None:
    with open_run_log(tmp_path) as log:
        assert log.meta() is None and log.checkpoint() is None and log.last_step() is None
        meta = log.start("countdown", {"from": 9}, settings={"k": 3})
        assert (meta.task, dict(meta.params), meta.settings["k"]) == ("countdown", {"from": 9}, 3)
        log.append(records(0, 5), checkpoint(5))
        log.append(records(5, 3), checkpoint(8, done=True))
        assert log.last_step() == 7
    assert (tmp_path / DB_NAME).exists()

    with open_run_log(tmp_path) as again:
        meta2 = again.start("countdown", {"from": 9})
        assert meta2.run_id == meta.run_id
        cp = again.checkpoint()
        assert cp is not None and cp.next_step == 8 and cp.done and cp.state == [8]
        assert [r.step for r in again.steps()] == list(range(8))
        assert [r.step for r in again.steps(3, 6)] == [3, 4, 5]
        assert next(iter(again.steps())).to_dict()["action"] == "a0"
        assert again.verify() == 8


def test_steps_stream_in_pages_in_order(tmp_path: Path) -> None:
    with open_run_log(tmp_path) as log:
        log.start("t", {})
        for first in range(0, 25_000, 5_000):
            log.append(records(first, 5_000), checkpoint(first + 5_000))
        seen = [r.step for r in log.steps()]
    assert seen == list(range(25_000))


def test_an_empty_batch_updates_the_checkpoint(tmp_path: Path) -> None:
    with open_run_log(tmp_path) as log:
        log.start("t", {})
        log.append(records(0, 2), checkpoint(2))
        log.append([], checkpoint(2, done=True))
        cp = log.checkpoint()
        assert cp is not None and cp.done and log.last_step() == 1


@pytest.mark.parametrize(
    ("task", "params", "match"),
    [("other", {"disks": 3}, "task 'hanoi', not 'other'"), ("hanoi", {"disks": 4}, "parameters")],
)
def test_refuses_another_task_or_other_parameters(
    tmp_path: Path, task: str, params: dict[str, int], match: str
) -> None:
    with open_run_log(tmp_path) as log:
        log.start("hanoi", {"disks": 3})
    with pytest.raises(RunLogError, match=match), open_run_log(tmp_path) as log:
        log.start(task, params)


def test_batches_must_continue_the_log(tmp_path: Path) -> None:
    with open_run_log(tmp_path) as log:
        log.start("t", {})
        log.append(records(0, 3), checkpoint(3))
        with pytest.raises(RunLogError, match="does not continue"):
            log.append(records(4, 2), checkpoint(6))  # a gap
        with pytest.raises(RunLogError, match="does not continue"):
            log.append(records(2, 2), checkpoint(4))  # a repeat
        with pytest.raises(RunLogError, match="checkpoint says"):
            log.append(records(3, 2), checkpoint(9))
        log.append(records(3, 2), checkpoint(5))
        assert log.last_step() == 4


def test_writing_needs_start_and_readers_cannot_write(tmp_path: Path) -> None:
    log = open_run_log(tmp_path)
    with pytest.raises(RunLogError, match="start"):
        log.append(records(0, 1), checkpoint(1))
    log.start("t", {})
    log.append(records(0, 1), checkpoint(1))
    log.close()
    reader = open_run_log(tmp_path, readonly=True)
    with pytest.raises(RunLogError, match="read-only"):
        reader.start("t", {})
    with pytest.raises(RunLogError, match="read-only"):
        reader.append(records(1, 1), checkpoint(2))
    assert reader.last_step() == 0
    reader.close()
    with pytest.raises(RunLogError, match="no run log"):
        open_run_log(tmp_path / "nowhere", readonly=True)


def test_a_second_writer_is_refused_while_the_first_holds_the_run(tmp_path: Path) -> None:
    first = open_run_log(tmp_path)
    first.start("t", {})
    second = open_run_log(tmp_path)
    with pytest.raises(RunLogError, match=rf"being written by pid {os.getpid()}"):
        second.start("t", {})
    # Readers are never blocked by the writer.
    reader = open_run_log(tmp_path, readonly=True)
    assert reader.meta() is not None
    reader.close()
    first.close()
    second.start("t", {})  # free once the first writer closed
    second.close()


HOLD = """
import sys, time
from maker_graph.runlog import open_run_log
log = open_run_log(sys.argv[1])
log.start("t", {})
print("locked", flush=True)
time.sleep(60)
"""


def test_the_lock_dies_with_a_killed_writer(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"  # bounded by the child's own sleep
        with pytest.raises(RunLogError, match=rf"pid {proc.pid}"), open_run_log(tmp_path) as log:
            log.start("t", {})
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    with open_run_log(tmp_path) as log:
        log.start("t", {})  # the kernel released the lock with the process


def _tamper(tmp_path: Path, sql: str) -> None:
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute(sql)
    db.commit()
    db.close()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE steps SET action = '\"zz\"' WHERE step = 7",
        "UPDATE batches SET checkpoint = replace(checkpoint, '\"next_step\":10', "
        "'\"next_step\":11') WHERE batch = 2",
    ],
)
def test_a_changed_last_batch_is_refused_on_start(tmp_path: Path, sql: str) -> None:
    with open_run_log(tmp_path) as log:
        log.start("t", {})
        log.append(records(0, 5), checkpoint(5))
        log.append(records(5, 5), checkpoint(10))
    _tamper(tmp_path, sql)
    # Every row is there, the content differs: corruption, not a torn write (issue 14).
    with pytest.raises(RunLogError, match="corrupt: batch 2"), open_run_log(tmp_path) as log:
        log.start("t", {})
    with open_run_log(tmp_path, readonly=True) as reader:
        assert reader.last_step() in (9, 10)  # nothing dropped


@pytest.mark.parametrize("sql", ["DELETE FROM steps WHERE step = 9"])
def test_a_torn_last_batch_is_detected_and_dropped_on_start(tmp_path: Path, sql: str) -> None:
    with open_run_log(tmp_path) as log:
        log.start("t", {})
        log.append(records(0, 5), checkpoint(5))
        log.append(records(5, 5), checkpoint(10))
    _tamper(tmp_path, sql)
    reader = open_run_log(tmp_path, readonly=True)
    with pytest.raises(RunLogError, match="corrupt: batch 2"):
        reader.verify()
    reader.close()
    # A writer treats a last batch that fails its checksum as a torn write: it drops
    # it (those steps are decided again) and continues from the batch before.
    with open_run_log(tmp_path) as log:
        log.start("t", {})
        assert log.last_step() == 4
        assert [r.step for r in log.steps()] == list(range(5))
        assert log.verify() == 5
        log.append(records(5, 5), checkpoint(10))


def test_an_earlier_corrupt_batch_is_found_by_verify(tmp_path: Path) -> None:
    with open_run_log(tmp_path) as log:
        log.start("t", {})
        log.append(records(0, 5), checkpoint(5))
        log.append(records(5, 5), checkpoint(10))
    _tamper(tmp_path, "UPDATE steps SET samples = 4 WHERE step = 1")
    with open_run_log(tmp_path, readonly=True) as log, pytest.raises(RunLogError, match="batch 1"):
        log.verify()
    # A resume checks every batch too (issue 14): it refuses, naming the batch, and
    # drops nothing.
    with pytest.raises(RunLogError, match="batch 1"), open_run_log(tmp_path) as log:
        log.start("t", {})
    with open_run_log(tmp_path, readonly=True) as reader:
        assert reader.last_step() == 9


def test_two_bad_batches_are_corruption_and_nothing_is_dropped(tmp_path: Path) -> None:
    with open_run_log(tmp_path) as log:
        log.start("t", {})
        log.append(records(0, 5), checkpoint(5))
        log.append(records(5, 5), checkpoint(10))
    _tamper(tmp_path, "UPDATE steps SET samples = 4 WHERE step IN (1, 7)")
    with pytest.raises(RunLogError, match="corrupt"), open_run_log(tmp_path) as log:
        log.start("t", {})
    with open_run_log(tmp_path, readonly=True) as reader:
        assert reader.last_step() == 9  # nothing dropped


def test_rows_beyond_the_last_checkpoint_are_dropped(tmp_path: Path) -> None:
    with open_run_log(tmp_path) as log:
        log.start("t", {})
        log.append(records(0, 5), checkpoint(5))
    _tamper(tmp_path, "INSERT INTO steps VALUES (5, '1', 'x', '[3]', 3, 3, NULL, 1, 0, 0, 'vote')")
    with open_run_log(tmp_path) as log:
        log.start("t", {})
        assert [r.step for r in log.steps()] == list(range(5))
        log.append(records(5, 1), checkpoint(6))


def test_checksum_covers_records_and_checkpoint() -> None:
    base = batch_checksum(records(0, 3), checkpoint(3).to_json())
    assert base == batch_checksum(records(0, 3), checkpoint(3).to_json())
    assert base != batch_checksum(records(0, 3, tag="b"), checkpoint(3).to_json())
    assert base != batch_checksum(records(0, 3), checkpoint(3, done=True).to_json())


def test_drop_deletes_the_run(tmp_path: Path) -> None:
    with open_run_log(tmp_path) as log:
        log.start("t", {})
        log.append(records(0, 3), checkpoint(3))
    open_run_log(tmp_path).drop()
    assert not (tmp_path / DB_NAME).exists()
    with open_run_log(tmp_path) as log:
        log.start("u", {})  # a new run of another task is fine now
        assert log.checkpoint() is None


def test_a_killed_transaction_leaves_whole_batches(tmp_path: Path) -> None:
    # A writer killed between BEGIN and COMMIT: the log holds only the batches before.
    script = f"""
import os, signal
from maker_graph.runlog import open_run_log, Checkpoint, StepRecord
log = open_run_log({str(tmp_path)!r})
log.start("t", {{}})
rec = lambda i: StepRecord(i, "1", "x", "[3]", 3, 3, None, 1, 0, 0, "vote")
log.append([rec(i) for i in range(10)], Checkpoint(next_step=10, state=0, previous_action=None))
db = log._db
db.execute("BEGIN IMMEDIATE")
db.executemany("INSERT INTO steps VALUES (?,?,?,?,?,?,?,?,?,?,?)", [rec(i) for i in range(10, 20)])
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert proc.returncode == -signal.SIGKILL
    with open_run_log(tmp_path) as log:
        log.start("t", {})
        assert log.last_step() == 9
        assert [r.step for r in log.steps()] == list(range(10))


def test_open_run_log_dispatches_on_the_target(tmp_path: Path) -> None:
    log = open_run_log(tmp_path / "run")
    assert isinstance(log, SqliteRunLog) and log.path == tmp_path / "run" / DB_NAME
    url = open_run_log(f"sqlite:///{tmp_path}/x.db")  # four slashes: an absolute path
    assert isinstance(url, SqliteRunLog) and url.path == tmp_path / "x.db"
    relative = open_run_log("sqlite:///runs/x.db")
    assert isinstance(relative, SqliteRunLog) and relative.path == Path("runs/x.db")
    assert open_run_log(log) is log
    with pytest.raises(ConfigurationError, match="unknown run log URL"):
        open_run_log("mysql://host/db")
    with pytest.raises(ConfigurationError, match="sqlite:///"):
        open_run_log("sqlite://host/x.db")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigurationError, match="not a run directory"):
        open_run_log(tmp_path / "file")
    assert issubclass(SqliteRunLog, RunLog)


def test_a_file_that_is_not_a_run_log_is_refused(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_text("this is not sqlite" * 100)
    with pytest.raises(RunLogError), open_run_log(tmp_path) as log:
        log.start("t", {})


def test_full_synchronous_mode_and_timing(tmp_path: Path) -> None:
    # A 2,000-step batch commits in well under a second even with an fsync per batch.
    with open_run_log(tmp_path, synchronous="FULL") as log:
        log.start("t", {})
        started = time.perf_counter()
        log.append(records(0, 2_000), checkpoint(2_000))
        assert time.perf_counter() - started < 5.0
        assert log.last_step() == 1_999
