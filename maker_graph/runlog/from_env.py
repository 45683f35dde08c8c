"""Where a served graph's run log lives, read from the deployment's environment.

A graph served by several workers must keep its run log where every worker sees
it: a worker that picks up a run another worker started (after a crash, say)
has to find the steps already committed. So the log is a PostgreSQL database
named by the environment, one run per LangGraph thread:

1. `MAKER_GRAPH_RUNLOG_URL`: ours, wins when set (a `postgresql://` URL, or a
   directory for a single-machine deployment: each run then gets a
   subdirectory);
2. `DATABASE_URI`, then `POSTGRES_URI`: what LangGraph's API server is given for
   its own PostgreSQL; the run log then sits beside the server's tables, in its
   own schema (`maker_graph` unless the URL says `?schema=...`).

Nothing set means no run log (the graph's checkpoints are then the only copy).

Example:
    >>> run_log_url_from_env("thread-1", env={"DATABASE_URI": "postgresql://u@h:5432/db"})
    'postgresql://u@h:5432/db?run_id=thread-1'
    >>> run_log_url_from_env("thread-1", env={}) is None
    True
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import ConfigurationError

__all__ = ["RUNLOG_ENV_VARS", "run_log_url_from_env"]

RUNLOG_ENV_VARS = ("MAKER_GRAPH_RUNLOG_URL", "DATABASE_URI", "POSTGRES_URI")
"""The variables read, first set wins."""

_POSTGRES = ("postgres://", "postgresql://", "postgresql+psycopg://")


def _with_run_id(url: str, run_id: str, variable: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = dict(query).get("run_id")
    if given is not None:
        # One fixed run id would make every thread the same run.
        raise ConfigurationError(
            f"{variable} names run_id={given!r}; a served graph needs one run per thread, "
            "so leave run_id out of the URL"
        )
    return urlunsplit(parts._replace(query=urlencode([*query, ("run_id", run_id)])))


def run_log_url_from_env(run_id: str, *, env: Mapping[str, str] | None = None) -> str | None:
    """The run-log target for run `run_id` (a thread id), or None when none is configured.

    Args:
        run_id: the run's id in the log; use the LangGraph thread id, so that a run
            resumed on any worker continues the same log.
        env: the environment (default `os.environ`).

    Raises:
        ConfigurationError: `MAKER_GRAPH_RUNLOG_URL` is a SQLite URL (one file would be
            shared by every run, and no other worker can see it), or a URL fixes `run_id`.

    Example:
        >>> run_log_url_from_env("t1", env={"MAKER_GRAPH_RUNLOG_URL": "/srv/runs"})
        '/srv/runs/t1'
    """
    env = os.environ if env is None else env
    for variable in RUNLOG_ENV_VARS:
        value = (env.get(variable) or "").strip()
        if not value:
            continue
        if value.startswith(_POSTGRES):
            return _with_run_id(value, run_id, variable)
        if variable != "MAKER_GRAPH_RUNLOG_URL":
            continue  # the server's own database URL, but not PostgreSQL: not ours to use
        if value.startswith("sqlite:") or "://" in value:
            raise ConfigurationError(
                f"MAKER_GRAPH_RUNLOG_URL={value!r}: a served graph's run log is a "
                "postgresql:// URL (every worker sees it) or a directory (one machine)"
            )
        return os.path.join(value, run_id)
    return None
