"""Test-only network guard for every Python subprocess the tests start.

tests/conftest.py puts this folder first on PYTHONPATH and names a log file in
MAKER_GRAPH_NET_GUARD_LOG, so each Python process a test spawns (the CLI, the
crash harness, examples) imports this at start-up. Connections and name lookups
beyond loopback are refused here and written to the log; conftest fails the test
whose subprocess wrote to it, even when the subprocess swallowed the error.
Without MAKER_GRAPH_NET_GUARD_LOG this module does nothing.

libpq (psycopg's C connections) opens its own sockets: maker_graph_libpq_guard
refuses a non-loopback conninfo before libpq sees it, once psycopg is imported.
Other C clients and non-Python children (psql in scripts/postgres.sh) are not
guarded; the tests only ever hand them loopback addresses.
"""

import ipaddress
import os
import socket

_LOG = os.environ.get("MAKER_GRAPH_NET_GUARD_LOG")


def _loopback(host):
    if host in (None, "", "localhost") or not isinstance(host, str):
        return True  # AF_UNIX paths and the like
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return host.endswith(".localhost")


def _refuse(what):
    try:
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(f"pid {os.getpid()}: {what}\n")
    except OSError:
        pass
    return f"tests may not reach the network (a subprocess tried {what})"


if _LOG:
    _connect = socket.socket.connect
    _connect_ex = socket.socket.connect_ex
    _getaddrinfo = socket.getaddrinfo

    def _guarded_connect(self, address):
        if isinstance(address, tuple) and address and not _loopback(address[0]):
            raise ConnectionRefusedError(_refuse(f"connect {address!r}"))
        return _connect(self, address)

    def _guarded_connect_ex(self, address):
        if isinstance(address, tuple) and address and not _loopback(address[0]):
            _refuse(f"connect_ex {address!r}")
            return 111  # ECONNREFUSED
        return _connect_ex(self, address)

    def _guarded_getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if not _loopback(name):
            raise socket.gaierror(socket.EAI_NONAME, _refuse(f"getaddrinfo {name!r}"))
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
    socket.getaddrinfo = _guarded_getaddrinfo

    def _refuse_libpq(what):
        from psycopg import OperationalError

        return OperationalError(_refuse(what))

    from maker_graph_libpq_guard import install_on_import

    install_on_import(_refuse_libpq)
