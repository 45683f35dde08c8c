"""The test suite itself must not be able to reach the network."""

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def test_non_loopback_connection_is_refused() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        with pytest.raises(RuntimeError, match="may not reach the network"):
            s.connect(("93.184.216.34", 80))


def test_loopback_is_allowed() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
            client.settimeout(2)
            client.connect(server.getsockname())


def _python_child(code: str, log: Path) -> subprocess.CompletedProcess[str]:
    """`python -c code` as the suite's subprocesses run (the guard logging to `log`)."""
    env = {**os.environ, "MAKER_GRAPH_NET_GUARD_LOG": str(log)}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


def test_python_subprocesses_are_guarded_too(tmp_path: Path) -> None:
    """A child Python process inherits the guard (tests/netguard on PYTHONPATH).

    It gets its own log here, so the attempts it makes on purpose do not fail this
    test through the session-wide log that conftest watches.
    """
    log = tmp_path / "attempts.log"
    probe = (
        "import socket\n"
        "s = socket.socket()\n"
        "try:\n"
        "    s.connect(('93.184.216.34', 80))\n"
        "except ConnectionRefusedError as e:\n"
        "    print('refused:', e)\n"
        "try:\n"
        "    socket.getaddrinfo('example.com', 443)\n"
        "except socket.gaierror:\n"
        "    print('lookup refused')\n"
        "srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1)\n"
        "c = socket.socket(); c.settimeout(2); c.connect(srv.getsockname()); print('loopback ok')\n"
    )
    done = _python_child(probe, log)
    assert done.returncode == 0, done.stderr
    assert "refused: tests may not reach the network" in done.stdout
    assert "lookup refused" in done.stdout and "loopback ok" in done.stdout
    logged = log.read_text().splitlines()
    assert len(logged) == 2 and "93.184.216.34" in logged[0] and "example.com" in logged[1]


# 192.0.2.1 is TEST-NET-1 (RFC 5737): never routed, so even a broken guard only
# costs the connect timeout.
_REMOTE = "192.0.2.1"


@pytest.mark.parametrize(
    ("conninfo", "env"),
    [
        (f"postgresql://u@{_REMOTE}:5432/db", {}),
        (f"host=db.example.com hostaddr={_REMOTE} dbname=x", {}),
        ("dbname=x", {"PGHOST": _REMOTE}),
        ("dbname=x", {"PGHOSTADDR": _REMOTE}),
        (f"postgresql://u@127.0.0.1:1,{_REMOTE}/db", {}),  # the second host is refused
        ("service=prod", {}),
    ],
)
def test_libpq_connections_beyond_loopback_are_refused(
    conninfo: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """psycopg connects through libpq's own C sockets, which the socket patch never sees."""
    psycopg = pytest.importorskip("psycopg")
    for name in ("PGHOST", "PGHOSTADDR", "PGSERVICE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(RuntimeError, match="may not reach the network.*libpq connect"):
        psycopg.connect(conninfo, connect_timeout=2)


def test_libpq_guard_reads_host_names_and_environment() -> None:
    """Host names reach libpq unresolved when psycopg cannot resolve them first."""
    spec = importlib.util.spec_from_file_location(
        "libpq_guard_under_test", Path(__file__).parent / "netguard" / "maker_graph_libpq_guard.py"
    )
    assert spec is not None and spec.loader is not None
    guard = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(guard)
    assert guard.refusal("host=db.example.com dbname=x", {}) == "host 'db.example.com'"
    assert guard.refusal("dbname=x", {"PGHOST": "db.example.com"}) == "host 'db.example.com'"
    assert guard.refusal("host=localhost,/run/pg,@abstract,::1 dbname=x", {}) is None
    assert guard.refusal("dbname=x", {}) is None  # libpq's default Unix socket
    # An explicit host wins over PGHOST, as in libpq.
    assert guard.refusal("host=127.0.0.1 dbname=x", {"PGHOST": _REMOTE}) is None


async def test_async_libpq_connections_are_refused_too() -> None:
    psycopg = pytest.importorskip("psycopg")
    with pytest.raises(RuntimeError, match="may not reach the network.*libpq connect"):
        await psycopg.AsyncConnection.connect(f"host={_REMOTE} dbname=x", connect_timeout=2)


@pytest.mark.parametrize(
    "conninfo",
    [
        "host=127.0.0.1 port={port} dbname=x",
        "postgresql://u@localhost:{port}/x",
        "host=/nonexistent",
    ],
)
def test_libpq_loopback_and_sockets_still_connect(conninfo: str) -> None:
    """Loopback reaches libpq: nothing listens there, so libpq itself refuses."""
    psycopg = pytest.importorskip("psycopg")
    with socket.socket() as placeholder:  # a loopback port that is surely closed
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(conninfo.format(port=port), connect_timeout=2)
    assert "may not reach the network" not in str(caught.value)


def test_libpq_in_subprocesses_is_guarded(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    log = tmp_path / "attempts.log"
    probe = (
        "import psycopg\n"
        "try:\n"
        f"    psycopg.connect('host={_REMOTE} dbname=x', connect_timeout=2)\n"
        "except psycopg.OperationalError as e:\n"
        "    print('refused:', e)\n"
    )
    done = _python_child(probe, log)
    assert done.returncode == 0, done.stderr
    assert "refused: tests may not reach the network" in done.stdout, done.stdout
    logged = log.read_text().splitlines()
    assert len(logged) == 1 and f"libpq connect to hostaddr '{_REMOTE}'" in logged[0]
    lazy = _python_child("import sys; print('psycopg' in sys.modules)", log)
    assert lazy.returncode == 0, lazy.stderr
    assert lazy.stdout.strip() == "False"  # the guard waits for psycopg's import
