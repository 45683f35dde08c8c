"""Corruption is refused, located, never carried forward (issue 14).

A changed row anywhere in an unfinished run stops `--resume` (not only in the tail);
`log export` checks each batch before printing it; random byte flips in the SQLite
file give one `error:` line, never a traceback and never wrong rows; a full disk is
reported as such; a symlinked lock file is refused; k cannot change on resume.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from maker_graph.cli import app, load_commands
from maker_graph.errors import RunLogError
from maker_graph.run import run_task_sync
from maker_graph.runlog import Checkpoint, StepRecord, open_run_log
from maker_graph.runlog.sqlite import DB_NAME
from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
from maker_graph.vote import VotePolicy

load_commands()
runner = CliRunner()
DISKS = 8  # 255 steps


def invoke(*args: str) -> tuple[int, str, str, BaseException | None]:
    result = runner.invoke(app, list(args))
    exc = result.exception if not isinstance(result.exception, SystemExit) else None
    return result.exit_code, result.stdout, result.stderr, exc


@pytest.fixture(scope="module")
def unfinished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hanoi run stopped by its sample budget after several batches."""
    where = tmp_path_factory.mktemp("unfinished") / "run"
    code, _, err, exc = invoke(
        "hanoi",
        "--disks",
        str(DISKS),
        "--run-dir",
        str(where),
        "--no-progress",
        "--max-total-samples",
        "400",
    )
    assert code == 1 and exc is None, err
    db = sqlite3.connect(where / DB_NAME)
    assert db.execute("SELECT COUNT(*) FROM batches").fetchone()[0] >= 1
    db.close()
    return where


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _sql(run_dir: Path, statement: str) -> None:
    db = sqlite3.connect(run_dir / DB_NAME)
    db.execute(statement)
    db.commit()
    db.close()


def _first_batch_end(run_dir: Path) -> int:
    db = sqlite3.connect(run_dir / DB_NAME)
    last = db.execute("SELECT last_step FROM batches ORDER BY batch LIMIT 1").fetchone()[0]
    db.close()
    return int(last)


def _small_batches_run(where: Path) -> Path:
    """An unfinished run in batches of 20 steps, so a change in batch 1 is not the tail."""
    task = HanoiTask(DISKS)
    run_task_sync(
        task,
        simulated_sampler(task),
        VotePolicy(k=2),
        run_log=str(where),
        chunk_size=20,
        max_steps=100,
    )
    return where


def test_resume_refuses_a_changed_row_in_the_first_batch(tmp_path: Path) -> None:
    run = _small_batches_run(tmp_path / "run")
    assert _first_batch_end(run) == 19
    _sql(run, "UPDATE steps SET action = '[1, 0, 1]' WHERE step = 3")
    code, out, err, exc = invoke(
        "hanoi", "--disks", str(DISKS), "--run-dir", str(run), "--no-progress", "--resume"
    )
    assert exc is None and code != 0, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "batch 1 " in lines[0], err
    with open_run_log(str(run), readonly=True) as log:
        assert log.last_step() == 99  # nothing dropped, nothing added


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE steps SET action = '[1, 0, ' WHERE step = 25",  # not JSON any more
        "UPDATE steps SET step = 1000 WHERE step = 25",  # a step number changed
        "DELETE FROM steps WHERE step = 25",  # a row lost
    ],
    ids=["garbled-row", "changed-step-number", "lost-row"],
)
def test_export_refuses_a_damaged_batch_and_prints_none_of_it(tmp_path: Path, damage: str) -> None:
    run = _small_batches_run(tmp_path / "run")
    _sql(run, damage)
    code, out, err, exc = invoke("log", "export", "--run-dir", str(run))
    assert exc is None and code == 1, (out, err)
    assert "batch 2 (steps 20..39)" in err, err
    rows = [json.loads(line) for line in out.splitlines()]  # every printed line is JSON
    assert [row["step"] for row in rows] == list(range(20))  # the intact batch only


