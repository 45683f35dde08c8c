"""Shared test set-up: no test may reach the network.

Every socket connection to an address outside the loopback range fails the
test at once. Servers the tests start listen on 127.0.0.1 only.

Python subprocesses are guarded too: `tests/netguard/sitecustomize.py` goes
first on PYTHONPATH (inherited by every child that keeps this environment), it
refuses their non-loopback connections and name lookups and logs them, and the
test whose child wrote to that log fails here, even if the child swallowed the
error. A test that builds a child's environment from scratch must keep
PYTHONPATH and MAKER_GRAPH_NET_GUARD_LOG.

libpq, whose C sockets neither patch sees, is guarded one level up: every
psycopg connection's conninfo (with libpq's PG* environment defaults) must name
a Unix socket or a loopback host (`tests/netguard/maker_graph_libpq_guard.py`),
here and in the subprocesses.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("LANGCHAIN_TRACING_V2", "false")
os.environ.setdefault("LANGSMITH_TRACING", "false")
os.environ.setdefault("LANGGRAPH_CLI_NO_ANALYTICS", "1")
os.environ.setdefault("LANGGRAPH_NO_VERSION_CHECK", "1")

NET_GUARD_DIR = Path(__file__).resolve().parent / "netguard"
_fd, _net_log = tempfile.mkstemp(prefix="maker-graph-net-guard-", suffix=".log")
os.close(_fd)
NET_GUARD_LOG = Path(_net_log)
os.environ["MAKER_GRAPH_NET_GUARD_LOG"] = str(NET_GUARD_LOG)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(NET_GUARD_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]
)


class NetworkBlockedError(RuntimeError):
    """A test tried to reach a non-loopback address."""


def _is_loopback(address: Any) -> bool:
    if isinstance(address, (str, bytes)) and not isinstance(address, tuple):
        return True  # AF_UNIX path
    if isinstance(address, tuple) and address:
        host = address[0]
        if host in ("localhost", "", None):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False
    return False


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if not _is_loopback(address):
        raise NetworkBlockedError(f"tests may not reach the network (tried {address!r})")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    if not _is_loopback(address):
        raise NetworkBlockedError(f"tests may not reach the network (tried {address!r})")
    return _real_connect_ex(self, address)


def _load_libpq_guard() -> Any:
    spec = importlib.util.spec_from_file_location(
        "maker_graph_libpq_guard", NET_GUARD_DIR / "maker_graph_libpq_guard.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LIBPQ_GUARD = _load_libpq_guard()
# Installed at import (not in the fixture): a module-level connection, or one a
# plugin opens before the session fixture runs, is guarded too.
LIBPQ_GUARD.install_on_import(
    lambda what: NetworkBlockedError(f"tests may not reach the network (tried {what})")
)


@pytest.fixture(autouse=True, scope="session")
def _block_network() -> Iterator[None]:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect = _real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _no_network_in_subprocesses() -> Iterator[None]:
    start = NET_GUARD_LOG.stat().st_size
    yield
    with NET_GUARD_LOG.open(encoding="utf-8") as log:
        log.seek(start)
        attempts = log.read().strip()
    if attempts:
        pytest.fail(f"a subprocess of this test tried to reach the network:\n{attempts}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    NET_GUARD_LOG.unlink(missing_ok=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("MAKER_GRAPH_LIVE") == "1":
        return
    skip_live = pytest.mark.skip(reason="live-model test: set MAKER_GRAPH_LIVE=1 to run it")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip_live)
