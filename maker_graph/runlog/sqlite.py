"""The SQLite run log: one run per database file, WAL mode, one transaction per batch.

Durability: each batch (its steps, its checkpoint and its checksum) is one
transaction, so a process killed at any moment leaves whole batches only; with
`synchronous=NORMAL` (the default) a committed batch survives a killed process,
and `synchronous="FULL"` also survives a power cut at the price of an fsync per
batch. A second process cannot write the same run: the writer holds an
exclusive `flock` on a lock file next to the database, which the kernel
releases if the writer dies, and the lock file names the writer's pid.

Example:
    >>> import tempfile, pathlib
    >>> log = SqliteRunLog(pathlib.Path(tempfile.mkdtemp()) / "run.sqlite")
    >>> log.start("hanoi", {"disks": 3}).task
    'hanoi'
    >>> log.close()
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import stat
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from ..errors import RunLogError
from .base import (
    Checkpoint,
    RunLog,
    RunMeta,
    StepRecord,
    batch_checksum,
    check_batch,
    check_same_task,
    iter_steps,
    merge_settings,
    settings_json,
)

__all__ = ["DB_NAME", "SqliteRunLog"]

DB_NAME = "run.sqlite"
"""The database file's name inside a run directory."""

_SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    step          INTEGER PRIMARY KEY,
    action        TEXT    NOT NULL,
    state_hash    TEXT    NOT NULL,
    tally         TEXT    NOT NULL,
    samples       INTEGER NOT NULL,
    valid         INTEGER NOT NULL,
    red_flags     TEXT,
    rounds        INTEGER NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    decided_by    TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    batch        INTEGER PRIMARY KEY,
    first_step   INTEGER NOT NULL,
    last_step    INTEGER NOT NULL,
    checkpoint   TEXT    NOT NULL,
    checksum     TEXT    NOT NULL,
    committed_at REAL    NOT NULL
);
"""
_INSERT = "INSERT INTO steps VALUES (?,?,?,?,?,?,?,?,?,?,?)"
_COLUMNS = (
    "step, action, state_hash, tally, samples, valid, red_flags, rounds, "
    "input_tokens, output_tokens, decided_by"
)


_F = TypeVar("_F", bound=Callable[..., Any])


def _unreadable(log: SqliteRunLog, exc: BaseException) -> RunLogError:
    return RunLogError(
        f"the run log {log.location} is damaged and cannot be read ({exc}). Start over "
        f"with --fresh, or {log._corrupt_advice}"
    )


def _damage_reported(method: _F) -> _F:
    """Turn what SQLite raises on a damaged file (`database disk image is malformed`,
    `file is not a database`) and a checkpoint that is not valid JSON into one
    `RunLogError` naming the log, instead of a traceback."""

    @functools.wraps(method)
    def guarded(self: SqliteRunLog, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise _unreadable(self, exc) from exc
        except OSError as exc:  # a read-only or vanished run directory, a full disk
            raise RunLogError(f"cannot use the run log {self.location}: {exc}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, json.JSONDecodeError) or method.__name__ == "checkpoint":
                raise _unreadable(self, exc) from exc
            raise

    return guarded  # type: ignore[return-value]


class _FileLock:
    """An exclusive, non-blocking `flock` that dies with its holder (even under kill -9)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self, what: str) -> None:
        import fcntl

        # O_NOFOLLOW: a lock file replaced by a symlink must not make the writer
        # truncate and overwrite whatever the link points at.
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            if self.path.is_symlink():
                raise RunLogError(
                    f"the lock file {self.path} is a symbolic link; refusing to follow it "
                    "(remove it if you did not make it)"
                ) from None
            raise RunLogError(f"cannot create the lock file {self.path}: {exc.strerror}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise RunLogError(f"the lock file {self.path} is not a regular file; refusing it")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunLogError(
                f"{what} is being written by pid {holder}; wait for it to finish or stop it "
                "(two writers would corrupt the run)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


class SqliteRunLog(RunLog):
    """A run log in one SQLite database file.

    Args:
        path: the database file (created with its directory on `start`).
        readonly: open for reading only (no lock; `start`, `append` and `drop` refuse).
        synchronous: SQLite's `synchronous` setting: `"NORMAL"` survives a killed
            process, `"FULL"` also a power cut.
    """

    _corrupt_advice = "keep the file for inspection and use another run directory"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ) -> None:
        self.path = Path(path)
        self.location = str(self.path.parent if self.path.name == DB_NAME else self.path)
        self.readonly = readonly
        self.synchronous = synchronous
        self._lock = _FileLock(self.path.with_name(self.path.name + ".lock"))
        self._db: sqlite3.Connection | None = None
        self._next_step: int | None = None
        if readonly and not self.path.exists():
            raise RunLogError(f"no run log at {self.location}")

    # ------------------------------------------------------------------ connection

    def _connect(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        try:
            if self.readonly:
                db = sqlite3.connect(
                    f"{self.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None
                )
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, isolation_level=None)
                try:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute(f"PRAGMA synchronous={self.synchronous}")
                    db.executescript(_SCHEMA)
                except BaseException:  # not a database, say: close it, never leak it
                    db.close()
                    raise
        except sqlite3.Error as exc:
            raise RunLogError(f"cannot open the run log {self.location}: {exc}") from exc
        self._db = db
        return db

    def _writable(self) -> sqlite3.Connection:
        if self.readonly:
            raise RunLogError(f"the run log {self.location} was opened read-only")
        if self._lock.fd is None:
            raise RunLogError("call start() before writing to a run log")
        return self._connect()

    # ------------------------------------------------------------------ writing

    @_damage_reported
    def start(
        self,
        task: str,
        params: Mapping[str, Any],
        *,
        run_id: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> RunMeta:
        if self.readonly:
            raise RunLogError(f"the run log {self.location} was opened read-only")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._lock.fd is None:
            self._lock.acquire(f"the run in {self.location}")
        try:
            db = self._connect()
            meta = self.meta()
            if meta is None:
                meta = RunMeta.new(run_id or uuid.uuid4().hex, task, params, settings)
                rows = [
                    ("schema_version", _SCHEMA_VERSION),
                    ("run_id", meta.run_id),
                    ("task", meta.task),
                    ("params", json.dumps(meta.params, sort_keys=True)),
                    ("created", repr(meta.created)),
                    ("settings", settings_json(meta.settings)),
                ]
                db.execute("BEGIN IMMEDIATE")
                db.executemany("INSERT INTO meta VALUES (?, ?)", rows)
                db.execute("COMMIT")
            else:
                check_same_task(meta, task, params, self.location)
                if run_id is not None and run_id != meta.run_id:
                    raise RunLogError(f"{self.location} holds run {meta.run_id}, not {run_id}")
                self._verify_last_batch()
                # Every batch, not only the tail: a resume never builds on a corrupt log.
                self.verify()
                if settings is not None:
                    cp = self.checkpoint()
                    merged = merge_settings(
                        meta.settings,
                        settings,
                        0 if cp is None else cp.next_step,
                        self.location,
                    )
                    db.execute(
                        "INSERT OR REPLACE INTO meta VALUES ('settings', ?)",
                        (settings_json(merged),),
                    )
            cp = self.checkpoint()
            self._next_step = 0 if cp is None else cp.next_step
            return meta
        except BaseException:
            self.close()
            raise

    @_damage_reported
    def append(self, records: Sequence[StepRecord], checkpoint: Checkpoint) -> None:
        db = self._writable()
        expected = self._next_step if self._next_step is not None else 0
        first, last = check_batch(records, checkpoint, expected)
        cp_json = checkpoint.to_json()
        checksum = batch_checksum(records, cp_json)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                if records:
                    db.executemany(_INSERT, records)
                db.execute(
                    "INSERT INTO batches (first_step, last_step, checkpoint, checksum, "
                    "committed_at) VALUES (?, ?, ?, ?, ?)",
                    (first, last, cp_json, checksum, time.time()),
                )
                db.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (a full disk) may already have ended the transaction:
                # rolling back then would raise and hide the real cause.
                if db.in_transaction:
                    try:
                        db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise
        except sqlite3.Error as exc:
            raise RunLogError(f"cannot append to the run log {self.location}: {exc}") from exc
        self._next_step = last + 1

    @_damage_reported
    def reserve(self, total: int) -> None:
        db = self._writable()
        try:
            # One autocommit statement: in WAL mode it survives a killed process once
            # it returns, which is all a reservation needs.
            db.execute("INSERT OR REPLACE INTO meta VALUES ('reserved_samples', ?)", (str(total),))
        except sqlite3.Error as exc:
            raise RunLogError(f"cannot write to the run log {self.location}: {exc}") from exc

    @_damage_reported
    def reserved(self) -> int:
        if not self.path.exists():
            return 0
        try:
            row = (
                self._connect()
                .execute("SELECT value FROM meta WHERE key = 'reserved_samples'")
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise RunLogError(f"cannot read the run log {self.location}: {exc}") from exc
        return 0 if row is None else int(row[0])

    @_damage_reported
    def drop(self) -> None:
        """Delete the run: the database and its WAL files (takes the writer's lock first)."""
        if self.readonly:
            raise RunLogError(f"the run log {self.location} was opened read-only")
        if self._lock.fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire(f"the run in {self.location}")
        if self._db is not None:
            self._db.close()
            self._db = None
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.unlink(f"{self.path}{suffix}")
            except FileNotFoundError:
                pass
        self._next_step = None
        self.close()

    def close(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            finally:
                self._db = None
        self._lock.release()

    # ------------------------------------------------------------------ reading

    @_damage_reported
    def meta(self) -> RunMeta | None:
        if not self.path.exists():
            return None
        db = self._connect()
        try:
            data = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.OperationalError as exc:
            if self.readonly and "no such table" in str(exc):
                return None  # a reader that came before the writer created the tables
            raise RunLogError(f"{self.location} is not a maker_graph run log: {exc}") from exc
        except sqlite3.Error as exc:
            raise RunLogError(f"{self.location} is not a maker_graph run log: {exc}") from exc
        if "task" not in data:
            return None
        return RunMeta.from_stored(
            data["run_id"],
            data["task"],
            data["params"],
            data["created"],
            data.get("settings", "{}"),
        )

    @_damage_reported
    def checkpoint(self) -> Checkpoint | None:
        if not self.path.exists():
            return None
        try:
            row = (
                self._connect()
                .execute("SELECT checkpoint FROM batches ORDER BY batch DESC LIMIT 1")
                .fetchone()
            )
        except sqlite3.OperationalError as exc:
            if self.readonly and "no such table" in str(exc):
                return None  # a reader that came before the writer created the tables
            raise RunLogError(f"cannot read the run log {self.location}: {exc}") from exc
        return None if row is None else Checkpoint.from_json(row[0])

    def steps(self, start: int = 0, stop: int | None = None) -> Iterator[StepRecord]:
        if not self.path.exists():
            return
        db = self._connect()
        try:
            yield from self._iter_steps(db, start, stop)
        except sqlite3.DatabaseError as exc:
            raise _unreadable(self, exc) from exc

    def _iter_steps(
        self, db: sqlite3.Connection, start: int, stop: int | None
    ) -> Iterator[StepRecord]:
        yield from iter_steps(
            lambda at, end, limit: db.execute(
                f"SELECT {_COLUMNS} FROM steps WHERE step >= ? AND step < ? ORDER BY step LIMIT ?",
                (at, end, limit),
            ).fetchall(),
            start,
            stop,
        )

    @_damage_reported
    def _batches(self) -> Sequence[Sequence[Any]]:
        return (
            self._connect()
            .execute(
                "SELECT batch, first_step, last_step, checkpoint, checksum FROM batches "
                "ORDER BY batch"
            )
            .fetchall()
        )

    def _verify_last_batch(self) -> None:
        """Check the log's tail before writing to it (see `RunLog._recover_torn_tail`)."""
        db = self._connect()
        columns = "batch, first_step, last_step, checkpoint, checksum"

        def batch_before(batch: int) -> Any:
            return db.execute(
                f"SELECT {columns} FROM batches WHERE batch < ? ORDER BY batch DESC LIMIT 1",
                (batch,),
            ).fetchone()

        def drop_batches_from(batch: int, step: int) -> None:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM steps WHERE step >= ?", (step,))
            db.execute("DELETE FROM batches WHERE batch >= ?", (batch,))
            db.execute("COMMIT")

        def drop_steps_after(step: int) -> int:
            return db.execute("DELETE FROM steps WHERE step > ?", (step,)).rowcount

        tail = db.execute(
            f"SELECT {columns} FROM batches WHERE batch >= COALESCE((SELECT MAX(batch) "
            "FROM batches WHERE last_step >= first_step), 0) ORDER BY batch"
        ).fetchall()
        self._recover_torn_tail(
            tail,
            batch_before=batch_before,
            drop_batches_from=drop_batches_from,
            drop_steps_after=drop_steps_after,
        )

    def __repr__(self) -> str:
        return f"SqliteRunLog({str(self.path)!r})"
