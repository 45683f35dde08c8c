"""Tests written to kill mutants that survived `scripts/mutation_check.py` (issue 17).

Each test checks one documented guarantee directly, at the moment it must hold,
so that breaking it (the mutant named in the test's docstring) fails here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from maker_graph.errors import BudgetExhaustedError
from maker_graph.records import RawSample
from maker_graph.run import run_task
from maker_graph.runlog import RunLog, open_run_log
from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
from maker_graph.testing import ErrorModel
from maker_graph.vote import VotePolicy

K = 2
DISKS = 4  # 15 steps, K samples each with an error-free model


class _Watch:
    """At every request, records (samples requested so far, what the log had reserved)."""

    def __init__(self, task: HanoiTask, log: RunLog) -> None:
        self.inner = simulated_sampler(task, ErrorModel(error_rate=0.0, malformed_rate=0.0))
        self.log = log
        self.requested = 0
        self.seen: list[tuple[int, int]] = []

    def _note(self, n: int) -> None:
        self.requested += n
        self.seen.append((self.requested, self.log.reserved()))

    def _unreserved(self) -> list[tuple[int, int]]:
        return [(asked, reserved) for asked, reserved in self.seen if reserved < asked]


class _AsyncOnly(_Watch):
    async def sample(self, step_input: Any, index: int) -> RawSample:
        self._note(1)
        return await self.inner.sample(step_input, index)


class _Instant(_Watch):
    async def sample(self, step_input: Any, index: int) -> RawSample:
        self._note(1)
        return await self.inner.sample(step_input, index)

    def sample_now(self, step_input: Any, index: int) -> RawSample:
        self._note(1)
        return self.inner.sample_now(step_input, index)  # type: ignore[no-any-return]


class _Batching(_Watch):
    """Several samples per request (as a chat model with `n`)."""

    batch_limit = 4

    def batch_key(self, index: int) -> str:
        return "one temperature"

    async def sample(self, step_input: Any, index: int) -> RawSample:
        self._note(1)
        return await self.inner.sample(step_input, index)

    async def sample_many(self, step_input: Any, indices: list[int]) -> list[RawSample]:
        self._note(len(indices))
        return [await self.inner.sample(step_input, i) for i in indices]


async def _run_watched(tmp_path: Path, cls: type[_Watch], **budget: Any) -> _Watch:
    task = HanoiTask(DISKS)
    with open_run_log(str(tmp_path / "run")) as log:
        sampler = cls(task, log)
        report = await run_task(
            task, sampler, VotePolicy(k=K, max_samples=10), run_log=log, **budget
        )
        assert report.done
        # Every sample requested was drawn and answered: the clean stop leaves the
        # reservation at exactly what was spent.
        assert sampler.requested == report.samples == (2**DISKS - 1) * K
        assert log.reserved() == report.samples
    return sampler


async def test_async_samples_are_reserved_before_they_are_requested(tmp_path: Path) -> None:
    """Kills `reserve_after_async_draw`: a crash during a request must find it reserved."""
    sampler = await _run_watched(tmp_path, _AsyncOnly)
    assert len(sampler.seen) == sampler.requested > 0
    assert sampler._unreserved() == []


async def test_instant_samples_are_reserved_before_they_are_drawn(tmp_path: Path) -> None:
    """Kills `reserve_after_sample_now`: the no-wait path reserves first too (sample budget)."""
    sampler = await _run_watched(tmp_path, _Instant, max_total_samples=1000)
    assert len(sampler.seen) == sampler.requested > 0
    assert sampler._unreserved() == []


async def test_batched_samples_are_reserved_before_the_request(tmp_path: Path) -> None:
    """Kills `reserve_after_batch_draw`: a request for n samples reserves all n first."""
    sampler = await _run_watched(tmp_path, _Batching)
    # The first round of every step (K samples) went out as one request.
    assert len(sampler.seen) == 2**DISKS - 1
    assert sampler._unreserved() == []


class _Served:
    """Counts every sample the provider is asked for (a slow simulated model)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.served = 0

    async def sample(self, step_input: Any, index: int) -> RawSample:
        self.served += 1
        return await self.inner.sample(step_input, index)  # type: ignore[no-any-return]


@pytest.mark.parametrize("budget", [60, 97, 150])
async def test_a_speculative_run_never_draws_past_its_sample_budget(
    tmp_path: Path, budget: int
) -> None:
    """Kills `speculative_waste_not_counted`: cancelled speculative samples use up budget.

    At a 10 % error rate some first guesses are wrong and their speculative step is
    cancelled; were those samples left out of the running count, the steps near the
    end of the budget would be allowed more than is left.
    """
    task = HanoiTask(6)  # 63 steps, about 200 samples: every budget here runs out
    errors = ErrorModel(error_rate=0.1, rivals=1, seed=11, latency_median=0.002)
    sampler = _Served(simulated_sampler(task, errors))
    with pytest.raises(BudgetExhaustedError) as info:
        await run_task(
            task,
            sampler,
            VotePolicy(k=3, max_samples=40),
            run_log=tmp_path,
            speculate=2,
            max_total_samples=budget,
        )
    assert info.value.budget == "samples"
    assert 0 < sampler.served <= budget


async def test_at_the_end_of_a_sample_budget_the_undecided_step_is_counted_not_guessed(
    tmp_path: Path,
) -> None:
    """Kills `undecided_step_samples_dropped` and `budget_end_plurality`.

    Near the end of a sample budget the last step may draw only what is left; if
    that does not decide it the run stops (never a plurality guess committed) and
    the samples that step drew are counted in the committed totals.
    """
    task = HanoiTask(6)
    errors = ErrorModel(error_rate=0.15, rivals=1, seed=5)
    undecided = 0
    for budget in range(40, 140, 7):
        sampler = _Served(simulated_sampler(task, errors))
        run_dir = tmp_path / f"b{budget}"
        with pytest.raises(BudgetExhaustedError):
            await run_task(
                task,
                sampler,
                VotePolicy(k=3, max_samples=40),
                run_log=str(run_dir),
                max_total_samples=budget,
                speculate=0,
            )
        with open_run_log(str(run_dir), readonly=True) as log:
            records = list(log.steps())
            checkpoint = log.checkpoint()
        assert checkpoint is not None
        assert {r.decided_by for r in records} == {"vote"}
        assert sampler.served <= budget
        assert checkpoint.totals["samples"] == sampler.served
        undecided += checkpoint.totals.get("uncommitted", 0) > 0
    # The budgets above end mid-step often enough to exercise the undecided path.
    assert undecided >= 3
