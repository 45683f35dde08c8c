"""The engine with the simulated model reproduces the scaling laws.

Each case votes N independent steps with a simulated model that errs towards a
single rival answer (the worst case the closed forms describe), with fixed seeds.
Tolerance: 4 standard errors of the measured mean (binomial for the win rate,
the sample standard deviation for the sample count), so a correct engine fails
with probability < 1e-4 per check, and the seeds make every run identical.
"""

from __future__ import annotations

import asyncio
import math
import statistics

import pytest

from maker_graph.scaling import expected_samples_per_step, p_step
from maker_graph.testing import ErrorModel, SimulatedSampler
from maker_graph.vote import VotePolicy, Voter


@pytest.mark.parametrize(("p", "k", "steps"), [(0.6, 2, 3000), (0.7, 3, 3000), (0.8, 3, 3000)])
def test_engine_matches_closed_forms(p: float, k: int, steps: int) -> None:
    sampler = SimulatedSampler(
        lambda q: "right", errors=ErrorModel(error_rate=1 - p, seed=1234), tokens=len
    )
    voter = Voter(sampler, policy=VotePolicy(k=k, max_samples=10_000, keep_samples=False))

    async def run() -> list[tuple[bool, int]]:
        out = []
        for s in range(steps):
            r = await voter.vote(f"step-{s}")
            out.append((r.winner == "right", r.valid_votes))
        return out

    results = asyncio.run(run())
    wins = [w for w, _ in results]
    samples = [n for _, n in results]
    expected_win = p_step(p, k)
    win_se = math.sqrt(expected_win * (1 - expected_win) / steps)
    assert abs(statistics.fmean(wins) - expected_win) < 4 * win_se
    sample_se = statistics.stdev(samples) / math.sqrt(steps)
    assert abs(statistics.fmean(samples) - expected_samples_per_step(p, k)) < 4 * sample_se
