"""Run-log URLs for PostgreSQL: our query parameters, the run id's rules, redaction.

Plain string handling with no driver import, so the URL can be checked (and a
password hidden in messages) before psycopg is needed.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import ConfigurationError

DEFAULT_SCHEMA = "maker_graph"
"""The schema that holds the run-log tables unless the URL says `?schema=...`."""

OUR_PARAMS = ("run_id", "schema")
"""Query parameters read (and removed) by us; every other one goes to libpq."""


def split_url(url: str) -> tuple[str, str | None, str]:
    """Split a run-log URL into `(libpq URL, run id, schema)`.

    Our own query parameters (`run_id`, `schema`) are removed, libpq's are kept;
    `postgresql+psycopg://` (SQLAlchemy style) is accepted as `postgresql://`.

    Example:
        >>> split_url("postgresql+psycopg://u@h/db?run_id=r1&connect_timeout=5")
        ('postgresql://u@h/db?connect_timeout=5', 'r1', 'maker_graph')
    """
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgres", "postgresql"):
        raise ConfigurationError(f"not a PostgreSQL URL: {redact(url)!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in OUR_PARAMS}
    rest = [(k, v) for k, v in query if k not in OUR_PARAMS]
    schema = ours.get("schema") or DEFAULT_SCHEMA
    if not schema.replace("_", "").isalnum():
        raise ConfigurationError(f"schema must be letters, digits and underscores, got {schema!r}")
    run_id = ours.get("run_id") or None
    if run_id is not None:
        check_run_id(run_id)
    clean = urlunsplit((scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment))
    return clean, run_id, schema


def check_run_id(run_id: str) -> None:
    """PostgreSQL text cannot hold NUL; other control characters make unreadable messages."""
    if not run_id or len(run_id) > 200 or any(ord(c) < 32 or ord(c) == 127 for c in run_id):
        raise ConfigurationError(
            f"run_id must be 1 to 200 printable characters, got {run_id[:40]!r}"
        )


def redact(url: str) -> str:
    """The URL with its password replaced by `***`, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