def test_random_byte_flips_never_give_a_traceback_or_wrong_rows(
    unfinished: Path, tmp_path: Path
) -> None:
    size = (unfinished / DB_NAME).stat().st_size
    rng = random.Random(31)
    outcomes: dict[str, int] = {}
    for i in range(31):
        run = _copy(unfinished, tmp_path / f"flip{i}")
        offset = rng.randrange(size)
        with open(run / DB_NAME, "r+b") as f:
            f.seek(offset)
            byte = f.read(1)[0]
            f.seek(offset)
            f.write(bytes([byte ^ (1 << rng.randrange(8))]))
        code, _, err, exc = invoke("log", "verify", "--run-dir", str(run))
        assert exc is None, (offset, exc)
        assert code == 0 or err.startswith("error:"), (offset, err)
        verified = code == 0
        code, out, err, exc = invoke("log", "export", "--run-dir", str(run))
        assert exc is None, (offset, exc)
        rows = [json.loads(line) for line in out.splitlines()]
        assert [row["step"] for row in rows] == list(range(len(rows))), offset
        if verified:
            assert code == 0, (offset, err)
        else:
            assert code != 0 and err.startswith("error:"), (offset, err)
        code, out, err, exc = invoke(
            "hanoi", "--disks", str(DISKS), "--run-dir", str(run), "--no-progress", "--resume"
        )
        assert exc is None, (offset, exc)
        if not verified:
            # A damaged log is never continued: one error line, nothing run.
            assert code != 0 and err.startswith("error:") and "solved" not in out, (offset, err)
        else:
            # The flip hit nothing the run reads (free space, an index page that still
            # works): the run continues and ends correctly, or is refused in one line.
            assert "errors: 0" in out or err.startswith("error:"), (offset, out, err)
        key = "verified" if verified else "refused"
        outcomes[key] = outcomes.get(key, 0) + 1
    print(outcomes)
    assert outcomes.get("refused", 0) >= 3, outcomes  # the flips did hit real data


def test_a_file_that_is_not_a_database_is_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / DB_NAME).write_bytes(b"\x00garbage" * 1000)
    for args in (("log", "verify"), ("log", "export")):
        code, _, err, exc = invoke(*args, "--run-dir", str(run))
        assert exc is None and code != 0 and err.startswith("error:"), (args, err)
    code, _, err, exc = invoke(
        "hanoi", "--disks", "3", "--run-dir", str(run), "--no-progress", "--resume"
    )
    assert exc is None and code != 0 and err.startswith("error:"), err


def _records(first: int, n: int) -> list[StepRecord]:
    return [
        StepRecord(i, "[1,0,2]", "h" * 16, "[3]", 3, 3, None, 1, 10, 5, "vote")
        for i in range(first, first + n)
    ]


def test_a_full_disk_is_reported_as_full(tmp_path: Path) -> None:
    log = open_run_log(tmp_path)
    log.start("t", {})
    db = log._db  # type: ignore[attr-defined]
    assert db is not None
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages + 2}")  # a disk with two pages left
    with pytest.raises(RunLogError) as info:
        log.append(_records(0, 5000), Checkpoint(next_step=5000, state=0, previous_action=None))
    assert "full" in str(info.value) and "rollback" not in str(info.value), info.value
    log.close()
    with open_run_log(tmp_path, readonly=True) as reader:
        assert reader.last_step() is None  # the batch left nothing behind


def test_a_symlinked_lock_file_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me\n")
    (run / f"{DB_NAME}.lock").symlink_to(precious)
    with pytest.raises(RunLogError, match="symbolic link"):
        open_run_log(run).start("t", {})
    assert precious.read_text() == "keep me\n"


def test_k_cannot_change_on_resume_and_other_changes_are_segments(tmp_path: Path) -> None:
    task = HanoiTask(4)
    where = str(tmp_path / "run")
    run_task_sync(
        task,
        simulated_sampler(task),
        VotePolicy(k=3),
        run_log=where,
        max_steps=5,
        settings={"model": "a"},
    )
    with pytest.raises(RunLogError, match="k = 3 up to step 5"):
        run_task_sync(task, simulated_sampler(task), VotePolicy(k=1), run_log=where)
    with open_run_log(where, readonly=True) as log:
        meta = log.meta()
        assert meta is not None and meta.settings["k"] == 3  # the refusal stored nothing
    run_task_sync(
        task, simulated_sampler(task), VotePolicy(k=3), run_log=where, settings={"model": "b"}
    )
    with open_run_log(where, readonly=True) as log:
        meta = log.meta()
        assert meta is not None
        assert meta.settings["model"] == "b"
        assert meta.settings["segments"] == [{"from_step": 5, "changed": {"model": "b"}}]
