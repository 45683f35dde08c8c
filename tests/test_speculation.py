"""Speculative stepping: the committed log is the same with and without it.

A simulated model seeded by step and sample index gives the same samples to a
step however early it starts, so a speculative run must commit exactly the
winners and tallies of a plain one; wrong first guesses (a 10 % error rate)
make it cancel work, which must show as `speculative_wasted`, never as votes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from maker_graph.errors import ConfigurationError
from maker_graph.run import run_task
from maker_graph.runlog import open_run_log
from maker_graph.speculation import takes_time
from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
from maker_graph.testing import ErrorModel
from maker_graph.vote import VotePolicy


def _committed(where: Path) -> list[Any]:
    with open_run_log(where, readonly=True) as log:
        return [
            (r.step, r.action, r.state_hash, r.tally, r.samples, r.decided_by) for r in log.steps()
        ]


# Seeds 4 and 14 once showed the undercount fixed in 2026-12: a cancellation that
# Python 3.11's `wait_for` swallowed let a thrown-away step draw on, uncounted.
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 14])
async def test_a_speculative_run_commits_what_a_plain_run_commits(
    tmp_path: Path, seed: int
) -> None:
    task = HanoiTask(5)
    errors = ErrorModel(
        error_rate=0.1,
        rivals=2,
        malformed_rate=0.05,
        seed=seed,
        latency_median=0.002,
        latency_sigma=0.5,
    )
    policy = VotePolicy(k=3, max_samples=40)
    plain = await run_task(
        task,
        simulated_sampler(task, errors),
        policy=policy,
        run_log=tmp_path / "plain",
        speculate=0,
    )
    fast = await run_task(
        task, simulated_sampler(task, errors), policy=policy, run_log=tmp_path / "fast", speculate=2
    )
    assert plain.done and fast.done and plain.steps == fast.steps == 31
    assert _committed(tmp_path / "fast") == _committed(tmp_path / "plain")
    assert plain.speculative_wasted == 0 and plain.speculate == 0
    assert fast.speculate == 2
    # Votes are the same; what speculation threw away is counted on top of them.
    assert fast.valid_samples == plain.valid_samples
    # `samples` (what budgets use) counts every request started: exactly the plain
    # run's plus what speculation threw away, even when a cancellation lands mid-round.
    assert fast.samples == plain.samples + fast.speculative_wasted


async def test_wrong_guesses_are_cancelled_and_counted(tmp_path: Path) -> None:
    task = HanoiTask(6)
    errors = ErrorModel(error_rate=0.1, rivals=1, seed=11, latency_median=0.002)
    report = await run_task(
        task,
        simulated_sampler(task, errors),
        policy=VotePolicy(k=3, max_samples=40),
        run_log=tmp_path,
        speculate=1,
    )
    assert report.done
    # At a 10 % error rate some of 63 steps' first valid samples lose their votes.
    assert report.speculative_wasted > 0
    assert report.samples >= report.valid_samples + report.speculative_wasted


def test_speculation_is_on_by_default_only_where_samples_take_time() -> None:
    task = HanoiTask(3)
    assert not takes_time(simulated_sampler(task))
    assert takes_time(simulated_sampler(task, ErrorModel(latency_median=0.05)))


async def test_speculate_must_be_a_count(tmp_path: Path) -> None:
    task = HanoiTask(3)
    with pytest.raises(ConfigurationError, match="speculate"):
        await run_task(task, simulated_sampler(task), run_log=tmp_path, speculate=-1)


class _BilledAtStart:
    """A provider's bill: every request started costs 10 prompt tokens and 1 completion
    token, reported in the reply's usage, which a request cancelled in flight never gets."""

    takes_time = True

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.started = 0

    async def sample(self, step_input: Any, index: int) -> Any:
        self.started += 1
        raw = await self.inner.sample(step_input, index)
        return dataclasses.replace(raw, input_tokens=10, output_tokens=1)


async def test_requests_cancelled_in_flight_are_counted_as_unmetered(tmp_path: Path) -> None:
    """Cancelled speculative requests are billed but report no usage: the report's
    tokens are exactly the metered samples' and `unmetered_samples` says how many
    samples the token counts (and the cost) leave out."""
    unmetered = 0
    for seed in (5, 6, 7):
        task = HanoiTask(5)
        errors = ErrorModel(error_rate=0.15, rivals=1, seed=seed, latency_median=0.004)
        sampler = _BilledAtStart(simulated_sampler(task, errors))
        report = await run_task(
            task, sampler, VotePolicy(k=3, max_samples=40), run_log=tmp_path / str(seed)
        )
        assert report.speculate > 0 and report.steps == 31
        assert report.samples == sampler.started  # every request started is counted
        assert report.unmetered_samples <= report.speculative_wasted
        metered = report.samples - report.unmetered_samples
        assert (report.input_tokens, report.output_tokens) == (10 * metered, metered)
        unmetered += report.unmetered_samples
    # Seen: 2 to 11 per seed (a wrong guess's child cancelled mid-request).
    assert unmetered > 0
