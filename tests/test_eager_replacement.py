"""Eager replacement (`VotePolicy.eager_replacement`): a red-flagged sample is replaced
as soon as it arrives, and the vote is still exactly the round-based one.

A simulated model seeded by step and sample index answers the same whenever a
sample is drawn, so votes with and without eager replacement must agree on every
tally, winner, sample count and stopping reason, whatever order samples arrive in
(lognormal latency shuffles it). Paced doubles, gated by events with bounded waits,
show when a replacement starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import pytest

from maker_graph.errors import BudgetExhaustedError, NoConsensusError
from maker_graph.records import RawSample, StepResult
from maker_graph.run import run_task
from maker_graph.runlog import open_run_log
from maker_graph.sampling import VARIATION
from maker_graph.speculation import Speculator
from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
from maker_graph.testing import ErrorModel, SimulatedSampler
from maker_graph.vote import VotePolicy, Voter

WAIT = 5.0
"""Bound on every wait for a paced sample: reached only when the behaviour under test is absent."""


def _errors(seed: int) -> ErrorModel:
    # 20 % malformed (red flags) and 15 % wrong: many steps need 2-4 rounds.
    return ErrorModel(
        error_rate=0.15,
        rivals=2,
        malformed_rate=0.2,
        seed=seed,
        latency_median=0.001,
        latency_sigma=1.0,
    )


def _outcome(result: StepResult | BaseException) -> Any:
    if isinstance(result, NoConsensusError):
        return ("no consensus", result.tally, result.samples_drawn, result.stopped)
    assert isinstance(result, StepResult), result
    return (
        result.winner,
        result.decided_by,
        result.tally,
        result.samples_drawn,
        result.valid_votes,
        result.red_flags,
        result.rounds,
        result.stopped,
        result.input_tokens,
        result.output_tokens,
        [(s.index, s.round, s.key, s.red_flag) for s in result.samples],
    )


def _strict(text: str) -> str:
    """The right answer or a rival ("right (alternative 1)"); a malformed one raises."""
    if not text.startswith("right"):
        raise ValueError(f"malformed: {text!r}")
    return text


async def _votes(seed: int, eager: bool, **policy: Any) -> list[Any]:
    sampler = SimulatedSampler(lambda q: "right", errors=_errors(seed), input_tokens=7)
    voter = Voter(
        sampler,
        parser=_strict,
        policy=VotePolicy(k=3, eager_replacement=eager, **policy),
        escalate=lambda result: "asked",
    )
    results = await asyncio.gather(
        *[voter.vote(f"step {i}", step=i) for i in range(40)], return_exceptions=True
    )
    if eager:
        # Without variation levels no replacement is ever thrown away.
        assert all(r.spares_unused == 0 for r in results if isinstance(r, StepResult))
    return [_outcome(r) for r in results]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("on_no_consensus", ["raise", "plurality", "escalate"])
@pytest.mark.parametrize("max_samples", [4, 7, 10, None])
async def test_tallies_are_the_round_based_ones(
    seed: int, on_no_consensus: str, max_samples: int | None
) -> None:
    """Tight budgets reach both limits of the rule: the budget's end and loss of hope."""
    policy = dict(max_samples=max_samples, on_no_consensus=on_no_consensus)
    rounds = await _votes(seed, False, **policy)
    eager = await _votes(seed, True, **policy)
    assert eager == rounds
    assert sum(bool(r[5]) for r in rounds if r[0] != "no consensus") >= 5  # red flags
    if max_samples == 4 and on_no_consensus == "raise":
        assert any(r[0] == "no consensus" for r in rounds)  # the budget bit somewhere


def _committed(where: Path) -> list[Any]:
    with open_run_log(where, readonly=True) as log:
        return [(r.step, r.action, r.tally, r.samples, r.red_flags, r.rounds) for r in log.steps()]


