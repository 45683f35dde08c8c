"""`maker-graph estimate` against a provider that accepts and never answers, or drips.

Each call is bounded in total time (`--timeout`, 120 s by default), so the command
ends in bounded time with every attempt counted as a `timeout` and one `error:` line
(no sample came back); SIGTERM during the hang ends it at once with one line. A
resolver that never answers is the same fault one step earlier: asyncio looks host
names up in executor threads and `asyncio.run` waited for those at its end, so the
command (and SIGTERM) hung until the lookup gave up (issue 14).

The servers are raw sockets on 127.0.0.1, started and stopped by each test; every
wait is bounded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("langchain_openai")

# 2 steps x 1 sample, 6 attempts each (ProviderRetry's default): 12 calls.
ATTEMPTS = 2 * 6


class _Silent:
    """Accepts every connection and reads the request; then `hang` (says nothing) or
    `drip` (a 200 with a long content-length, then one byte every 2 s)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.connections = 0
        self.first = threading.Event()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.threads: list[threading.Thread] = []

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
            self.first.set()
            thread = threading.Thread(target=self.hold, args=(conn,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def hold(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                if self.mode == "drip":
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        b"content-length: 100000\r\n\r\n"
                    )
                    while not self.stop.wait(2):  # each read returns; the reply never ends
                        conn.sendall(b" ")
                else:
                    self.stop.wait(120)  # bounded: set when the test ends
            except OSError:
                pass  # the client gave up on the call: that is the point


@contextmanager
def silent_server(mode: str) -> Iterator[_Silent]:
    server = _Silent(mode)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        thread.join(5)
        server.sock.close()
        for held in server.threads:
            held.join(5)


def _estimate_args(base_url: str, *extra: str) -> list[str]:
    return [
        "estimate",
        "hanoi",
        "--disks",
        "3",
        "--model",
        "openai:gpt-4.1-mini",
        "--base-url",
        base_url,
        "--steps",
        "2",
        "--samples-per-step",
        "1",
        *extra,
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "OPENAI_API_KEY": "test-key-not-used"}


def _check_no_sample_line(code: int, err: str, failures: str) -> None:
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1, err
    assert len(errors) == 1 and "Traceback" not in err, err
    assert "no sample came back from openai:gpt-4.1-mini" in errors[0], err
    assert f"({failures})" in errors[0], err


@pytest.mark.parametrize("mode", ["hang", "drip"])
def test_a_silent_provider_ends_the_estimate_with_counted_timeouts(
    mode: str, tmp_path: Path
) -> None:
    with silent_server(mode) as server:
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "maker_graph"]
            + _estimate_args(f"http://127.0.0.1:{server.port}/v1", "--timeout", "1"),
            capture_output=True,
            text=True,
            env=_env(),
            cwd=tmp_path,
            timeout=120,
        )
        elapsed = time.monotonic() - start
    # 12 calls of 1 s plus backoffs (under 2 s in all) plus start-up: seconds, where
    # the client's own 600 s read timeout never trips on a drip.
    assert elapsed < 60, (elapsed, proc.stderr)
    _check_no_sample_line(proc.returncode, proc.stderr, f"timeout {ATTEMPTS}")
    assert server.connections == ATTEMPTS  # each attempt one call, each one counted


def test_the_default_per_call_time_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --timeout every call still has a total limit: 120 s."""
    from typer.testing import CliRunner

    import maker_graph.estimate
    from maker_graph.cli import app, load_commands

    seen: list[object] = []

    def capture(task: object, entries: object, options: object, **_: object) -> None:
        seen.append(options.retry.timeout)  # type: ignore[attr-defined]
        raise KeyboardInterrupt  # stop before any call: the wiring is what is checked

    monkeypatch.setattr(maker_graph.estimate, "estimate_sync", capture)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key-not-used")
    load_commands()
    for extra, expected in (((), 120.0), (("--timeout", "7"), 7.0)):
        result = CliRunner().invoke(app, _estimate_args("http://127.0.0.1:9/v1", *extra))
        assert result.exit_code == 130, result.output
        assert seen[-1] == expected


@pytest.mark.parametrize("mode", ["hang", "drip"])
def test_sigterm_during_a_silent_call_exits_at_once(mode: str, tmp_path: Path) -> None:
    err = tmp_path / "stderr.txt"
    with silent_server(mode) as server, err.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "maker_graph"]
            + _estimate_args(f"http://127.0.0.1:{server.port}/v1"),  # the default 120 s
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=_env(),
            cwd=tmp_path,
        )
        try:
            assert server.first.wait(60), "the command never called the provider"
            time.sleep(0.5)  # inside the call (its connection is held open)
            code, took = _terminate(proc, wait=30)
        finally:
            _reap(proc)
    assert code == 130, err.read_text()
    assert err.read_text() == "interrupted\n"
    assert took < 5, took


def _terminate(proc: subprocess.Popen[bytes], wait: float) -> tuple[int, float]:
    """SIGTERM `proc`; its exit code and the seconds it took to exit."""
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=wait)
    return code, time.monotonic() - signalled


def _reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


# Runs `maker-graph ARGS...` with a resolver that never answers for `slow.invalid`
# (it blocks 60 s, like an unreachable DNS server's retries), marking each lookup.
SLOW_RESOLVER = """
import pathlib, socket, sys, time

marker = pathlib.Path(sys.argv[1])
real = socket.getaddrinfo

def getaddrinfo(host, *args, **kwargs):
    if host in ("slow.invalid", b"slow.invalid"):
        with marker.open("a") as f:
            f.write("lookup\\n")
        time.sleep(60)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    return real(host, *args, **kwargs)

socket.getaddrinfo = getaddrinfo
sys.argv = ["maker-graph", *sys.argv[2:]]
from maker_graph.cli import main
main()
"""


def _slow_resolver_child(tmp_path: Path, *args: str) -> tuple[list[str], Path]:
    child = tmp_path / "slow_resolver.py"
    child.write_text(SLOW_RESOLVER)
    marker = tmp_path / "lookups.txt"
    return [sys.executable, str(child), str(marker), *args], marker


def test_a_resolver_that_never_answers_is_bounded_by_the_timeout(tmp_path: Path) -> None:
    argv, marker = _slow_resolver_child(
        tmp_path, *_estimate_args("http://slow.invalid/v1", "--timeout", "1")
    )
    start = time.monotonic()
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=120
    )
    elapsed = time.monotonic() - start
    # Before the fix the command waited out every lookup at its end (60 s and more).
    assert elapsed < 45, (elapsed, proc.stderr)
    _check_no_sample_line(proc.returncode, proc.stderr, f"timeout {ATTEMPTS}")
    assert marker.read_text().count("lookup") == ATTEMPTS


def test_sigterm_during_a_lookup_that_never_answers_exits_at_once(tmp_path: Path) -> None:
    argv, marker = _slow_resolver_child(tmp_path, *_estimate_args("http://slow.invalid/v1"))
    err = tmp_path / "stderr.txt"
    with err.open("w") as stderr:
        proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=stderr, env=_env(), cwd=tmp_path
        )
        try:
            deadline = time.monotonic() + 60
            while not marker.exists():
                assert proc.poll() is None, err.read_text()
                assert time.monotonic() < deadline, "the command never looked the host up"
                time.sleep(0.01)
            code, took = _terminate(proc, wait=90)
        finally:
            _reap(proc)
    assert code == 130, err.read_text()
    assert err.read_text() == "interrupted\n"
    assert took < 5, took  # before the fix: until the lookup gave up (60 s)
