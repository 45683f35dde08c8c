"""The loops maker_graph owns abandon a host-name lookup that never answers.

On Python 3.11 `asyncio.run` waits, with no limit, for its default executor's
threads when it ends; asyncio resolves host names there. A call that timed out on
a hung lookup therefore held `run_task_sync` / `estimate_sync` (and a sync graph)
until the resolver answered. The loops of `maker_graph._sync` resolve in daemon
threads instead. The hung resolver here blocks on an event the test sets at the
end, so no thread outlives the test by more than that.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from maker_graph._sync import run_sync, run_to_end

HUNG_HOST = "hung.invalid"
BOUND = 10.0  # seconds the caller may take; the resolver would hold it 60 s


@pytest.fixture
def hung_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    release = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == HUNG_HOST:
            release.wait(60)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield release
    release.set()


async def _lookup_with_a_timeout() -> str:
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.getaddrinfo(HUNG_HOST, 443), 0.2)
    except TimeoutError:
        return "timed out"
    return "answered"


def _finishes_within_bound(call: Callable[[], str]) -> tuple[bool, list[str]]:
    out: list[str] = []
    worker = threading.Thread(target=lambda: out.append(call()), daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(BOUND)
    return (not worker.is_alive() and time.monotonic() - started < BOUND), out


@pytest.mark.parametrize(
    "runner",
    [run_to_end, run_sync],
    ids=["run_to_end (run_task_sync, estimate_sync)", "run_sync (sync graphs)"],
)
def test_a_hung_lookup_does_not_hold_the_caller(
    hung_resolver: threading.Event, runner: Callable[[Any], str]
) -> None:
    finished, out = _finishes_within_bound(lambda: runner(_lookup_with_a_timeout()))
    assert finished, f"the call was still held by the lookup after {BOUND} s"
    assert out == ["timed out"]


def _run_on_a_stdlib_loop(coro: Any) -> str:
    # asyncio.run's own runner on the standard loop, whatever policy an in-process CLI
    # test installed earlier (the CLI makes every loop of its process resolving).
    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        return runner.run(coro)


def test_plain_asyncio_run_is_held_by_it_which_is_why(hung_resolver: threading.Event) -> None:
    # The fault the module exists for: the same coroutine on asyncio.run's standard
    # loop waits for the lookup thread at its end (3.11: no limit; 3.12+: 300 s).
    finished, _ = _finishes_within_bound(lambda: _run_on_a_stdlib_loop(_lookup_with_a_timeout()))
    assert not finished