class Served:
    """Counts the samples a run asked of the provider (calls that returned)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.served = 0

    async def sample(self, step_input: Any, index: int) -> RawSample:
        raw = await self.inner.sample(step_input, index)
        self.served += 1
        return raw  # type: ignore[no-any-return]


@pytest.mark.parametrize("seed", [4, 5])
async def test_a_run_commits_the_same_log_with_and_without(tmp_path: Path, seed: int) -> None:
    task = HanoiTask(4)
    logs = {}
    for name, eager, speculate in (("rounds", False, 0), ("eager", True, 0), ("both", True, 2)):
        report = await run_task(
            task,
            simulated_sampler(task, _errors(seed)),
            policy=VotePolicy(k=3, max_samples=30, eager_replacement=eager),
            run_log=tmp_path / name,
            speculate=speculate,
        )
        assert report.steps == 15 and report.spares_unused == 0
        logs[name] = _committed(tmp_path / name)
    assert logs["eager"] == logs["rounds"] and logs["both"] == logs["rounds"]
    assert any(flags for *_, flags, _ in logs["rounds"])  # red flags were replaced


async def test_replacements_count_against_a_run_budget_exactly(tmp_path: Path) -> None:
    task = HanoiTask(5)
    served = Served(simulated_sampler(task, _errors(6)))
    with pytest.raises(BudgetExhaustedError) as caught:
        await run_task(
            task,
            served,
            policy=VotePolicy(k=3, eager_replacement=True),
            run_log=tmp_path,
            speculate=0,
            max_total_samples=45,
        )
    assert caught.value.spent == served.served == 45


class Paced:
    """Sample 0 is malformed at once; samples 1 and 2 answer only once `gate` opens
    (or after `wait` seconds); later ones answer at once. Notes starts and ends."""

    def __init__(self, wait: float) -> None:
        self.wait = wait
        self.gate = asyncio.Event()
        self.events: list[str] = []

    async def sample(self, step_input: Any, index: int) -> RawSample:
        self.events.append(f"start {index}")
        if index == 3:
            self.gate.set()  # the replacement of sample 0 has started
        if index in (1, 2):
            try:
                await asyncio.wait_for(self.gate.wait(), self.wait)
            except TimeoutError:
                pass
        text = "garbage" if index == 0 else "4"
        self.events.append(f"end {index}")
        return RawSample(text, text)


async def test_a_flagged_sample_is_replaced_before_its_round_ends() -> None:
    sampler = Paced(WAIT)
    voter = Voter(sampler, parser=int, policy=VotePolicy(k=3))
    result = await asyncio.wait_for(voter.vote("2+2?"), 2 * WAIT)
    assert result.winner == 4 and result.tally == {4: 3} and result.samples_drawn == 4
    assert result.rounds == 2 and result.red_flags == {"parse_error": 1}
    events = sampler.events
    # Sample 3 (round 2) started while round 1's slow samples were still out.
    assert events.index("start 3") < min(events.index("end 1"), events.index("end 2"))


async def test_without_it_the_replacement_waits_for_the_round() -> None:
    """The check above bites: the round-based loop starts sample 3 after the round."""
    sampler = Paced(0.05)
    voter = Voter(sampler, parser=int, policy=VotePolicy(k=3, eager_replacement=False))
    result = await asyncio.wait_for(voter.vote("2+2?"), WAIT)
    assert result.tally == {4: 3} and result.samples_drawn == 4
    events = sampler.events
    assert events.index("start 3") > max(events.index("end 1"), events.index("end 2"))


class Stuck:
    """Varies like a chat model (`variation_levels`): at level 0 every answer is the
    same malformed text, at level 1 and up it is "42". Sample 1 answers only once a
    level-0 replacement has started (bounded), so that replacement was a bad bet."""

    variation_levels = 2

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.calls: list[tuple[int, int]] = []

    async def sample(self, step_input: Any, index: int) -> RawSample:
        level = VARIATION.get()
        self.calls.append((index, level))
        if level == 0 and index >= 2:
            self.gate.set()
            await asyncio.sleep(WAIT)  # cancelled long before (the step proves stuck)
        if index == 1:
            try:
                await asyncio.wait_for(self.gate.wait(), WAIT)
            except TimeoutError:
                pass
        text = "oops" if level == 0 else "42"
        return RawSample(text, text, temperature=0.1 if level == 0 else 0.5, model="m")


def _key(value: Any) -> Hashable:
    return value


@pytest.mark.parametrize("eager", [False, True])
async def test_a_replacement_drawn_before_the_step_proved_stuck_is_thrown_away(
    eager: bool,
) -> None:
    sampler = Stuck()
    voter = Voter(sampler, parser=int, key=_key, policy=VotePolicy(k=2, eager_replacement=eager))
    result = await asyncio.wait_for(voter.vote("q"), 3 * WAIT)
    # Round 1: "oops" twice at level 0 (stuck); round 2: samples 2 and 3 at level 1.
    assert result.winner == 42 and result.tally == {42: 2} and result.variations == 1
    assert result.samples_drawn == 4 and result.rounds == 2
    assert [(s.index, s.raw.temperature) for s in result.samples] == [
        (0, 0.1),
        (1, 0.1),
        (2, 0.5),
        (3, 0.5),
    ]
    if eager:
        # Sample 2 was started at level 0 when sample 0 came back flagged, then
        # cancelled and redrawn at level 1: billed, reported as an unused spare.
        assert (2, 0) in sampler.calls and result.spares_unused == 1
    else:
        assert sampler.calls == [(0, 0), (1, 0), (2, 1), (3, 1)] and result.spares_unused == 0


@pytest.mark.parametrize("room", [None, 100])
def test_speculative_steps_under_a_run_budget_draw_round_by_round(room: int | None) -> None:
    # A speculative slot reserves its step budget against the run's room; an eager
    # replacement thrown away when a step proves stuck is outside that budget, so
    # with a run sample budget (room) the speculator's steps must not draw eagerly.
    voter = Voter(Stuck(), parser=int, key=_key, policy=VotePolicy(k=2, eager_replacement=True))
    speculator = Speculator(
        voter,
        step_input=lambda state, previous, step: state,
        identity=lambda state: ("", ""),
        may_start=lambda state, step: True,
        room=None if room is None else (lambda: room),
        depth=2,
        semaphore=None,
    )
    assert speculator.voter.policy.eager_replacement is (room is None)
    assert voter.policy.eager_replacement  # the caller's voter is left as it was
