"""A step that stops a run undecided (no consensus) is counted in the run's totals like any
other: its samples and its provider failures (issue 14: "a step that found no consensus
reports samples: 0 though 4 were served; that step's 429s are missing from
provider_failures")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from maker_graph.errors import NoConsensusError
from maker_graph.records import RawSample
from maker_graph.run import run_task
from maker_graph.runlog import open_run_log
from maker_graph.sampling import ProviderRetry
from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
from maker_graph.testing import ErrorModel, SimulatedRateLimitError
from maker_graph.vote import VotePolicy

FAST_RETRY = ProviderRetry(initial_delay=0.0001, max_delay=0.001, jitter=0.0, max_attempts=8)
SPLIT_STEP = 3
RIVAL = "move = [2, 0, 1]\nnext_state = [[5, 4, 3], [2], [1]]"


class _SplitAndThrottled:
    """A right model, except at SPLIT_STEP: every first attempt is a 429, and the answers
    alternate between two well-formed moves, so no answer gets ahead."""

    def __init__(self, task: HanoiTask) -> None:
        self.good = simulated_sampler(task, ErrorModel(error_rate=0.0))
        self.served = 0
        self.throttled = 0
        self._tried: set[int] = set()

    async def sample(self, step_input: Any, index: int) -> RawSample:
        if step_input.step == SPLIT_STEP and index not in self._tried:
            self._tried.add(index)
            self.throttled += 1
            raise SimulatedRateLimitError(0.0)
        raw = await self.good.sample(step_input, index)
        self.served += 1
        if step_input.step == SPLIT_STEP and index % 2:
            return RawSample(RIVAL, RIVAL, 1, 1)
        return raw


async def _stopped(tmp_path: Path) -> tuple[_SplitAndThrottled, dict[str, Any]]:
    task = HanoiTask(5)
    sampler = _SplitAndThrottled(task)
    with pytest.raises(NoConsensusError):
        await run_task(
            task,
            sampler,
            VotePolicy(k=3, max_samples=6, retry=FAST_RETRY),
            run_log=str(tmp_path),
            speculate=0,
        )
    with open_run_log(str(tmp_path), readonly=True) as log:
        checkpoint = log.checkpoint()
    assert checkpoint is not None and checkpoint.next_step == SPLIT_STEP
    return sampler, checkpoint.totals


async def test_an_undecided_steps_samples_are_counted(tmp_path: Path) -> None:
    sampler, totals = await _stopped(tmp_path)
    # The step drew samples (each after a 429) until no answer could still win.
    assert sampler.throttled >= 3
    assert totals["samples"] == sampler.served


async def test_an_undecided_steps_provider_failures_are_counted(tmp_path: Path) -> None:
    sampler, totals = await _stopped(tmp_path)
    assert totals.get("provider_failures", {}).get("rate_limit", 0) == sampler.throttled
