"""The test suite itself must not be able to reach the network."""

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
    env = {**os.environ, "MAKER_GRAPH_NET_GUARD_LOG": str(log)}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "refused: tests may not reach the network" in done.stdout
    assert "lookup refused" in done.stdout and "loopback ok" in done.stdout
    logged = log.read_text().splitlines()
    assert len(logged) == 2 and "93.184.216.34" in logged[0] and "example.com" in logged[1]
