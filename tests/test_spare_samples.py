"""Spare samples (`VotePolicy.spare_samples`): drawn ahead in a request of `n`, never votes.

Through the real ChatOpenAI client against the loopback stub (requests, choices and
billing as a server sees them), and with an in-process batching sampler whose answer
depends only on the sample index, so a vote with spares can be compared with one
without, step for step.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import pytest
from openai_stub import OpenAIStub, StubBehaviour

from maker_graph.errors import BudgetExhaustedError, ConfigurationError
from maker_graph.providers import ProviderOptions, resolve_chat_model
from maker_graph.records import RawSample
from maker_graph.run import run_task_sync
from maker_graph.sampling import ChatModelSampler, TemperatureSchedule
from maker_graph.tasks.hanoi import HanoiStep, HanoiTask, apply_move, format_answer, legal_moves
from maker_graph.vote import VotePolicy, Voter

QUIET = dict(
    wrong_rate=0.0,
    ramble_rate=0.0,
    malformed_rate=0.0,
    rate_limit_rate=0.0,
    server_error_rate=0.0,
    retry_after=0.01,
)
ONE_TEMPERATURE = TemperatureSchedule(first=0.1, rest=0.1)


@pytest.fixture
def stub_factory() -> Iterator:
    started: list[OpenAIStub] = []

    def make(**behaviour: object) -> OpenAIStub:
        options = {**QUIET, **behaviour}
        stub = OpenAIStub(
            lambda messages: "4", lambda messages, rival: "5", StubBehaviour(**options)
        )  # type: ignore[arg-type]
        started.append(stub.start())
        return stub

    yield make
    for stub in started:
        stub.stop()


def _vote(
    stub: OpenAIStub, spares: int, schedule: TemperatureSchedule = ONE_TEMPERATURE, **policy: Any
) -> Any:
    model = resolve_chat_model("openai:stub", ProviderOptions(base_url=stub.base_url, timeout=10))
    voter = Voter(
        ChatModelSampler(model, temperature=schedule),
        policy=VotePolicy(k=3, spare_samples=spares, **policy),
    )
    return asyncio.run(voter.vote("2+2?"))


def test_unneeded_spares_are_billed_and_reported_never_voted(stub_factory) -> None:
    stub = stub_factory()
    result = _vote(stub, spares=2)
    assert stub.stats["requests"] == 1 and stub.stats["choices"] == 5
    assert result.winner == "4" and result.tally == {"4": 3}
    assert result.samples_drawn == 3 and result.spares_unused == 2
    assert result.valid_votes == 3 and result.red_flagged == 0
    # The bill includes the spares' completion tokens, and so does the result.
    assert result.input_tokens == stub.usage["prompt_tokens"]
    assert result.output_tokens == stub.usage["completion_tokens"] == 5


def test_spares_replace_an_outvoted_sample_without_another_request(stub_factory) -> None:
    script = ("correct", "wrong", "correct", "correct", "correct")
    without = _vote(stub_factory(script=script), spares=0)
    stub = stub_factory(script=script)
    with_spares = _vote(stub, spares=2)
    assert stub.stats["requests"] == 1  # without spares: a second request for the rest
    assert with_spares.tally == without.tally == {"4": 4, "5": 1}
    assert with_spares.samples_drawn == without.samples_drawn == 5
    assert with_spares.spares_unused == 0 and with_spares.rounds == without.rounds == 2


def test_spares_stop_at_the_step_budget(stub_factory) -> None:
    stub = stub_factory()
    result = _vote(stub, spares=5, max_samples=4)
    assert stub.stats["choices"] == 4  # 3 for the round, 1 spare: the budget's end
    assert result.samples_drawn + result.spares_unused == 4


def test_no_spares_on_the_greedy_request(stub_factory) -> None:
    """Under the paper's schedule sample 0 is greedy: copies of it would not be votes."""
    stub = stub_factory()
    result = _vote(stub, spares=2, schedule=TemperatureSchedule())
    assert stub.stats["requests"] == 2 and stub.stats["choices"] == 1 + 2 + 2
    assert [s.raw.temperature for s in result.samples] == [0.0, 0.1, 0.1]
    assert result.spares_unused == 2


def test_bad_spare_samples() -> None:
    for bad in (-1, 1.5, "2"):
        with pytest.raises(ConfigurationError, match="spare_samples"):
            VotePolicy(spare_samples=bad)  # type: ignore[arg-type]


class IndexedBatcher:
    """Batches like a chat model taking `n`; sample i's answer is fixed by (seed, step, i).

    A move of Hanoi is right with probability 0.8, else one of two rival moves, so
    steps need extra rounds often and a spare changes which request a sample comes
    from, never what it says.
    """

    batch_limit = 8

    def __init__(self, task: HanoiTask, seed: int) -> None:
        self.task, self.seed = task, seed
        self.requests = self.served = 0

    def batch_key(self, index: int) -> Hashable:
        return "one-temperature"

    def _answer(self, step_input: HanoiStep, index: int) -> RawSample:
        state = step_input.state
        truth = self.task.true_step(state, step_input.previous_move)
        u = random.Random(f"{self.seed}:{step_input.step}:{index}").random()
        move = truth.action
        if u >= 0.8:  # one of two rival moves that parse: only the vote rejects them
            rivals = [m for m in legal_moves(state) if m != move]
            move = rivals[int(u >= 0.9) % len(rivals)]
        text = str(format_answer(move, apply_move(state, move)))
        return RawSample(text, text, input_tokens=0, output_tokens=1)

    async def sample(self, step_input: Any, index: int) -> RawSample:
        self.requests += 1
        self.served += 1
        return self._answer(step_input, index)

    async def sample_many(self, step_input: Any, indices: Sequence[int]) -> list[RawSample]:
        self.requests += 1
        self.served += len(indices)
        return [self._answer(step_input, i) for i in indices]


@pytest.mark.parametrize("seed", [3, 11])
def test_spares_never_change_a_vote_and_budgets_count_them(tmp_path, seed: int) -> None:
    """Same winners and tallies step for step with and without spares (fixed seeds);
    every sample served is in the report, and a run budget counts spares exactly."""
    tallies: dict[int, list[tuple[int, dict[Any, int]]]] = {}
    reports = {}
    batchers = {}
    for spares in (0, 3):
        task = HanoiTask(5)
        batcher = IndexedBatcher(task, seed)
        seen: list[tuple[int, dict[Any, int]]] = []
        reports[spares] = run_task_sync(
            task,
            batcher,
            VotePolicy(k=3, spare_samples=spares),
            run_log=str(tmp_path / f"run-{spares}"),
            speculate=0,
            on_step=lambda step, result, seen=seen: seen.append((step, dict(result.tally))),
        )
        tallies[spares], batchers[spares] = seen, batcher
    assert reports[0].done and reports[3].done and reports[0].steps == 31
    assert tallies[3] == tallies[0]
    assert reports[0].spares_unused == 0 and reports[3].spares_unused > 0
    for spares in (0, 3):
        assert reports[spares].samples == batchers[spares].served
        assert reports[spares].valid_samples == reports[0].valid_samples
    assert batchers[3].requests < batchers[0].requests

    # A run budget: spares count against it like any sample served.
    task = HanoiTask(5)
    batcher = IndexedBatcher(task, seed)
    with pytest.raises(BudgetExhaustedError) as caught:
        run_task_sync(
            task,
            batcher,
            VotePolicy(k=3, spare_samples=3),
            run_log=str(tmp_path / "budget"),
            speculate=0,
            max_total_samples=40,
        )
    assert caught.value.spent == batcher.served == 40
