"""Budgets are exact: a step capped at M samples never draws M+1, and a run capped at N
samples never draws N+1, across resumes and cancellations too.

"Drawn" is counted at the provider: every call that was asked for and did not fail
(failed calls are retried and are not samples). The counting sampler below sees
them all, whatever the engine reports.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maker_graph.errors import BudgetExhaustedError, NoConsensusError
from maker_graph.records import RawSample
from maker_graph.run import run_task
from maker_graph.sampling import ProviderRetry
from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
from maker_graph.testing import ErrorModel
from maker_graph.vote import VotePolicy, vote_step
from maker_graph.voting import lead


class Counting:
    """Counts successful provider calls; optionally slow so a test can cancel mid-step."""

    def __init__(self, inner: Any, delay: float = 0.0) -> None:
        self.inner = inner
        self.delay = delay
        self.calls = 0
        self.started = 0
        self.in_flight = 0

    async def sample(self, step_input: Any, index: int) -> RawSample:
        self.started += 1
        self.in_flight += 1
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            raw = await self.inner.sample(step_input, index)
        finally:
            self.in_flight -= 1
        self.calls += 1
        return raw  # type: ignore[no-any-return]


FAST = ProviderRetry(initial_delay=0.0001, max_delay=0.0001, jitter=0.0, max_attempts=10)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    m=st.integers(min_value=1, max_value=12),
    k=st.integers(min_value=1, max_value=4),
    error=st.sampled_from([0.0, 0.2, 0.45]),
    malformed=st.sampled_from([0.0, 0.3]),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_a_step_never_draws_more_than_its_budget(
    m: int, k: int, error: float, malformed: float, seed: int
) -> None:
    if m < k:
        m = k
    task = HanoiTask(5)
    errors = ErrorModel(error_rate=error, malformed_rate=malformed, exception_rate=0.1, seed=seed)
    sampler = Counting(simulated_sampler(task, errors))
    step = task.step_input(task.initial_state(), None, seed)
    policy = VotePolicy(k=k, max_samples=m, retry=FAST)
    try:
        result = asyncio.run(vote_step(sampler, step, parser=task.parse, policy=policy))
        drawn = result.samples_drawn
    except NoConsensusError as exc:
        drawn = exc.samples_drawn
        # The budget was spent, or what was left of it could not have decided the step.
        assert drawn == m or lead(exc.tally) + (m - drawn) < k
    assert sampler.calls == drawn <= m


@pytest.mark.parametrize("limit", [0, 1, 2, 3, 4, 5, 10, 11, 49, 50, 101, 333])
async def test_a_run_never_draws_more_than_its_sample_budget(limit: int) -> None:
    task = HanoiTask(7)  # 127 steps, ~400 samples: every limit here stops the run
    sampler = Counting(simulated_sampler(task, ErrorModel(error_rate=0.1, seed=2)))
    with pytest.raises(BudgetExhaustedError) as info:
        await run_task(task, sampler, VotePolicy(k=3, retry=FAST), max_total_samples=limit)
    assert sampler.calls <= limit
    assert info.value.spent == sampler.calls
    assert info.value.budget == "samples" and info.value.limit == limit
    assert "max_total_samples=" in str(info.value)


async def test_the_budget_holds_across_resumes(tmp_path: Path) -> None:
    task = HanoiTask(6)
    sampler = Counting(simulated_sampler(task, ErrorModel(error_rate=0.15, seed=4)))
    policy = VotePolicy(k=3, retry=FAST)
    for limit in (40, 41, 77, 150):
        with pytest.raises(BudgetExhaustedError):
            await run_task(task, sampler, policy, run_log=tmp_path, max_total_samples=limit)
        assert sampler.calls <= limit
    report = await run_task(task, sampler, policy, run_log=tmp_path, max_total_samples=10_000)
    assert report.done and report.samples == sampler.calls


async def test_a_cancelled_steps_samples_count_against_the_budget(tmp_path: Path) -> None:
    task = HanoiTask(6)
    sampler = Counting(simulated_sampler(task, ErrorModel(error_rate=0.2, seed=6)), delay=0.002)
    # No per-call timeout: under one, each call runs in its own `wait_for` task, and a
    # cancel can land before that task starts, so no call is caught mid-flight and the
    # `calls < started` check below (which shows a cancel did hit a call) can miss.
    policy = VotePolicy(k=3, retry=dataclasses.replace(FAST, timeout=None))
    limit = 120
    for wait in (0.03, 0.05, 0.021):
        run = asyncio.create_task(
            run_task(
                task,
                sampler,
                policy,
                run_log=tmp_path,
                max_total_samples=limit,
                commit_interval=0.0,
            )
        )
        await asyncio.sleep(wait)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        assert sampler.in_flight == 0
    with pytest.raises(BudgetExhaustedError):
        await run_task(task, sampler, policy, run_log=tmp_path, max_total_samples=limit)
    # Calls cancelled in flight never returned but may have been billed: the run
    # counted them as drawn, so even counting every call started the budget holds.
    assert sampler.calls < sampler.started <= limit
