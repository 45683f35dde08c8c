"""Failed provider calls count in the report however their step ends (issue 14, Counts):
a step interrupted mid-vote (Ctrl-C, SIGTERM, a cancelled task) and a speculative step
cancelled because its guess lost the vote made those calls too."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

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
RIVAL_STATE = [[5, 4, 3], [2], [1]]


class _ThrottledThenStuck:
    """Right answers, except that a `stuck` step's calls are each refused once (429) and
    then never answer, so the step is still voting when the run is stopped."""

    takes_time = True

    def __init__(self, task: HanoiTask, stuck: Any) -> None:
        self.good = simulated_sampler(task, ErrorModel(error_rate=0.0))
        self.stuck = stuck
        self.throttled = 0
        self.hanging = asyncio.Event()
        self._tried: set[tuple[int, int]] = set()

    async def sample(self, step_input: Any, index: int) -> RawSample:
        if self.stuck(step_input):
            if (step_input.step, index) not in self._tried:
                self._tried.add((step_input.step, index))
                self.throttled += 1
                raise SimulatedRateLimitError(0.0)
            self.hanging.set()
            await asyncio.sleep(3)  # cancelled before (bounded all the same)
        return await self.good.sample(step_input, index)


async def test_an_interrupted_steps_failures_are_counted(tmp_path: Path) -> None:
    task = HanoiTask(5)
    sampler = _ThrottledThenStuck(task, lambda step_input: step_input.step == SPLIT_STEP)
    run = asyncio.ensure_future(
        run_task(
            task,
            sampler,
            VotePolicy(k=3, retry=FAST_RETRY),
            run_log=str(tmp_path),
            speculate=0,
        )
    )
    await asyncio.wait_for(sampler.hanging.wait(), 10)
    await asyncio.sleep(0.05)  # every call of the round refused once, then hanging
    run.cancel()
    try:
        await run
    except asyncio.CancelledError:
        pass
    with open_run_log(str(tmp_path), readonly=True) as log:
        checkpoint = log.checkpoint()
    assert checkpoint is not None and checkpoint.next_step == SPLIT_STEP
    assert sampler.throttled == 3  # the first round's k calls
    assert checkpoint.totals["provider_failures"] == {"rate_limit": sampler.throttled}


class _WrongGuess(_ThrottledThenStuck):
    """At SPLIT_STEP the first answer back is a well-formed wrong move (so speculation
    starts the next step from its state), the right ones come a little later."""

    async def sample(self, step_input: Any, index: int) -> RawSample:
        if step_input.step == SPLIT_STEP:
            if index == 0:
                return RawSample(RIVAL, RIVAL, 1, 1)
            await asyncio.sleep(0.05)  # the speculative step is refused meanwhile
        return await super().sample(step_input, index)


async def test_a_cancelled_speculative_steps_failures_are_counted() -> None:
    task = HanoiTask(5)
    sampler = _WrongGuess(task, lambda step_input: _lists(step_input.state) == RIVAL_STATE)
    report = await run_task(task, sampler, VotePolicy(k=2, retry=FAST_RETRY), speculate=2)
    assert report.done
    assert sampler.hanging.is_set()  # the wrong step was still voting when cancelled
    assert sampler.throttled >= 2  # at least its first round's k calls
    assert report.provider_failures == {"rate_limit": sampler.throttled}


def _lists(state: Any) -> list[list[int]]:
    return [list(peg) for peg in state]
