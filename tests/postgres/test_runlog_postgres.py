"""The PostgreSQL run log: isolation by run id, one writer per run, checksums, reconnects."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import psycopg
import pytest

from maker_graph.errors import ConfigurationError, RunLogError
from maker_graph.runlog import open_run_log
from maker_graph.runlog.base import Checkpoint, StepRecord
from maker_graph.runlog.postgres import PostgresRunLog, list_runs, redact, split_url

# No unraisable-warning ignore here: every log a test opens is closed (a `with`
# block also closes one whose start or read raised), so a psycopg connection
# "deleted while still open" fails the test that leaked it.
pytestmark = pytest.mark.postgres


def records(first: int, n: int, tag: str = "x") -> list[StepRecord]:
    return [
        StepRecord(i, f"[{i}]", tag, "[3]", 3, 3, None, 1, 10, 5, "vote")
        for i in range(first, first + n)
    ]


def cp(next_step: int) -> Checkpoint:
    return Checkpoint(
        next_step=next_step,
        state=[next_step],
        previous_action=[next_step - 1],
        totals={"samples": 3 * next_step},
    )


def write(log: PostgresRunLog, first: int, n: int, tag: str = "x") -> None:
    log.append(records(first, n, tag), cp(first + n))


def test_open_run_log_selects_postgres(postgres_url: str) -> None:
    log = open_run_log(f"{postgres_url}?run_id=r1")
    assert isinstance(log, PostgresRunLog)
    assert log.location.endswith("#r1")
    log.close()


def test_round_trip_and_resume_position(postgres_url: str) -> None:
    with PostgresRunLog(postgres_url, run_id="r1") as log:
        meta = log.start("hanoi", {"disks": 3}, settings={"k": 3})
        assert meta.run_id == "r1" and meta.params == {"disks": 3}
        write(log, 0, 4)
        write(log, 4, 3)
        assert log.last_step() == 6
        assert log.verify() == 7
    with PostgresRunLog(postgres_url, run_id="r1") as log:
        log.start("hanoi", {"disks": 3})
        checkpoint = log.checkpoint()
        assert checkpoint is not None and checkpoint.next_step == 7
        assert checkpoint.totals == {"samples": 21}
        write(log, 7, 1)
        assert [r.step for r in log.steps()] == list(range(8))
        assert [r.step for r in log.steps(2, 5)] == [2, 3, 4]
        assert list(log.steps())[3] == records(3, 1)[0]


def test_runs_sharing_a_database_are_isolated(postgres_url: str) -> None:
    a = PostgresRunLog(postgres_url, run_id="a")
    b = PostgresRunLog(postgres_url, run_id="b")
    a.start("hanoi", {"disks": 3})
    b.start("hanoi", {"disks": 4})  # a different run may hold other parameters
    write(a, 0, 5, "a")
    write(b, 0, 2, "b")
    write(a, 5, 1, "a")
    assert {r.state_hash for r in a.steps()} == {"a"} and a.last_step() == 5
    assert {r.state_hash for r in b.steps()} == {"b"} and b.last_step() == 1
    assert a.verify() == 6 and b.verify() == 2
    b.drop()
    assert a.verify() == 6
    assert [m.run_id for m in list_runs(postgres_url)] == ["a"]
    a.close()


def test_second_writer_gets_a_clear_message(postgres_url: str) -> None:
    first = PostgresRunLog(postgres_url, run_id="shared")
    first.start("hanoi", {"disks": 3})
    second = PostgresRunLog(postgres_url, run_id="shared")
    with pytest.raises(RunLogError, match=r"run shared .* is being written by pid \d+"):
        second.start("hanoi", {"disks": 3})
    # Reading while it is written is fine.
    reader = PostgresRunLog(postgres_url, run_id="shared", readonly=True)
    assert reader.meta() is not None
    with pytest.raises(RunLogError, match="read-only"):
        reader.start("hanoi", {"disks": 3})
    reader.close()
    first.close()
    second.start("hanoi", {"disks": 3})  # free once the first writer is gone
    second.close()
    reader.close()


def test_lock_is_freed_when_the_writer_is_killed(postgres_url: str) -> None:
    child = textwrap.dedent(
        f"""
        import sys, time
        from maker_graph.runlog.postgres import PostgresRunLog
        log = PostgresRunLog({postgres_url!r}, run_id="k")
        log.start("hanoi", {{"disks": 3}})
        print("locked", flush=True)
        time.sleep(60)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", child], stdout=subprocess.PIPE, text=True
    ) as proc:  # the with closes the pipe
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "locked"
            with (
                pytest.raises(RunLogError, match="being written by pid"),
                PostgresRunLog(postgres_url, run_id="k") as refused,
            ):
                refused.start("hanoi", {"disks": 3})
            proc.kill()
            proc.wait(timeout=10)
            deadline = time.monotonic() + 10
            while True:
                try:
                    with PostgresRunLog(postgres_url, run_id="k") as log:
                        log.start("hanoi", {"disks": 3})
                    break
                except RunLogError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            proc.kill()
            proc.wait(timeout=10)


