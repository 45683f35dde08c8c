"""Test-only guard for libpq: psycopg's C connections never reach beyond loopback.

libpq opens its own sockets, so the socket patches in tests/conftest.py and
sitecustomize.py never see a PostgreSQL connection. Every psycopg connection,
sync or async, pooled or not, starts in `psycopg.generators.connect(conninfo)`
with one resolved host per attempt; `install` wraps that function and refuses a
conninfo whose effective host (the string, then libpq's PG* environment
defaults) is not a Unix socket, `localhost` or a loopback address.

tests/conftest.py installs it in the pytest process; sitecustomize.py installs
it in every Python subprocess when psycopg is first imported (no psycopg import
at start-up for children that never use it).
"""

import ipaddress
import os


def _loopback_address(text):
    try:
        return ipaddress.ip_address(text.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _local_host(host):
    # libpq reads an empty host as the default Unix socket, a leading "/" or "@"
    # as a socket directory or an abstract socket.
    return host in ("", "localhost") or host.startswith(("/", "@")) or _loopback_address(host)


def refusal(conninfo, environ=None):
    """Why libpq may not open `conninfo` in the tests, or None when it is local."""
    from psycopg.conninfo import conninfo_to_dict

    env = os.environ if environ is None else environ
    params = conninfo_to_dict(conninfo)
    service = params.get("service") or env.get("PGSERVICE")
    if service:
        return f"service {service!r} (a service file can name any host)"
    hosts = str(params.get("host", env.get("PGHOST", ""))).split(",")
    addrs = str(params.get("hostaddr", env.get("PGHOSTADDR", ""))).split(",")
    for i, host in enumerate(hosts):
        addr = addrs[i] if i < len(addrs) else ""
        if addr and not _loopback_address(addr):
            return f"hostaddr {addr!r}"
        if not addr and not _local_host(host):
            return f"host {host!r}"
    return None


def install(refuse, generators=None):
    """Wrap psycopg's connection generator; `refuse(reason)` returns the exception to raise."""
    if generators is None:
        import psycopg.generators as generators

    real = generators.connect
    if getattr(real, "_maker_graph_guarded", False):
        return

    def guarded_connect(conninfo, *args, **kwargs):
        reason = refusal(conninfo)
        if reason:
            raise refuse(f"libpq connect to {reason}")
        return real(conninfo, *args, **kwargs)

    guarded_connect._maker_graph_guarded = True
    generators.connect = guarded_connect


class _InstallOnImport:
    """A meta path finder that installs the guard once psycopg.generators has run."""

    def __init__(self, refuse):
        self._refuse = refuse

    def find_spec(self, name, path, target=None):
        if name != "psycopg.generators":
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module
        refuse = self._refuse

        def exec_module(module):
            run(module)
            install(refuse, module)

        spec.loader.exec_module = exec_module
        return spec


def install_on_import(refuse):
    """Install the guard now if psycopg is loaded, else when it is first imported."""
    import sys

    if "psycopg.generators" in sys.modules:
        install(refuse)
    else:
        sys.meta_path.insert(0, _InstallOnImport(refuse))
