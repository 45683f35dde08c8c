"""Durable LangGraph checkpointers from one string: memory, SQLite or PostgreSQL.

The graph surfaces take any LangGraph checkpointer; this module opens the right
one from the same `--store` value the run log uses, so a run's log and its graph
checkpoints can live side by side:

- `None` or `"memory"`: `InMemorySaver` (nothing survives the process);
- a directory: `DIR/checkpoints.sqlite`; a file path, `sqlite:///relative.db` or
  `sqlite:////absolute.db`: that file (`SqliteSaver`, needs `maker-graph[sqlite]`);
- `postgresql://...`: `PostgresSaver` (needs `maker-graph[postgres]`); its tables are
  created on first use, and the run log's own `?run_id=`/`?schema=` parameters are
  ignored here, so one URL serves both.

Both openers are context managers that close the connection on exit.

Example:
    >>> with open_checkpointer("memory") as saver:
    ...     type(saver).__name__
    'InMemorySaver'
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

__all__ = ["CHECKPOINT_DB_NAME", "open_async_checkpointer", "open_checkpointer", "store_kind"]

CHECKPOINT_DB_NAME = "checkpoints.sqlite"
"""The checkpoint database's name inside a run directory."""

_POSTGRES = ("postgres://", "postgresql://", "postgresql+psycopg://")


def store_kind(target: str | os.PathLike[str] | None) -> str:
    """`"memory"`, `"sqlite"` or `"postgres"`: which backend `target` names.

    Example:
        >>> store_kind("postgresql://u@127.0.0.1/db"), store_kind("runs/demo")
        ('postgres', 'sqlite')
    """
    if target is None:
        return "memory"
    text = os.fspath(target)
    if text in ("memory", ":memory:"):
        return "memory"
    if text.startswith(_POSTGRES):
        return "postgres"
    if text.startswith("sqlite:") or "://" not in text:
        return "sqlite"
    raise ConfigurationError(
        f"unknown store {text!r}: use memory, a directory, sqlite:///path.db or postgresql://..."
    )


def _sqlite_path(text: str) -> str:
    # As the run log reads them (SQLAlchemy's convention): sqlite:///relative.db,
    # sqlite:////absolute/path.db.
    if text.startswith("sqlite:///"):
        return text[len("sqlite:///") :]
    if text.startswith("sqlite:"):
        return text[len("sqlite:") :]
    path = Path(text)
    if path.is_dir() or not path.suffix:
        path.mkdir(parents=True, exist_ok=True)
        return str(path / CHECKPOINT_DB_NAME)
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


def _postgres_url(text: str) -> str:
    from .runlog._postgres_url import split_url  # no psycopg needed to read a URL

    return split_url(text)[0]


def _missing(extra: str, exc: ImportError) -> ConfigurationError:
    return ConfigurationError(
        f"this store needs the {extra} extra: pip install 'maker-graph[{extra}]' ({exc})"
    )


def _saver_class(kind: str, *, aio: bool) -> Any:
    """The LangGraph saver class for a `"sqlite"` or `"postgres"` store, sync or async.

    Imported on first use, so the core needs neither extra.

    Raises:
        ConfigurationError: the store's extra is not installed.
    """
    try:
        if kind == "sqlite":
            if aio:
                from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

                return AsyncSqliteSaver
            from langgraph.checkpoint.sqlite import SqliteSaver

            return SqliteSaver
        if aio:
            from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

            return AsyncPostgresSaver
        from langgraph.checkpoint.postgres import PostgresSaver

        return PostgresSaver
    except ImportError as exc:
        raise _missing(kind, exc) from exc


def _conn_string(kind: str, target: str | os.PathLike[str]) -> str:
    """What the saver's `from_conn_string` takes: the SQLite file, or the libpq URL."""
    text = os.fspath(target)
    return _sqlite_path(text) if kind == "sqlite" else _postgres_url(text)


@contextmanager
def open_checkpointer(target: str | os.PathLike[str] | None) -> Iterator[Any]:
    """Open a synchronous LangGraph checkpointer for `target` (see the module docstring).

    Raises:
        ConfigurationError: an unknown kind of store, or its extra is not installed.

    Example:
        >>> import tempfile
        >>> with open_checkpointer(tempfile.mkdtemp()) as saver:
        ...     type(saver).__name__
        'SqliteSaver'
    """
    kind = store_kind(target)
    if kind == "memory":
        from langgraph.checkpoint.memory import InMemorySaver

        yield InMemorySaver()
        return
    saver_class = _saver_class(kind, aio=False)
    with saver_class.from_conn_string(_conn_string(kind, target)) as saver:  # type: ignore[arg-type]
        if kind == "postgres":
            saver.setup()  # creates the checkpoint tables on first use
        yield saver


@asynccontextmanager
async def open_async_checkpointer(target: str | os.PathLike[str] | None) -> AsyncIterator[Any]:
    """Open an asynchronous LangGraph checkpointer for `target` (for `ainvoke`/`astream`).

    Raises:
        ConfigurationError: an unknown kind of store, or its extra is not installed.

    Example:
        >>> import asyncio
        >>> async def kind():
        ...     async with open_async_checkpointer(None) as saver:
        ...         return type(saver).__name__
        >>> asyncio.run(kind())
        'InMemorySaver'
    """
    kind = store_kind(target)
    if kind == "memory":
        from langgraph.checkpoint.memory import InMemorySaver

        yield InMemorySaver()
        return
    saver_class = _saver_class(kind, aio=True)
    async with saver_class.from_conn_string(_conn_string(kind, target)) as saver:  # type: ignore[arg-type]
        if kind == "postgres":
            await saver.setup()  # creates the checkpoint tables on first use
        yield saver
