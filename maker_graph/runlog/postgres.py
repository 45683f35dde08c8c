"""The PostgreSQL run log: many runs in one database, each isolated by its run id.

Runs started on several machines can share one database; every row carries its
run id, and a run's steps, batches and metadata are read and written only under
that id. Each batch (its steps, its checkpoint and its checksum) is one
transaction, so a killed writer leaves whole batches only, and `verify`
recomputes every batch's checksum from the rows read back (the same BLAKE2b
checksum as the SQLite backend).

One writer per run: `start` takes a session-level advisory lock keyed on the
run id, on the same connection that then writes every batch. A second process
started on the same run gets `RunLogError` naming the holder. If the writer dies
(even under `kill -9`) its connection closes and PostgreSQL releases the lock at
once; if the connection is lost while the writer lives, its writes fail rather
than race a new writer, and it reconnects at most once, re-taking the lock and
checking whether its last batch was committed before going on.

The URL is a libpq URL plus two optional query parameters of our own:
`run_id` (which run; otherwise given to `start` or by the `run_id` argument)
and `schema` (default `maker_graph`, created if missing).

Example:
    >>> log = PostgresRunLog("postgresql://postgres@127.0.0.1:5432/runs?run_id=demo")
    >>> log.location  # doctest: +SKIP
    'postgresql://postgres@127.0.0.1:5432/runs#demo'
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..errors import RunLogError
from ._postgres_tables import COLUMNS, DDL, DDL_LOCK, SCHEMA_VERSION
from ._postgres_url import DEFAULT_SCHEMA, check_run_id, redact, split_url
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

try:
    import psycopg
    from psycopg import sql
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the PostgreSQL run log needs psycopg 3: pip install 'maker-graph[postgres]'"
    ) from _exc

__all__ = ["DEFAULT_SCHEMA", "PostgresRunLog", "list_runs", "redact", "split_url"]


def _one_line(exc: BaseException) -> str:
    # libpq's messages span lines ("... Is the server running ...?"): the CLI shows one.
    return " ".join(str(exc).split())


def _lock_key(schema: str, run_id: str) -> int:
    # A signed 64-bit key for pg_advisory_lock, stable across processes and machines.
    digest = hashlib.blake2b(f"maker_graph|{schema}|{run_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _writer_name() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


class PostgresRunLog(RunLog):
    """A run log for one run, stored in a PostgreSQL database that may hold many runs.

    Args:
        url: a `postgresql://` URL; `?run_id=` and `?schema=` are read and removed.
        run_id: the run (overrides the URL's). Without one, `start` makes a new run
            id (see `meta().run_id`), and readers use the database's only run.
        readonly: read only: no lock is taken and nothing can be written.
        connect_timeout: seconds to wait for the server.

    Raises:
        ConfigurationError: the URL is not a PostgreSQL URL.

    Example:
        >>> log = PostgresRunLog("postgresql://postgres@127.0.0.1/runs", run_id="hanoi-20")
        >>> log.run_id
        'hanoi-20'
    """

    _corrupt_advice = "keep the rows for inspection and use another run id"

    def __init__(
        self,
        url: str,
        *,
        run_id: str | None = None,
        readonly: bool = False,
        connect_timeout: float = 10.0,
    ) -> None:
        self.url, url_run, self.schema = split_url(url)
        if run_id is not None:
            check_run_id(run_id)
        self.run_id: str | None = run_id or url_run
        self.readonly = readonly
        self.connect_timeout = connect_timeout
        self._conn: psycopg.Connection[Any] | None = None
        self._locked = False
        self._next_step: int | None = None
        self._next_batch = 1

    @property
    def location(self) -> str:  # type: ignore[override]
        """Where the run lives, for messages: the URL without password, `#run id`."""
        where = redact(self.url)
        return f"{where}#{self.run_id}" if self.run_id else where

    # ------------------------------------------------------------------ connection

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(1, int(self.connect_timeout)),
                application_name="maker_graph",
            )
        except psycopg.Error as exc:
            raise RunLogError(f"cannot connect to {redact(self.url)}: {_one_line(exc)}") from exc
        self._conn = conn
        return conn

    def _t(self, table: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(table))

    def _ensure_schema(self, conn: psycopg.Connection[Any]) -> None:
        ddl = sql.SQL(DDL).format(schema=sql.Identifier(self.schema))
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK,))
            conn.execute(ddl)

    def _tables_exist(self, conn: psycopg.Connection[Any]) -> bool:
        row = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (f'"{self.schema}".batches',)
        ).fetchone()
        return bool(row and row[0])

    def _reader(self) -> psycopg.Connection[Any] | None:
        """The connection for reading, with `run_id` resolved; None if there is no run yet."""
        conn = self._connect()
        if not self._tables_exist(conn):
            return None
        if self.run_id is None:
            rows = conn.execute(
                sql.SQL("SELECT run_id FROM {} ORDER BY created LIMIT 6").format(self._t("runs"))
            ).fetchall()
            if not rows:
                return None
            if len(rows) > 1:
                names = ", ".join(r[0] for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
                raise RunLogError(
                    f"{redact(self.url)} holds several runs ({names}); "
                    "choose one with ?run_id=... in the URL"
                )
            self.run_id = rows[0][0]
        return conn

    # ------------------------------------------------------------------ locking

    def _acquire(self, conn: psycopg.Connection[Any], run_id: str) -> None:
        row = conn.execute(
            "SELECT pg_try_advisory_lock(%s)", (_lock_key(self.schema, run_id),)
        ).fetchone()
        if not (row and row[0]):
            holder = "another process"
            if self._tables_exist(conn):
                found = conn.execute(
                    sql.SQL("SELECT writer, writer_since FROM {} WHERE run_id = %s").format(
                        self._t("runs")
                    ),
                    (run_id,),
                ).fetchone()
                if found and found[0]:
                    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(found[1] or 0))
                    holder = f"{found[0]} (since {since})"
            raise RunLogError(
                f"run {run_id} in {redact(self.url)} is being written by {holder}; wait for "
                "it to finish or stop it (two writers would corrupt the run)"
            )
        self._locked = True
        # Let the server notice a writer whose machine vanished, so its lock is freed.
        for setting, value in (
            ("tcp_keepalives_idle", "30"),
            ("tcp_keepalives_interval", "10"),
            ("tcp_keepalives_count", "3"),
        ):
            conn.execute(sql.SQL("SET {} = {}").format(sql.Identifier(setting), sql.Literal(value)))

    def _release(self) -> None:
        if self._locked and self._conn is not None and not self._conn.closed:
            try:
                self._conn.execute(
                    "SELECT pg_advisory_unlock(%s)", (_lock_key(self.schema, self.run_id or ""),)
                )
            except psycopg.Error:
                pass  # the connection is going away; the server frees the lock with it
        self._locked = False

    def _writable(self) -> psycopg.Connection[Any]:
        if self.readonly:
            raise RunLogError(f"the run log {self.location} was opened read-only")
        if not self._locked or self.run_id is None:
            raise RunLogError("call start() before writing to a run log")
        return self._connect()

    # ------------------------------------------------------------------ writing

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
        if run_id is not None:
            check_run_id(run_id)
        if run_id is not None and self.run_id is not None and run_id != self.run_id:
            raise RunLogError(f"{self.location} is run {self.run_id}, not {run_id}")
        self.run_id = self.run_id or run_id or uuid.uuid4().hex
        try:
            conn = self._connect()
            self._ensure_schema(conn)
            if not self._locked:
                self._acquire(conn, self.run_id)
            meta = self.meta()
            if meta is None:
                meta = RunMeta.new(self.run_id, task, params, settings)
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (run_id, task, params, created, settings, "
                        "schema_version, writer, writer_since) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)"
                    ).format(self._t("runs")),
                    (
                        meta.run_id,
                        meta.task,
                        json.dumps(meta.params, sort_keys=True),
                        meta.created,
                        settings_json(meta.settings),
                        SCHEMA_VERSION,
                        _writer_name(),
                        time.time(),
                    ),
                )
            else:
                check_same_task(meta, task, params, self.location)
                self._verify_last_batch()
                # Every batch, not only the tail: a resume never builds on a corrupt log.
                self.verify()
                merged = None
                if settings is not None:
                    cp = self.checkpoint()
                    merged = merge_settings(
                        meta.settings,
                        settings,
                        0 if cp is None else cp.next_step,
                        self.location,
                    )
                conn.execute(
                    sql.SQL(
                        "UPDATE {} SET writer = %s, writer_since = %s, "
                        "settings = COALESCE(%s, settings) WHERE run_id = %s"
                    ).format(self._t("runs")),
                    (
                        _writer_name(),
                        time.time(),
                        None if merged is None else settings_json(merged),
                        self.run_id,
                    ),
                )
            self._load_position()
            return meta
        except psycopg.Error as exc:
            self.close()
            raise RunLogError(
                f"cannot start the run log {self.location}: {_one_line(exc)}"
            ) from exc
        except BaseException:
            self.close()
            raise

    def _load_position(self) -> None:
        conn = self._connect()
        row = conn.execute(
            sql.SQL(
                "SELECT batch, last_step FROM {} WHERE run_id = %s ORDER BY batch DESC LIMIT 1"
            ).format(self._t("batches")),
            (self.run_id,),
        ).fetchone()
        self._next_batch = 1 if row is None else int(row[0]) + 1
        self._next_step = 0 if row is None else int(row[1]) + 1

    def append(self, records: Sequence[StepRecord], checkpoint: Checkpoint) -> None:
        self._writable()
        expected = self._next_step if self._next_step is not None else 0
        first, last = check_batch(records, checkpoint, expected)
        cp_json = checkpoint.to_json()
        checksum = batch_checksum(records, cp_json)
        try:
            self._write_batch(records, first, last, cp_json, checksum)
        except psycopg.OperationalError as exc:
            # The connection broke: the batch may or may not have committed. Reconnect
            # once, re-take the lock, and look before writing again.
            self._recover_after(exc, first, last, checksum, records, cp_json)
        except psycopg.Error as exc:
            raise RunLogError(
                f"cannot append to the run log {self.location}: {_one_line(exc)}"
            ) from exc
        self._next_step = last + 1
        self._next_batch += 1

    def _write_batch(
        self,
        records: Sequence[StepRecord],
        first: int,
        last: int,
        cp_json: str,
        checksum: str,
    ) -> None:
        conn = self._connect()
        run_id = self.run_id
        with conn.transaction():
            if records:
                copy_sql = sql.SQL("COPY {} (run_id, {}) FROM STDIN").format(
                    self._t("steps"), sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
                )
                with conn.cursor() as cur, cur.copy(copy_sql) as copy:
                    for record in records:
                        copy.write_row((run_id, *record))
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} (run_id, batch, first_step, last_step, checkpoint, "
                    "checksum, committed_at) VALUES (%s,%s,%s,%s,%s,%s,%s)"
                ).format(self._t("batches")),
                (run_id, self._next_batch, first, last, cp_json, checksum, time.time()),
            )

    def _recover_after(
        self,
        error: BaseException,
        first: int,
        last: int,
        checksum: str,
        records: Sequence[StepRecord],
        cp_json: str,
    ) -> None:
        run_id = self.run_id or ""
        self._locked = False
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        try:
            conn = self._connect()
            self._acquire(conn, run_id)
            row = conn.execute(
                sql.SQL(
                    "SELECT batch, first_step, last_step, checksum FROM {} WHERE run_id = %s "
                    "ORDER BY batch DESC LIMIT 1"
                ).format(self._t("batches")),
                (run_id,),
            ).fetchone()
            if row is not None and (int(row[1]), int(row[2]), row[3]) == (first, last, checksum):
                self._next_batch = int(row[0])
                return  # it had committed before the connection broke
            committed = 0 if row is None else int(row[2]) + 1
            if committed != first:
                raise RunLogError(
                    f"lost the connection to {self.location} while writing steps "
                    f"{first}..{last}, and the log now ends at step {committed - 1}: "
                    "another writer took over the run; this process stops here"
                ) from error
            self._next_batch = 1 if row is None else int(row[0]) + 1
            self._write_batch(records, first, last, cp_json, checksum)
        except psycopg.Error as exc:
            self.close()
            raise RunLogError(
                f"lost the connection to {self.location} while writing steps {first}..{last} "
                f"and could not reconnect: {_one_line(exc)}. Everything before step {first} "
                "is saved; resume the run once the database is back"
            ) from exc

    def reserve(self, total: int) -> None:
        conn = self._writable()
        try:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} (run_id, samples) VALUES (%s, %s) "
                    "ON CONFLICT (run_id) DO UPDATE SET samples = EXCLUDED.samples"
                ).format(self._t("reservations")),
                (self.run_id, total),
            )
        except psycopg.Error as exc:
            raise RunLogError(
                f"cannot write to the run log {self.location}: {_one_line(exc)}"
            ) from exc

    def reserved(self) -> int:
        conn = self._reader()
        if conn is None:
            return 0
        row = conn.execute(
            sql.SQL("SELECT samples FROM {} WHERE run_id = %s").format(self._t("reservations")),
            (self.run_id,),
        ).fetchone()
        return 0 if row is None else int(row[0])

    def drop(self) -> None:
        """Delete this run's rows (steps, batches, metadata); other runs are untouched."""
        if self.readonly:
            raise RunLogError(f"the run log {self.location} was opened read-only")
        conn = self._reader()
        if conn is None or self.run_id is None:
            return
        if not self._locked:
            self._acquire(conn, self.run_id)
        with conn.transaction():
            for table in ("steps", "batches", "reservations", "runs"):
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE run_id = %s").format(self._t(table)),
                    (self.run_id,),
                )
        self._next_step = None
        self.close()

    def close(self) -> None:
        self._release()
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    # ------------------------------------------------------------------ reading

    def meta(self) -> RunMeta | None:
        conn = self._reader()
        if conn is None:
            return None
        row = conn.execute(
            sql.SQL(
                "SELECT run_id, task, params, created, settings FROM {} WHERE run_id = %s"
            ).format(self._t("runs")),
            (self.run_id,),
        ).fetchone()
        if row is None:
            return None
        return RunMeta.from_stored(row[0], row[1], row[2], row[3], row[4] or "{}")

    def checkpoint(self) -> Checkpoint | None:
        conn = self._reader()
        if conn is None:
            return None
        row = conn.execute(
            sql.SQL(
                "SELECT checkpoint FROM {} WHERE run_id = %s ORDER BY batch DESC LIMIT 1"
            ).format(self._t("batches")),
            (self.run_id,),
        ).fetchone()
        return None if row is None else Checkpoint.from_json(row[0])

    def steps(self, start: int = 0, stop: int | None = None) -> Iterator[StepRecord]:
        conn = self._reader()
        if conn is None:
            return
        query = sql.SQL(
            "SELECT {} FROM {} WHERE run_id = %s AND step >= %s AND step < %s "
            "ORDER BY step LIMIT %s"
        ).format(sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), self._t("steps"))
        yield from iter_steps(
            lambda at, end, limit: conn.execute(query, (self.run_id, at, end, limit)).fetchall(),
            start,
            stop,
        )

    def _batches(self) -> Sequence[Sequence[Any]]:
        conn = self._reader()
        if conn is None:
            return []
        return conn.execute(
            sql.SQL(
                "SELECT batch, first_step, last_step, checkpoint, checksum FROM {} "
                "WHERE run_id = %s ORDER BY batch"
            ).format(self._t("batches")),
            (self.run_id,),
        ).fetchall()

    def _verify_last_batch(self) -> None:
        """Check the run's tail before writing to it (see `RunLog._recover_torn_tail`)."""
        conn = self._connect()
        columns = sql.SQL("batch, first_step, last_step, checkpoint, checksum")
        batches = self._t("batches")

        def batch_before(batch: int) -> Any:
            return conn.execute(
                sql.SQL(
                    "SELECT {c} FROM {b} WHERE run_id = %s AND batch < %s "
                    "ORDER BY batch DESC LIMIT 1"
                ).format(c=columns, b=batches),
                (self.run_id, batch),
            ).fetchone()

        def drop_batches_from(batch: int, step: int) -> None:
            with conn.transaction():
                for table, column, value in (("steps", "step", step), ("batches", "batch", batch)):
                    conn.execute(
                        sql.SQL("DELETE FROM {} WHERE run_id = %s AND {} >= %s").format(
                            self._t(table), sql.Identifier(column)
                        ),
                        (self.run_id, value),
                    )

        def drop_steps_after(step: int) -> int:
            return conn.execute(
                sql.SQL("DELETE FROM {} WHERE run_id = %s AND step > %s").format(self._t("steps")),
                (self.run_id, step),
            ).rowcount

        tail = conn.execute(
            sql.SQL(
                "SELECT {c} FROM {b} WHERE run_id = %s AND batch >= COALESCE((SELECT MAX(batch) "
                "FROM {b} WHERE run_id = %s AND last_step >= first_step), 0) ORDER BY batch"
            ).format(c=columns, b=batches),
            (self.run_id, self.run_id),
        ).fetchall()
        self._recover_torn_tail(
            tail,
            batch_before=batch_before,
            drop_batches_from=drop_batches_from,
            drop_steps_after=drop_steps_after,
        )

    def __repr__(self) -> str:
        return f"PostgresRunLog({self.location!r})"


def list_runs(url: str, *, connect_timeout: float = 10.0) -> list[RunMeta]:
    """Every run stored in the database at `url`, oldest first.

    Example:
        >>> [m.run_id for m in list_runs("postgresql://postgres@127.0.0.1/runs")]  # doctest: +SKIP
        ['hanoi-20', 'hanoi-12']
    """
    clean, _, schema = split_url(url)
    try:
        with psycopg.connect(clean, connect_timeout=max(1, int(connect_timeout))) as conn:
            exists = conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}".runs',)
            ).fetchone()
            if not (exists and exists[0]):
                return []
            rows = conn.execute(
                sql.SQL(
                    "SELECT run_id, task, params, created, settings FROM {}.runs ORDER BY created"
                ).format(sql.Identifier(schema))
            ).fetchall()
    except psycopg.Error as exc:
        raise RunLogError(f"cannot read runs from {redact(clean)}: {_one_line(exc)}") from exc
    return [RunMeta.from_stored(r[0], r[1], r[2], r[3], r[4] or "{}") for r in rows]
