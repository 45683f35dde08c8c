"""Fault injection: provider failures are retried and never vote; bad answers are red flags.

The long run here is Hanoi at 12 disks (4,095 steps); `benchmarks/faults.py` runs
the same scenario at 20 disks. Every scenario is seeded, so the counts are exact
run to run; the rate checks use a tolerance of 5 binomial standard deviations.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pydantic import BaseModel

from maker_graph.errors import SamplerError
from maker_graph.red_flags import max_output_tokens, truncated
from maker_graph.run import count_errors, run_task
from maker_graph.runlog import open_run_log
from maker_graph.sampling import ChatModelSampler, ProviderRetry, classify_failure
from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
from maker_graph.testing import (
    ErrorModel,
    ScriptedSampler,
    SimulatedChatModel,
    SimulatedProviderError,
    SimulatedRateLimitError,
    SimulatedTimeoutError,
)
from maker_graph.testing.faults import Faults, FaultySampler
from maker_graph.vote import VotePolicy, vote_step

# Retries as fast as the event loop allows: the test is about what is retried, not how long.
FAST_RETRY = ProviderRetry(initial_delay=0.0001, max_delay=0.001, jitter=0.0, max_attempts=8)
RED_FLAGS = [max_output_tokens(750), truncated()]


def within(count: int, trials: int, rate: float) -> bool:
    sd = math.sqrt(trials * rate * (1 - rate))
    return abs(count - trials * rate) <= 5 * sd + 1


async def test_hanoi_with_provider_failures_is_solved_without_errors(tmp_path: Path) -> None:
    task = HanoiTask(12)
    errors = ErrorModel(
        error_rate=0.01,
        exception_rate=0.05,
        timeout_rate=0.01,
        rate_limit_rate=0.01,
        retry_after=0.0005,
        seed=8,
    )
    report = await run_task(
        task,
        simulated_sampler(task, errors),
        VotePolicy(k=3, retry=FAST_RETRY),
        run_log=tmp_path,
        red_flags=RED_FLAGS,
    )
    assert report.done and report.steps == task.total_steps == 4095
    with open_run_log(tmp_path, readonly=True) as log:
        records = list(log.steps())
        assert count_errors(task, records) == 0
    # Failures are counted by kind, each near its rate among all calls made.
    failures = report.provider_failures
    assert set(failures) == {"exception", "timeout", "rate_limit"}
    calls = report.samples + sum(failures.values())
    assert within(failures["exception"], calls, 0.05)
    assert within(failures["timeout"], calls, 0.01)
    assert within(failures["rate_limit"], calls, 0.01)
    # ... and none of them is a sample or a vote: the log's per-step samples add up to
    # the report's, and every sample either voted or was red-flagged.
    assert sum(r.samples for r in records) == report.samples
    assert report.valid_samples + report.red_flagged == report.samples
    assert sum(r.valid for r in records) == report.valid_samples


async def test_provider_failures_are_never_votes() -> None:
    sampler = ScriptedSampler(
        [
            SimulatedProviderError("HTTP 500"),
            "a",
            SimulatedTimeoutError("slow"),
            "a",
            SimulatedRateLimitError(0.0),
            "a",
        ]
    )
    result = await vote_step(sampler, "q", policy=VotePolicy(k=3, retry=FAST_RETRY))
    sampler.assert_all_used()
    assert result.winner == "a"
    assert (result.samples_drawn, result.valid_votes) == (3, 3)
    assert result.provider_failures == {"exception": 1, "timeout": 1, "rate_limit": 1}
    assert [s.index for s in result.samples] == [0, 1, 2]


def test_failures_are_classified_and_retry_after_is_honoured() -> None:
    assert classify_failure(SimulatedTimeoutError()) == "timeout"
    assert classify_failure(TimeoutError()) == "timeout"
    assert classify_failure(SimulatedRateLimitError(2.0)) == "rate_limit"
    assert classify_failure(SimulatedProviderError("500")) == "exception"
    policy = ProviderRetry(initial_delay=0.01, max_delay=0.02)
    assert policy.delay(1, SimulatedRateLimitError(3.5)) == 3.5  # the hint, not the backoff
    assert policy.delay(1, SimulatedRateLimitError(600.0)) == 60.0  # but never forever
    assert policy.delay(5, SimulatedProviderError("500")) <= 0.02 * 1.25


async def test_a_provider_that_keeps_failing_stops_the_run_with_its_counts(
    tmp_path: Path,
) -> None:
    task = HanoiTask(4)
    good = simulated_sampler(task, ErrorModel(error_rate=0.0))

    class DiesAtStep5:
        async def sample(self, step_input, index):  # type: ignore[no-untyped-def]
            if step_input.step >= 5:
                raise SimulatedProviderError("the provider is down")
            return await good.sample(step_input, index)

    retry = ProviderRetry(initial_delay=0.0001, max_delay=0.0001, max_attempts=3)
    with pytest.raises(SamplerError) as info:
        await run_task(task, DiesAtStep5(), VotePolicy(k=2, retry=retry), run_log=tmp_path)
    assert info.value.failures["exception"] >= 3
    with open_run_log(tmp_path, readonly=True) as log:
        assert [r.step for r in log.steps()] == [0, 1, 2, 3, 4]  # decided steps are kept
    report = await run_task(task, good, VotePolicy(k=2), run_log=tmp_path)
    assert report.done and report.resumed_from == 5
    with open_run_log(tmp_path, readonly=True) as log:
        records = list(log.steps())
    assert [r.step for r in records] == list(range(15))
    assert count_errors(task, records) == 0


async def test_empty_wrong_shape_truncated_and_slow_answers(tmp_path: Path) -> None:
    task = HanoiTask(8)
    inner = simulated_sampler(task, ErrorModel(error_rate=0.01, seed=3))
    faults = Faults(
        empty_rate=0.03,
        wrong_shape_rate=0.03,
        truncated_rate=0.04,
        slow_rate=0.02,
        slow_seconds=5.0,
        seed=3,
    )
    sampler = FaultySampler(inner, faults, step_key=lambda s: s.step)
    retry = ProviderRetry(initial_delay=0.0001, max_delay=0.001, timeout=0.05, max_attempts=8)
    report = await run_task(
        task, sampler, VotePolicy(k=3, retry=retry), run_log=tmp_path, red_flags=RED_FLAGS
    )
    assert report.done
    with open_run_log(tmp_path, readonly=True) as log:
        assert count_errors(task, log.steps()) == 0
    # Bad answers were red flags, by reason; slow calls became retried timeouts.
    assert report.red_flags["parse_error"] > 0  # empty, wrong-shape JSON, cut mid-answer
    assert report.red_flags["truncated"] > 0  # cut after a complete-looking answer
    assert report.provider_failures.get("timeout", 0) > 0
    flagged = report.red_flags["parse_error"] + report.red_flags["truncated"]
    assert within(flagged, report.samples, 0.10)


async def test_wrong_shape_json_from_a_structured_chat_model_never_votes() -> None:
    class Label(BaseModel):
        label: str

    model = SimulatedChatModel(
        oracle=lambda messages: '{"label": "billing"}',
        wrong=lambda messages, rival: ['{"lable": "bug"}', '["billing"]', "null", ""][rival],
        errors=ErrorModel(error_rate=0.4, rivals=4, seed=5),
    )
    sampler = ChatModelSampler(model, structured=Label)
    flagged = 0
    for step in range(20):
        result = await vote_step(
            sampler, f"ticket {step}: I was charged twice", k=2, parser=lambda out: out.label
        )
        assert result.winner == "billing"
        assert result.tally == {"billing": result.valid_votes}  # wrong shapes never voted
        assert result.samples_drawn - result.valid_votes == result.red_flags.get("parse_error", 0)
        flagged += result.samples_drawn - result.valid_votes
    assert flagged > 5  # the scenario did exercise wrong shapes