def test_gaps_repeats_and_other_tasks_are_refused(postgres_url: str) -> None:
    with PostgresRunLog(postgres_url, run_id="g") as log:
        log.start("hanoi", {"disks": 3})
        write(log, 0, 3)
        with pytest.raises(RunLogError, match="does not continue"):
            write(log, 2, 2)  # repeats step 2
        with pytest.raises(RunLogError, match="does not continue"):
            write(log, 4, 1)  # skips step 3
        with pytest.raises(RunLogError, match="checkpoint says next step"):
            log.append(records(3, 1), cp(7))
        assert log.verify() == 3
    with pytest.raises(RunLogError, match="not 'multiply'"):
        PostgresRunLog(postgres_url, run_id="g").start("multiply", {"disks": 3})
    with pytest.raises(RunLogError, match="parameters"):
        PostgresRunLog(postgres_url, run_id="g").start("hanoi", {"disks": 4})


def _three_batches(url: str, run_id: str) -> None:
    with PostgresRunLog(url, run_id=run_id) as log:
        log.start("hanoi", {"disks": 3})
        write(log, 0, 3)
        write(log, 3, 3)
        write(log, 6, 2)


def _sql(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


@pytest.mark.parametrize(
    "damage",
    ["DELETE FROM maker_graph.steps WHERE run_id = 'c' AND step = 7"],  # torn: a row short
    ids=["missing-row"],
)
def test_a_torn_last_batch_is_detected_then_dropped_and_redone(
    postgres_url: str, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    _three_batches(postgres_url, "c")
    _sql(postgres_url, damage)
    # Detected: a reader's verify refuses it, nothing is silently accepted...
    with (
        pytest.raises(RunLogError, match=r"corrupt: batch 3 \(steps 6..7\)"),
        PostgresRunLog(postgres_url, run_id="c", readonly=True) as reader,
    ):
        reader.verify()
    # ... and the next writer drops the torn batch (saying so) and redoes its steps.
    with caplog.at_level("WARNING", logger="maker_graph.runlog"):
        log = PostgresRunLog(postgres_url, run_id="c")
        log.start("hanoi", {"disks": 3})
    assert "dropped the torn last batch 3 (steps 6..7)" in caplog.text
    assert log.last_step() == 5 and log.verify() == 6
    write(log, 6, 2)
    assert [r.step for r in log.steps()] == list(range(8)) and log.verify() == 8
    log.close()


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE maker_graph.steps SET tally = '[2, 1]' WHERE run_id = 'c' AND step = 7",
        "UPDATE maker_graph.batches SET checkpoint = '{}' WHERE run_id = 'c' AND batch = 3",
    ],
    ids=["changed-row", "bad-checkpoint"],
)
def test_a_changed_last_batch_is_refused(postgres_url: str, damage: str) -> None:
    """All rows there, content changed: corruption, not a torn write (issue 14)."""
    _three_batches(postgres_url, "c")
    _sql(postgres_url, damage)
    with pytest.raises(RunLogError, match=r"corrupt: batch 3 \(steps 6..7\)"):
        PostgresRunLog(postgres_url, run_id="c").start("hanoi", {"disks": 3})
    with psycopg.connect(postgres_url) as conn:  # nothing dropped: the evidence is kept
        rows = conn.execute("SELECT COUNT(*) FROM maker_graph.steps WHERE run_id = 'c'").fetchone()
    assert rows is not None and rows[0] == 8


def test_empty_batches_do_not_hide_a_torn_batch_before_them(postgres_url: str) -> None:
    _three_batches(postgres_url, "e")
    with PostgresRunLog(postgres_url, run_id="e") as log:  # two sessions that ended
        log.start("hanoi", {"disks": 3})  # right after a commit
        log.append([], cp(8))
    with PostgresRunLog(postgres_url, run_id="e") as log:
        log.start("hanoi", {"disks": 3})
        log.append([], cp(8))
    _sql(postgres_url, "DELETE FROM maker_graph.steps WHERE run_id = 'e' AND step = 7")
    with PostgresRunLog(postgres_url, run_id="e") as log:
        log.start("hanoi", {"disks": 3})
        assert log.last_step() == 5 and log.verify() == 6


