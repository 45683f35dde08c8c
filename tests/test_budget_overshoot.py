"""Token and cost budgets overshoot by at most one step (docs/reliability.md, run.py).

The run checks them before every step, so with a fixed price per step the run must
stop at the first step boundary at or past the budget: steps committed and tokens
spent are exact. A run that checked only every few steps would overshoot by
several steps and fail here.

Each step here costs exactly K samples (error-free model: the first K votes agree)
of IN + OUT tokens each, so a step spends STEP_TOKENS = K * (IN + OUT) tokens.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from maker_graph.errors import BudgetExhaustedError
from maker_graph.records import RawSample
from maker_graph.run import run_task
from maker_graph.runlog import open_run_log
from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
from maker_graph.testing import ErrorModel
from maker_graph.vote import VotePolicy

K = 2
IN, OUT = 100, 7
STEP_TOKENS = K * (IN + OUT)
DISKS = 8  # 255 steps: room for a budget that falls well inside the run


class FixedTokens:
    """The error-free Hanoi model, but every sample reports IN prompt and OUT completion tokens."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def sample(self, step_input: Any, index: int) -> RawSample:
        raw = await self.inner.sample(step_input, index)
        return RawSample(raw.output, raw.text, IN, OUT, raw.finish_reason, raw.model)


def _sampler(task: HanoiTask) -> FixedTokens:
    return FixedTokens(simulated_sampler(task, ErrorModel(error_rate=0.0, malformed_rate=0.0)))


@pytest.mark.parametrize("budget_steps", [1.0, 3.5, 11.0, 37.2, 101.9])
async def test_token_budget_stops_within_one_step(tmp_path: Path, budget_steps: float) -> None:
    task = HanoiTask(DISKS)
    budget = int(budget_steps * STEP_TOKENS)
    # The run stops before the first step at which spent >= budget: after
    # ceil(budget / STEP_TOKENS) steps, never later.
    expected_steps = math.ceil(budget / STEP_TOKENS)
    run_dir = tmp_path / "run"
    with pytest.raises(BudgetExhaustedError) as info:
        await run_task(
            task,
            _sampler(task),
            VotePolicy(k=K, max_samples=10),
            run_log=str(run_dir),
            max_total_tokens=budget,
            chunk_size=1,
        )
    err = info.value
    assert err.budget == "tokens"
    assert err.steps_done == expected_steps
    assert err.spent == expected_steps * STEP_TOKENS
    assert budget <= err.spent < budget + STEP_TOKENS  # overshoot below one step
    with open_run_log(str(run_dir), readonly=True) as log:
        records = list(log.steps())
    assert [r.step for r in records] == list(range(expected_steps))
    assert sum(r.input_tokens + r.output_tokens for r in records) == err.spent


@pytest.mark.parametrize("budget_steps", [2.5, 9.5, 23.3])
async def test_cost_budget_stops_within_one_step(budget_steps: float) -> None:
    task = HanoiTask(DISKS)
    price_in, price_out = 3.0, 15.0  # per million tokens
    step_cost = K * (IN * price_in + OUT * price_out) / 1e6
    budget = budget_steps * step_cost
    # budget_steps are chosen away from float ties: ceil is unambiguous.
    expected_steps = math.ceil(budget_steps)
    with pytest.raises(BudgetExhaustedError) as info:
        await run_task(
            task,
            _sampler(task),
            VotePolicy(k=K, max_samples=10),
            max_total_cost=budget,
            price_in=price_in,
            price_out=price_out,
        )
    err = info.value
    assert err.budget == "cost"
    assert err.steps_done == expected_steps
    assert err.spent == pytest.approx(expected_steps * step_cost, rel=1e-12)
    assert budget <= err.spent < budget + step_cost
