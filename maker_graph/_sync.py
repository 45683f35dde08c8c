"""The event loops maker_graph owns, and running async work on them from sync code.

Sync entry points (`graph.invoke`, sync nodes, sync wrappers of the recursive
driver) hand their coroutine to a single background loop instead of calling
`asyncio.run` each time: async provider clients belong to the loop they were first
used on, and a fresh loop per call would leave them bound to a closed one.
`run_to_end` is `asyncio.run` for entry points that own a whole run
(`run_task_sync`, `estimate_sync`).

Every loop made here resolves host names in daemon threads of their own
(`new_event_loop`): asyncio resolves in the loop's default executor, and on Python
3.11 the end of `asyncio.run` waits for that executor's threads with no limit, so a
resolver that never answers held a call long after its timeout, and Ctrl-C with it.
A lookup is always safe to abandon; other executor work is still awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import socket
import sys
import threading
from collections.abc import Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from ._worker_threads import AbandonableThreads

__all__ = ["new_event_loop", "run_sync", "run_to_end"]

T = TypeVar("T")

_BaseLoop: type[asyncio.AbstractEventLoop] = (
    asyncio.ProactorEventLoop  # type: ignore[attr-defined]
    if sys.platform == "win32"
    else asyncio.SelectorEventLoop
)


class _ResolvingLoop(_BaseLoop):  # type: ignore[valid-type,misc]
    async def getaddrinfo(  # type: ignore[override]
        self,
        host: Any,
        port: Any,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> Any:
        return await _LOOKUP_THREADS.call(
            socket.getaddrinfo, host, port, family, type, proto, flags
        )


# Workers of their own, named for what they do: a hung lookup shows as one in a stack dump.
_LOOKUP_THREADS = AbandonableThreads("maker-graph-getaddrinfo")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop whose host-name lookups are abandoned with their call."""
    return _ResolvingLoop()


def run_to_end(coro: Coroutine[Any, Any, T], caller: str | None = None) -> T:
    """`asyncio.run(coro)` on a loop from `new_event_loop` (same Ctrl-C handling).

    `caller`, a sync entry point named `<name>_sync`, is refused inside a running
    loop (which cannot block on another) with an error naming `await <name>(...)`.
    """
    if caller is not None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()  # never started: no "never awaited" warning
            raise RuntimeError(
                f"{caller}() cannot run inside a running event loop; "
                f"use `await {caller.removesuffix('_sync')}(...)`"
            )
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coro)


_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _sync_loop() -> asyncio.AbstractEventLoop:
    """The one event loop, in a daemon thread, that runs async work for sync callers.

    Async provider clients (httpx pools behind most chat models) belong to the
    loop they were first used on; a fresh `asyncio.run` per call would hand them
    a new, later closed, loop each time. One long-lived loop keeps them valid.
    """
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            loop = new_event_loop()
            threading.Thread(
                target=_serve, args=(loop,), name="maker-graph-sync-loop", daemon=True
            ).start()
            _loop = loop
        return _loop


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    # A KeyboardInterrupt or SystemExit raised inside one of the loop's tasks leaves
    # `run_forever`; keep serving, so the task's waiters learn of it and later calls
    # do not wait forever on a dead loop.
    while not loop.is_closed():
        try:
            loop.run_forever()
            return
        except (KeyboardInterrupt, SystemExit):
            continue


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, in the caller's context.

    The coroutine runs on a long-lived background loop (see `_sync_loop`), with a
    copy of the caller's context so `get_config`, stream writers and `interrupt`
    keep working. Called from a thread that is itself running a loop (that loop
    cannot block on another), it runs on a fresh loop in a worker thread instead.
    """
    context = contextvars.copy_context()
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(context.run, run_to_end, coro).result()
    loop = _sync_loop()
    done: Future[T] = Future()
    started: list[asyncio.Task[T]] = []

    async def guarded() -> T:
        try:
            return await coro
        except (KeyboardInterrupt, SystemExit) as exc:
            # Raised inside the loop these would stop its thread for good (and every
            # later call would wait forever): carry them to the caller instead.
            raise _Escaped(exc) from exc

    def finish(task: asyncio.Task[T]) -> None:
        if task.cancelled():
            done.cancel()
        elif (error := task.exception()) is not None:
            done.set_exception(error)
        else:
            done.set_result(task.result())

    def start() -> None:
        # create_task copies the current context: inside context.run, the caller's.
        task = context.run(loop.create_task, guarded())
        started.append(task)
        task.add_done_callback(finish)

    loop.call_soon_threadsafe(start)
    try:
        return done.result()
    except _Escaped as exc:
        raise exc.error from None
    except BaseException:
        # The caller was interrupted (Ctrl-C): stop the work too, so no orphan keeps
        # calling providers or writing a run log, and give it a moment to wind down.
        loop.call_soon_threadsafe(lambda: [task.cancel() for task in started])
        with contextlib.suppress(BaseException):
            done.result(timeout=30)
        raise


class _Escaped(Exception):
    """Carries a KeyboardInterrupt or SystemExit out of the background loop."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(repr(error))
        self.error = error