def test_step_rows_without_their_batch_are_dropped(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    _three_batches(postgres_url, "o")
    _sql(postgres_url, "DELETE FROM maker_graph.batches WHERE run_id = 'o' AND batch = 3")
    with caplog.at_level("WARNING", logger="maker_graph.runlog"):
        log = PostgresRunLog(postgres_url, run_id="o")
        log.start("hanoi", {"disks": 3})
    assert "dropped 2 step rows after the last committed batch" in caplog.text
    assert log.last_step() == 5
    write(log, 6, 2)
    assert log.verify() == 8
    log.close()


def test_corruption_beyond_the_last_batch_is_refused(postgres_url: str) -> None:
    _three_batches(postgres_url, "d")
    _sql(postgres_url, "UPDATE maker_graph.steps SET tally = '[9]' WHERE run_id = 'd' AND step = 1")
    # A resume checks every batch (issue 14): an older bad batch refuses it too.
    with pytest.raises(RunLogError, match=r"corrupt: batch 1 \(steps 0..2\)"):
        PostgresRunLog(postgres_url, run_id="d").start("hanoi", {"disks": 3})
    # Two bad batches at the tail are not a torn write: refuse rather than drop more.
    _sql(postgres_url, "UPDATE maker_graph.steps SET tally = '[9]' WHERE run_id = 'd' AND step = 7")
    _sql(postgres_url, "UPDATE maker_graph.steps SET tally = '[9]' WHERE run_id = 'd' AND step = 4")
    with pytest.raises(RunLogError, match=r"corrupt: batch 3 \(steps 6..7\)"):
        PostgresRunLog(postgres_url, run_id="d").start("hanoi", {"disks": 3})
    with PostgresRunLog(postgres_url, run_id="d", readonly=True) as log:
        assert log.last_step() == 7  # nothing was dropped: the evidence is kept


def test_readers_find_the_only_run_or_ask_for_one(postgres_url: str) -> None:
    with PostgresRunLog(postgres_url, readonly=True) as empty:
        assert empty.meta() is None
    with PostgresRunLog(postgres_url) as log:
        meta = log.start("hanoi", {"disks": 3})
        write(log, 0, 2)
    with PostgresRunLog(postgres_url, readonly=True) as reader:
        meta2 = reader.meta()
        assert meta2 is not None and meta2.run_id == meta.run_id
        assert len(list(reader.steps())) == 2
    with PostgresRunLog(postgres_url, run_id="other") as log:
        log.start("hanoi", {"disks": 3})
    with (
        pytest.raises(RunLogError, match=r"several runs .*\?run_id="),
        PostgresRunLog(postgres_url, readonly=True) as reader,
    ):
        reader.meta()


def test_writer_reconnects_after_losing_its_connection(postgres_url: str) -> None:
    log = PostgresRunLog(postgres_url, run_id="re")
    log.start("hanoi", {"disks": 3})
    write(log, 0, 2)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'maker_graph' AND pid <> pg_backend_pid()"
        )
    write(log, 2, 2)  # reconnects, re-takes the lock, goes on
    assert [r.step for r in log.steps()] == [0, 1, 2, 3]
    assert log.verify() == 4
    log.close()


def test_a_writer_that_lost_its_run_to_another_stops(postgres_url: str) -> None:
    log = PostgresRunLog(postgres_url, run_id="lost")
    log.start("hanoi", {"disks": 3})
    write(log, 0, 2)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'maker_graph' AND pid <> pg_backend_pid()"
        )
    with PostgresRunLog(postgres_url, run_id="lost") as usurper:
        usurper.start("hanoi", {"disks": 3})
        write(usurper, 2, 1)
    with pytest.raises(RunLogError, match="another writer took over"):
        write(log, 2, 2)
    log.close()
    with PostgresRunLog(postgres_url, run_id="lost") as reader:
        assert [r.step for r in reader.steps()] == [0, 1, 2]


def test_url_parameters_and_redaction() -> None:
    url, run_id, schema = split_url("postgresql://u:secret@h:5/db?run_id=r&schema=s1&sslmode=off")
    assert (url, run_id, schema) == ("postgresql://u:secret@h:5/db?sslmode=off", "r", "s1")
    assert redact(url) == "postgresql://u:***@h:5/db?sslmode=off"
    with pytest.raises(ConfigurationError, match="schema"):
        split_url("postgresql://h/db?schema=a;drop")
    log = PostgresRunLog("postgresql://u:secret@127.0.0.1:1/db?run_id=r")
    assert "secret" not in log.location and "secret" not in repr(log)


def test_unreachable_server_is_one_clear_error() -> None:
    log = PostgresRunLog("postgresql://postgres@127.0.0.1:1/db?run_id=r", connect_timeout=2)
    with pytest.raises(RunLogError, match="cannot connect to postgresql://postgres@127.0.0.1:1"):
        log.start("hanoi", {"disks": 3})


def test_schema_parameter_keeps_runs_apart(postgres_url: str) -> None:
    with PostgresRunLog(f"{postgres_url}?schema=team_a&run_id=x") as a:
        a.start("hanoi", {"disks": 3})
        write(a, 0, 1)
    with PostgresRunLog(f"{postgres_url}?schema=team_b&run_id=x") as b:
        b.start("hanoi", {"disks": 3})  # the same run id in another schema is another run
        assert b.last_step() is None
