"""A cancelled sync sampler call is abandoned: the run's loop ends without waiting for it."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from maker_graph.sampling import FunctionSampler

HANG_SECONDS = 20.0
"""How long the hung call holds its thread; far above the bound the tests allow."""

BOUND_SECONDS = 5.0
"""The most a run may take to end after its hung call was cancelled (noisy machine)."""


def test_a_cancelled_hung_call_does_not_hold_the_end_of_the_run() -> None:
    release = threading.Event()
    started = threading.Event()

    def hangs(step_input: str) -> str:
        started.set()
        release.wait(HANG_SECONDS)
        return "late"

    sampler = FunctionSampler(hangs)

    async def main() -> None:
        call = asyncio.create_task(sampler.sample("x", 0))
        assert await asyncio.to_thread(started.wait, 5)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    begun = time.monotonic()
    try:
        asyncio.run(main())  # its end shuts the default executor down and joins it
        elapsed = time.monotonic() - begun
    finally:
        release.set()
    # With asyncio.to_thread the end of asyncio.run joined the hung thread (20 s).
    assert elapsed < BOUND_SECONDS, f"the run's end waited {elapsed:.1f}s for a cancelled call"


async def test_results_errors_and_context_reach_the_caller() -> None:
    level: contextvars.ContextVar[int] = contextvars.ContextVar("level", default=0)

    def answer(step_input: str, index: int) -> str:
        if step_input == "boom":
            raise ValueError("bad input")
        return f"{step_input}-{index}-{level.get()}"

    sampler = FunctionSampler(answer)
    level.set(3)
    raws = await asyncio.gather(*(sampler.sample("q", i) for i in range(4)))
    assert [raw.output for raw in raws] == [f"q-{i}-3" for i in range(4)]
    with pytest.raises(ValueError, match="bad input"):
        await sampler.sample("boom", 0)


def _workers() -> int:
    return sum(t.name == "maker-graph-sampler" for t in threading.enumerate())


async def test_idle_workers_are_reused() -> None:
    sampler = FunctionSampler(lambda step_input: step_input)
    await sampler.sample("warm", 0)  # at least one idle worker exists from here on
    before = _workers()
    for _ in range(20):
        await sampler.sample("a", 0)
    # Each call found an idle worker (the previous call's): no thread per call.
    assert _workers() <= before
