"""No hopeless samples: a step stops when it cannot be decided, a stuck sampler is varied."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from openai_stub import OpenAIStub, StubBehaviour

from maker_graph import vote_step
from maker_graph.errors import NoConsensusError
from maker_graph.providers import ProviderOptions, resolve_chat_model
from maker_graph.records import StepResult
from maker_graph.sampling import (
    REHEAT_TEMPERATURES,
    ChatModelSampler,
    FunctionSampler,
    use_variation,
)
from maker_graph.vote import VotePolicy, Voter


def _parse(text: str) -> str:
    if text == "bad":
        raise ValueError("not an answer")
    return text


def _dice(seed: int, weights: tuple[int, ...]) -> Any:
    def sample(question: str, index: int) -> str:
        rng = random.Random(seed * 7919 + index)
        return rng.choices(["a", "b", "c", "bad"], weights)[0]

    return FunctionSampler(sample, in_thread=False)  # pure and instant: no worker thread


def _run(sampler: Any, k: int, m: int, action: str) -> StepResult | NoConsensusError:
    voter = Voter(
        sampler,
        parser=_parse,
        policy=VotePolicy(
            k=k,
            max_samples=m,
            on_no_consensus=action,  # type: ignore[arg-type]
        ),
        escalate=(lambda partial: "human") if action == "escalate" else None,
    )
    try:
        return asyncio.run(voter.vote("q"))
    except NoConsensusError as exc:
        return exc


@pytest.mark.parametrize("weights", [(6, 3, 1, 1), (4, 4, 1, 2), (3, 3, 3, 3)])
def test_hope_is_lost_only_when_the_step_could_not_be_decided(weights: tuple[int, ...]) -> None:
    """Against plurality (which always draws its whole budget) on the same samples:
    a decided step is decided alike, with the same samples; a step given up as hopeless
    is one that the full budget would not have decided either, and the stop is the
    first moment no answer could still get k ahead. 200 fixed seeds per weighting."""
    stopped_early = 0
    for seed in range(200):
        rng = random.Random(seed)
        k = rng.randint(2, 4)
        m = rng.randint(k, 4 * k)
        full = _run(_dice(seed, weights), k, m, "plurality")
        assert isinstance(full, StepResult)
        early = _run(_dice(seed, weights), k, m, "raise")
        if full.decided_by == "vote":
            assert isinstance(early, StepResult)
            assert (early.winner, early.samples_drawn, early.tally) == (
                full.winner,
                full.samples_drawn,
                full.tally,
            )
            continue
        assert isinstance(early, NoConsensusError)
        assert early.samples_drawn <= full.samples_drawn == m
        top = sorted(early.tally.values(), reverse=True) + [0, 0]
        assert top[0] - top[1] + (m - early.samples_drawn) < k  # no hope at the stop
        stopped_early += early.samples_drawn < m
    assert stopped_early >= 10  # the case under test happened often enough to count


def test_escalation_gets_the_hopeless_step_at_once() -> None:
    seen: list[StepResult] = []

    def human(partial: StepResult) -> str:
        seen.append(partial)
        return "c"

    answers = ["a", "b", "a", "b", "a", "b", "a", "b"]
    result = asyncio.run(
        vote_step(
            lambda q, i: answers[i],
            "q",
            k=3,
            max_samples=8,
            on_no_consensus="escalate",
            escalate=human,
        )
    )
    # a,b,a (2-1) -> b,a (3-2) -> b,a (4-3) -> 1 left cannot close a margin of 2.
    assert result.winner == "c" and result.samples_drawn == 7
    assert seen[0].stopped == "hopeless" and seen[0].tally == {"a": 4, "b": 3}


def test_plurality_draws_its_budget() -> None:
    answers = ["a", "b"] * 5
    result = asyncio.run(
        vote_step(lambda q, i: answers[i], "q", k=3, max_samples=10, on_no_consensus="plurality")
    )
    assert result.samples_drawn == 10 and result.stopped is None


# --------------------------------------------------------------------------- stuck samplers


class TemperatureModel(BaseChatModel):
    """Answers `cold` below `threshold` and `hot` at or above it; counts calls."""

    cold: str = "oops"
    hot: str = "42"
    threshold: float = 0.5
    calls: list[float] = []

    @property
    def _llm_type(self) -> str:
        return "temperature-test"

    def _generate(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        temperature = kwargs.get("temperature") or 0.0
        self.calls.append(temperature)
        text = self.hot if temperature >= self.threshold else self.cold
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


def _digit(message: AIMessage) -> int:
    return int(str(message.content))


def test_an_identical_flagged_answer_is_redrawn_hotter() -> None:
    model = TemperatureModel(calls=[])
    voter = Voter(ChatModelSampler(model), parser=_digit, policy=VotePolicy(k=2))
    result = asyncio.run(voter.vote("q"))
    assert result.winner == 42 and result.variations == 1 and result.stopped is None
    # Round 1: "oops" at 0 and at 0.1; round 2: two more at 0.1, the first a repeat of
    # round 1's: stuck at once, no replacement started; round 3: two at 0.5, both 42.
    # Sorted: the model's calls run in threads, their order is the scheduler's.
    hot = REHEAT_TEMPERATURES[0]
    assert sorted(model.calls) == [0.0, 0.1, 0.1, 0.1, hot, hot]
    assert result.samples_drawn == 6 and result.red_flags == {"parse_error": 4}


def test_a_sampler_stuck_at_every_temperature_gives_up_early() -> None:
    model = TemperatureModel(calls=[], threshold=2.0)  # never answers well
    voter = Voter(ChatModelSampler(model), parser=_digit, policy=VotePolicy(k=3))
    with pytest.raises(NoConsensusError) as info:
        asyncio.run(voter.vote("q"))
    # Three rounds of three (as configured, 0.5, 1.0) instead of the budget of 50.
    error = info.value
    assert error.samples_drawn == 9 and error.stopped == "stuck"
    # A red-flagged arrival starts its replacement at once; the step proves stuck only
    # when the next repeat arrives, and a replacement begun by then is thrown away:
    # billed (counted as an unused spare), never voted. How many began is the
    # scheduler's (0 to k - 1 per level); that they are all accounted for is not.
    assert 9 <= len(model.calls) <= 9 + error.spares_unused <= 9 + 3 * 2
    voted = Counter({0.0: 1, 0.1: 2, REHEAT_TEMPERATURES[0]: 3, REHEAT_TEMPERATURES[1]: 3})
    assert sorted(set(model.calls)) == [0.0, 0.1, *REHEAT_TEMPERATURES]
    assert not voted - Counter(model.calls)  # every voted draw at its level


class StaggeredBilledModel(TemperatureModel):
    """TemperatureModel whose calls take 0, 20 or 40 ms in turn (so a round's replies
    arrive one by one) and report 10 prompt and 1 completion token each."""

    started: list[int] = []

    def _generate(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        self.started.append(len(self.started))
        time.sleep(0.02 * (len(self.started) % 3))
        result = super()._generate(messages, stop, run_manager, **kwargs)
        usage = {"input_tokens": 10, "output_tokens": 1, "total_tokens": 11}
        result.generations[0].message.usage_metadata = usage  # type: ignore[attr-defined]
        return result


def test_replacements_thrown_away_mid_request_are_unmetered() -> None:
    """A stuck step throws away replacements started at the old temperature: those that
    replied are metered (their tokens counted), those cancelled in flight are not and
    say so. Exact at any interleaving: tokens = 10 x (billed - unmetered)."""
    model = StaggeredBilledModel(calls=[], threshold=2.0, started=[])
    voter = Voter(ChatModelSampler(model), parser=_digit, policy=VotePolicy(k=3))
    with pytest.raises(NoConsensusError) as info:
        asyncio.run(voter.vote("q"))
    error = info.value
    billed = error.samples_drawn + error.spares_unused
    assert error.samples_drawn == 9 and error.spares_unused > 0  # staggered: some thrown
    assert len(model.calls) <= billed
    # Seen on every run: 4 thrown away, 2 of them cancelled mid-call (13 calls made).
    assert 0 < error.unmetered_samples <= error.spares_unused
    metered = billed - error.unmetered_samples
    assert (error.input_tokens, error.output_tokens) == (10 * metered, metered)


def test_a_stuck_escalated_step_says_why() -> None:
    model = TemperatureModel(calls=[], threshold=2.0)
    seen: list[StepResult] = []
    voter = Voter(
        ChatModelSampler(model),
        parser=_digit,
        policy=VotePolicy(k=2, on_no_consensus="escalate"),
        escalate=lambda partial: seen.append(partial) or 7,
    )
    result = asyncio.run(voter.vote("q"))
    assert result.winner == 7 and result.stopped == "stuck" and result.variations == 2
    # 2 (0 and 0.1), 2 at 0.1 (stuck), 2 at 0.5 (stuck), 2 at 1.0 (stuck): given up.
    assert seen[0].samples_drawn == 8


def test_variation_rotates_models() -> None:
    """Two models: varied once, sample i goes to the model one place on."""
    first, second = TemperatureModel(calls=[], threshold=2.0), TemperatureModel(calls=[])
    sampler = ChatModelSampler([first, second])
    with use_variation(1):
        raw = asyncio.run(sampler.sample("q", 0))
    assert raw.text == "42" and second.calls == [REHEAT_TEMPERATURES[0]] and not first.calls


def test_samplers_without_temperature_are_not_varied() -> None:
    """A plain function says nothing of its temperature: identical flags are just flags,
    and the step stops only when hopeless."""
    result = asyncio.run(
        vote_step(
            lambda q: "bad",
            "q",
            k=3,
            max_samples=10,
            parser=_parse,
            on_no_consensus="escalate",
            escalate=lambda partial: "x",
        )
    )
    assert result.samples_drawn == 9 and result.stopped == "hopeless"
    assert result.variations == 0


def test_stuck_through_chatopenai_and_n() -> None:
    """A server that answers the same malformed text every time: 4 requests, not 50."""
    stub = OpenAIStub(
        lambda messages: "42",
        behaviour=StubBehaviour(
            wrong_rate=0.0,
            ramble_rate=0.0,
            malformed_rate=1.0,
            rate_limit_rate=0.0,
            server_error_rate=0.0,
        ),
    ).start()
    try:
        model = resolve_chat_model(
            "openai:stub", ProviderOptions(base_url=stub.base_url, timeout=10)
        )
        voter = Voter(ChatModelSampler(model), parser=_digit, policy=VotePolicy(k=3))
        with pytest.raises(NoConsensusError) as info:
            asyncio.run(voter.vote("q"))
    finally:
        stub.stop()
    # Round 1: T=0 alone and two at 0.1 in one request; then three at 0.5, three at 1.0.
    assert info.value.samples_drawn == 9 == stub.stats["choices"]
    assert stub.stats["requests"] == 4
    # The step failed, and was billed: the error says for how much.
    assert info.value.input_tokens == stub.usage["prompt_tokens"] > 0
    assert info.value.output_tokens == stub.usage["completion_tokens"] > 0
