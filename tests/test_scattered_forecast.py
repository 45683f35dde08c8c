"""The forecast with scattered wrong answers agrees with what voting does (issue 13).

A model whose wrong answers scatter over several rivals is voted far better than
the one-rival race predicts: plurality favours the right answer even below
p = 0.5. The pilot measures the spread (how often two wrong samples of a step
agree) and `ModelEstimate.forecast` uses it, assuming geometric rival shares.

The simulated models draw wrong answers from geometric shares (the forecast's
own family: this checks the estimate of the spread, the budget and plurality)
and from Zipf shares over six rivals (another shape: there only the interval is
checked, see the last test). Pilot: 600 steps x 2 samples; measurement: 1,500
other steps voted by the real `Voter` with plurality at the budget. Seeds are
fixed; the tolerance, 2 standard errors of the measurement, is the one of issue
13's Done-when.
"""

from __future__ import annotations

import asyncio
import math
import random

from maker_graph.estimate import SampleRecord, summarise
from maker_graph.records import RawSample
from maker_graph.scaling import race_error
from maker_graph.vote import VotePolicy, Voter

GEOMETRIC = [0.4 * 0.6**j for j in range(20)]  # two wrong samples agree 1/4 of the time
ZIPF = [1.0 / (j + 1) for j in range(6)]  # ... 0.25 of the time too


class ScatteredModel:
    """Right with probability `p`; else a rival drawn with weights `rivals`, independently."""

    def __init__(self, p: float, seed: int, rivals: list[float] = GEOMETRIC) -> None:
        self.p = p
        self.rivals = rivals
        self.rng = random.Random(seed)

    def answer(self, step: int) -> str:
        if self.rng.random() < self.p:
            return f"{step}:right"
        rival = self.rng.choices(range(len(self.rivals)), weights=self.rivals)[0]
        return f"{step}:wrong{rival}"

    async def sample(self, step_input: int, index: int) -> RawSample:
        text = self.answer(step_input)
        return RawSample(output=text, text=text)


def _pilot(p: float, rivals: list[float] = GEOMETRIC, steps: int = 600) -> object:
    model = ScatteredModel(p, seed=1, rivals=rivals)
    records = []
    for step in range(steps):
        for index in range(2):
            text = model.answer(step)
            right = text.endswith(":right")
            records.append(
                SampleRecord(
                    step=step,
                    index=index,
                    outcome="correct" if right else "wrong",
                    answer=None if right else text,
                )
            )
    return summarise("scattered", records, cap=None, price=None, task_steps=1000)


def _voted_error(p: float, k: int, budget: int, rivals: list[float], n: int = 1500) -> float:
    voter = Voter(
        ScatteredModel(p, seed=2, rivals=rivals),
        policy=VotePolicy(k=k, max_samples=budget, on_no_consensus="plurality"),
    )

    async def run() -> int:
        wrong = 0
        for step in range(10_000, 10_000 + n):  # none of the pilot's steps
            result = await voter.vote(step)
            wrong += result.winner != f"{step}:right"
        return wrong

    return asyncio.run(run()) / n


def _check(
    p: float, k: int, budget: int, rivals: list[float] = GEOMETRIC, *, point: bool = True
) -> tuple[float, float]:
    est = _pilot(p, rivals)
    forecast = est.forecast(k, max_samples=budget)  # type: ignore[attr-defined]
    measured = _voted_error(p, k, budget, rivals)
    se = math.sqrt(measured * (1 - measured) / 1500)
    if point:
        assert abs(forecast.step_error - measured) <= 2 * se, (forecast, measured, se)
    assert forecast.step_error_low <= measured <= forecast.step_error_high, (forecast, measured)
    assert abs(forecast.spread - 0.25) < 0.1  # the pilot saw the scatter (s.e. ~0.04)
    return forecast.step_error, measured


def test_scattered_errors_below_one_half() -> None:
    # p = 0.4: one rival would win most votes (race_error(0.6, 3) = 0.77); scattered
    # rivals leave the right answer the plurality: voting errs on 21 % (forecast 22 %).
    forecast, measured = _check(0.4, 3, 24)
    assert race_error(0.6, 3) > 2.5 * measured  # the old forecast is far off here
    assert measured < 0.6  # and voting beats one sample


def test_scattered_errors_above_one_half() -> None:
    # p = 0.7: the one-rival race promises 7.3 % at k = 3; voting gets 0.7 % (forecast 0.9 %).
    forecast, measured = _check(0.7, 3, 36)
    assert race_error(0.3, 3) > 4 * measured


def test_another_shape_of_scatter_stays_inside_the_interval() -> None:
    # Zipf rivals with the same chance of agreement: the geometric assumption puts the
    # point forecast at 0.19 where voting errs 0.22 (beyond 2 s.e.), but the bootstrap
    # interval holds the measurement. The point is not checked: the shape matters.
    _check(0.4, 3, 24, ZIPF, point=False)


def test_samples_per_step_follow_the_vote() -> None:
    # Below a majority the samples come from the simulated vote: within 10 % of the
    # Voter's own count on 600 steps (their s.e. is ~2 %).
    est = _pilot(0.4)
    forecast = est.forecast(3, max_samples=24)  # type: ignore[attr-defined]
    voter = Voter(
        ScatteredModel(0.4, seed=3),
        policy=VotePolicy(k=3, max_samples=24, on_no_consensus="plurality"),
    )

    async def run() -> float:
        drawn = 0
        for step in range(20_000, 20_600):
            drawn += (await voter.vote(step)).samples_drawn
        return drawn / 600

    measured = asyncio.run(run())
    assert abs(forecast.samples_per_step - measured) <= 0.1 * measured, (forecast, measured)
