"""A throwaway PostgreSQL server for the tests in this folder.

`postgres_server` starts one server per test session with
`scripts/postgres.sh start` (which installs Debian's `postgresql` when it is
missing) and stops it, deleting its data, at the end. `postgres_url` gives each
test a fresh, empty database on it.

Set `MAKER_GRAPH_PG_URL` to use an existing server instead (the tests then
create and drop their own databases on it and leave the server alone).

A PostgreSQL that is missing and cannot be installed here (the script exits 3)
fails these tests like any other failure to start: in CI a silent skip would
drop every PostgreSQL guarantee. To run the rest of the suite without
PostgreSQL, opt out explicitly with `MAKER_GRAPH_SKIP_POSTGRES=1`; the tests
then skip, saying so.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "postgres.sh"
CANNOT_INSTALL = 3
OPT_OUT = "MAKER_GRAPH_SKIP_POSTGRES"


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a running server's `postgres` database (maintenance connections only)."""
    existing = os.environ.get("MAKER_GRAPH_PG_URL")
    if existing:
        yield existing
        return
    if os.environ.get(OPT_OUT) == "1":
        pytest.skip(f"{OPT_OUT}=1: PostgreSQL tests skipped on request")
    try:
        proc = subprocess.run(
            ["bash", str(SCRIPT), "start"],
            capture_output=True,
            text=True,
            timeout=1200,  # a first install downloads the package
            check=False,
        )
    except FileNotFoundError as exc:  # no bash at all
        pytest.fail(
            f"PostgreSQL tests need bash to run {SCRIPT.name}: {exc}; "
            f"set {OPT_OUT}=1 to run the suite without them"
        )
    if proc.returncode == CANNOT_INSTALL:
        pytest.fail(
            f"PostgreSQL is not available here and could not be installed: "
            f"{proc.stderr.strip()}; set {OPT_OUT}=1 to run the suite without it"
        )
    if proc.returncode != 0:
        pytest.fail(f"{SCRIPT.name} start failed ({proc.returncode}): {proc.stderr.strip()}")
    url = proc.stdout.strip().splitlines()[-1]
    port = url.rsplit(":", 1)[1].split("/", 1)[0]
    try:
        yield url
    finally:
        subprocess.run(
            ["bash", str(SCRIPT), "stop", port], capture_output=True, timeout=120, check=False
        )


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh database on the session's server, dropped after the test."""
    import psycopg

    name = f"mg_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(postgres_server, name)
    finally:
        with psycopg.connect(postgres_server, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
