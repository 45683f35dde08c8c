"""Worker threads a cancelled call can be abandoned on.

`FunctionSampler` runs a sync function here, `MakerMiddleware` a sync agent's model
calls, and the loops `_sync` makes resolve host names here, rather than in the loop's
default executor; the class says why.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["SAMPLER_THREADS", "AbandonableThreads"]


class AbandonableThreads:
    """Daemon worker threads for sync samplers, reused while they are idle.

    `asyncio.to_thread` runs a call in the loop's default executor, and a cancelled
    await does not stop the thread: the end of `asyncio.run` (and of `run_task_sync`,
    the command line) then waits for it with no limit on Python 3.11, and so does the
    interpreter's exit. A sync provider call that hangs held a finished run, a
    discarded speculative step or a Ctrl-C until it returned. Here a cancelled call is
    abandoned: its thread is a daemon nobody joins, and its result is dropped. A hung
    thread is never handed new work: a new call gets an idle thread or a new one, so
    there is no executor's `cpu_count + 4` cap on the calls in flight either.
    """

    IDLE_SECONDS = 30.0
    """How long an idle worker waits for work before it ends."""

    def __init__(self, name: str) -> None:
        self.name = name
        """The workers' thread name (what a stack dump or `threading.enumerate` shows)."""
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)  # a token per worker waiting on `_jobs`

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` in a worker thread, in a copy of the caller's context."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        context = contextvars.copy_context()  # the variation level travels in it

        def settle(result: Any, error: BaseException | None) -> None:
            if future.done():  # cancelled (a timeout, a discarded step, Ctrl-C) meanwhile
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        def job() -> None:
            try:
                result, error = context.run(fn, *args), None
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting call
                result, error = None, exc
                if isinstance(exc, StopIteration):  # a Future refuses it (TypeError)
                    error = RuntimeError(f"{fn!r} raised StopIteration")
                    error.__cause__ = exc
            try:
                loop.call_soon_threadsafe(settle, result, error)
            except RuntimeError:
                pass  # the loop is closed: nobody waits for this call any more

        if self._idle.acquire(blocking=False):
            self._jobs.put(job)  # an idle worker was counted on: it takes this job
        else:
            thread = threading.Thread(target=self._work, args=(job,), name=self.name, daemon=True)
            thread.start()
        return await future

    def _work(self, job: Callable[[], None]) -> None:
        while True:
            job()
            del job  # no reference to a finished call's result while idle
            self._idle.release()
            while True:
                try:
                    job = self._jobs.get(timeout=self.IDLE_SECONDS)
                    break
                except queue.Empty:
                    if self._idle.acquire(blocking=False):
                        return  # took an idle token back: no call counts on this thread
                    # A call took the token and is putting its job on the queue.


SAMPLER_THREADS = AbandonableThreads("maker-graph-sampler")
"""The workers every `FunctionSampler` and a sync `MakerMiddleware` share."""
