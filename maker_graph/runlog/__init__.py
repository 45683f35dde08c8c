"""Run logs: the durable, append-only record of a long run's committed steps.

`open_run_log` takes a run directory (or a `sqlite:///path.db` URL) and returns
the matching `RunLog`; `maker_graph.run.run_task` writes to it and resumes from
it. See `maker_graph.runlog.base` for the interface and its guarantees.

Example:
    >>> import tempfile
    >>> log = open_run_log(tempfile.mkdtemp())
    >>> log.start("hanoi", {"disks": 3}).params
    {'disks': 3}
    >>> log.close()
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from .base import Checkpoint, RunLog, RunMeta, StepRecord
from .sqlite import DB_NAME, SqliteRunLog

__all__ = [
    # opening
    "open_run_log",
    # interface and records
    "Checkpoint",
    "RunLog",
    "RunMeta",
    "StepRecord",
    # backends
    "SqliteRunLog",
]

_POSTGRES_SCHEMES = ("postgres://", "postgresql://", "postgresql+psycopg://")


def open_run_log(
    target: str | os.PathLike[str] | RunLog, *, readonly: bool = False, **options: Any
) -> RunLog:
    """Open the run log at a directory or URL (nothing is created until `start`).

    Args:
        target: a run directory (the log is `DIR/run.sqlite`), a SQLite URL
            (`sqlite:///relative.db` or `sqlite:////absolute/path.db`, as SQLAlchemy writes
            them), a `postgresql://...` URL (once that backend exists), or a `RunLog`,
            returned as is.
        readonly: open for reading only: no lock is taken and nothing can be written.
        **options: passed to the backend (e.g. `synchronous="FULL"` for SQLite).

    Raises:
        ConfigurationError: an unknown URL scheme, or a backend that is not installed.
        RunLogError: `readonly` and there is no log there.

    Example:
        >>> import tempfile
        >>> open_run_log(f"sqlite:///{tempfile.mkdtemp()}/my.db").location.endswith("my.db")
        True
    """
    if isinstance(target, RunLog):
        return target
    text = os.fspath(target)
    if text.startswith("sqlite:"):
        # SQLAlchemy's convention: sqlite:///run.db is relative, sqlite:////abs/run.db absolute.
        path = text[len("sqlite:") :]
        if path.startswith("///"):
            path = path[3:]
        elif path.startswith("//"):
            raise ConfigurationError(
                f"unsupported SQLite URL {text!r}: use sqlite:///relative/path.db or "
                "sqlite:////absolute/path.db"
            )
        if not path:
            raise ConfigurationError(f"the SQLite URL {text!r} names no file")
        return SqliteRunLog(path, readonly=readonly, **options)
    if text.startswith(_POSTGRES_SCHEMES):
        try:
            from . import postgres  # type: ignore[attr-defined]
        except ImportError as exc:
            raise ConfigurationError(
                "PostgreSQL run logs need maker_graph.runlog.postgres and psycopg "
                f"(pip install 'maker-graph[postgres]'): {exc}"
            ) from exc
        opener = postgres.PostgresRunLog
        return opener(text, readonly=readonly, **options)  # type: ignore[no-any-return]
    if "://" in text:
        raise ConfigurationError(
            f"unknown run log URL {text!r}: use a directory, sqlite:///path.db or postgresql://..."
        )
    path_ = Path(text)
    if path_.exists() and not path_.is_dir():
        raise ConfigurationError(f"{text} is a file, not a run directory")
    return SqliteRunLog(path_ / DB_NAME, readonly=readonly, **options)
