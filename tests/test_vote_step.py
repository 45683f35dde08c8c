"""`vote_step` / `Voter`: rounds, red-flag resampling, budgets, failures, parallelism."""

from __future__ import annotations

import asyncio

import pytest

from maker_graph.errors import ConfigurationError, NoConsensusError, SamplerError
from maker_graph.records import RawSample, StepResult
from maker_graph.red_flags import max_output_tokens
from maker_graph.sampling import ChatModelSampler, ProviderRetry
from maker_graph.testing import (
    ErrorModel,
    ScriptedSampler,
    SimulatedChatModel,
    SimulatedProviderError,
    SimulatedSampler,
)
from maker_graph.vote import VotePolicy, Voter, vote_step, vote_step_sync

FAST_RETRY = ProviderRetry(initial_delay=0.0, jitter=0.0)


async def test_unanimous_first_round_draws_exactly_k() -> None:
    sampler = ScriptedSampler(["a", "a", "a"])
    result = await vote_step(sampler, "q", k=3)
    assert (result.winner, result.samples_drawn, result.rounds) == ("a", 3, 1)
    assert result.decided_by == "vote"
    assert [i for _, i in sampler.calls] == [0, 1, 2]
    sampler.assert_all_used()


async def test_later_rounds_draw_only_what_can_still_matter() -> None:
    # Round 1: a, b, a -> lead 1, need 2. Round 2: a, a -> lead 3: decided.
    sampler = ScriptedSampler(["a", "b", "a", "a", "a"])
    result = await vote_step(sampler, "q", k=3)
    assert result.winner == "a"
    assert result.rounds == 2
    assert result.tally == {"a": 4, "b": 1}
    assert [s.round for s in result.samples] == [1, 1, 1, 2, 2]
    sampler.assert_all_used()


async def test_red_flagged_samples_never_vote_and_are_replaced() -> None:
    def parser(text: str) -> int:
        return int(text)

    sampler = ScriptedSampler(["1", "oops", "1", "1"])
    result = await vote_step(sampler, "q", k=3, parser=parser)
    assert result.winner == 1
    assert result.samples_drawn == 4 and result.valid_votes == 3
    assert result.red_flags == {"parse_error": 1}
    flagged = [s for s in result.samples if not s.valid]
    assert flagged[0].parse_error and "invalid literal" in flagged[0].parse_error
    sampler.assert_all_used()


async def test_length_red_flag_uses_reported_tokens() -> None:
    long = RawSample(output="a", text="a", output_tokens=900)
    sampler = ScriptedSampler([long, "a", "a", "a"])
    result = await vote_step(sampler, "q", k=3, red_flags=[max_output_tokens(750)])
    assert result.red_flags == {"too_long": 1}
    assert result.valid_votes == 3


async def test_budget_is_exact_and_error_carries_tally() -> None:
    sampler = ScriptedSampler(["a", "b"] * 5)
    with pytest.raises(NoConsensusError) as info:
        await vote_step(sampler, "q", k=2, max_samples=7, step_id=12)
    err = info.value
    # At 3-3 with one sample left nothing can get 2 ahead: the step stops (loss of hope).
    assert err.samples_drawn == 6 and len(sampler.calls) == 6
    assert err.tally == {"a": 3, "b": 3}
    assert err.step == 12
    assert "max_samples=7" in str(err) and "plurality" in str(err)


async def test_plurality_fallback_is_marked() -> None:
    sampler = ScriptedSampler(["a", "b", "b", "a", "b"])
    result = await vote_step(sampler, "q", k=3, max_samples=5, on_no_consensus="plurality")
    assert result.winner == "b" and result.decided_by == "plurality"


async def test_escalation_handler_decides() -> None:
    seen: list[StepResult] = []

    async def human(partial: StepResult) -> str:
        seen.append(partial)
        return "c"

    sampler = ScriptedSampler(["a", "b", "a", "b"])
    result = await vote_step(
        sampler, "q", k=3, max_samples=4, on_no_consensus="escalate", escalate=human
    )
    assert result.winner == "c" and result.decided_by == "escalation"
    # 2-1 with one sample left cannot get 3 ahead: escalated without drawing it.
    assert seen[0].tally == {"a": 2, "b": 1} and seen[0].stopped == "hopeless"


def test_escalate_without_handler_is_a_setup_error() -> None:
    with pytest.raises(ConfigurationError, match="escalation handler"):
        Voter(ScriptedSampler([]), policy=VotePolicy(on_no_consensus="escalate"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be an integer >= 1"),
        ({"k": 3, "max_samples": 2}, "must be >= k"),
        ({"on_no_consensus": "guess"}, "on_no_consensus must be"),
        ({"max_concurrency": 0}, "max_concurrency"),
    ],
)
def test_policy_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        VotePolicy(**kwargs)  # type: ignore[arg-type]


async def test_provider_failures_are_retried_and_never_vote() -> None:
    sampler = ScriptedSampler([SimulatedProviderError("500"), "a", TimeoutError("slow"), "a", "a"])
    voter = Voter(sampler, policy=VotePolicy(k=3, retry=FAST_RETRY, max_concurrency=1))
    result = await voter.vote("q")
    assert result.winner == "a" and result.samples_drawn == 3
    assert result.provider_failures == {"exception": 1, "timeout": 1}
    sampler.assert_all_used()


async def test_one_failing_sample_does_not_cancel_its_siblings() -> None:
    finished: list[int] = []

    class Flaky:
        async def sample(self, step_input: str, index: int) -> RawSample:
            if index == 0:
                raise SimulatedProviderError("down")
            await asyncio.sleep(0.02)
            finished.append(index)
            return RawSample(output="a", text="a")

    voter = Voter(
        Flaky(), policy=VotePolicy(k=3, retry=ProviderRetry(max_attempts=2, initial_delay=0.0))
    )
    with pytest.raises(SamplerError) as info:
        await voter.vote("q")
    assert sorted(finished) == [1, 2]
    assert info.value.failures == {"exception": 2}


async def test_samples_of_a_round_run_in_parallel() -> None:
    """All k samples of the first round are in flight together (checked by overlap, not time)."""
    in_flight = peak = 0
    inner = SimulatedSampler(lambda q: "a", errors=ErrorModel(error_rate=0.0), tokens=len)

    class Overlapping:
        async def sample(self, step_input: str, index: int) -> RawSample:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1
            return await inner.sample(step_input, index)

    result = await vote_step(Overlapping(), "q", k=5)
    assert result.samples_drawn == 5 and result.rounds == 1
    assert peak == 5


async def test_max_concurrency_limits_calls_in_flight() -> None:
    in_flight = peak = 0

    class Counting:
        async def sample(self, step_input: str, index: int) -> RawSample:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.005)
            in_flight -= 1
            return RawSample(output="a", text="a")

    await Voter(Counting(), policy=VotePolicy(k=6, max_concurrency=2)).vote("q")
    assert peak == 2


async def test_chat_model_temperature_schedule_and_rotation() -> None:
    a = SimulatedChatModel(
        oracle=lambda m: "yes", errors=ErrorModel(error_rate=0.0), model_name="model-a"
    )
    b = SimulatedChatModel(
        oracle=lambda m: "yes", errors=ErrorModel(error_rate=0.0), model_name="model-b"
    )
    result = await vote_step(ChatModelSampler([a, b]), "Is water wet?", k=3)
    assert result.winner == "yes"
    temps = [s.raw.temperature for s in result.samples]
    assert temps == [0.0, 0.1, 0.1]
    assert [s.raw.model for s in result.samples] == ["model-a", "model-b", "model-a"]
    assert all(s.raw.output_tokens and s.raw.input_tokens for s in result.samples)


async def test_max_tokens_truncates_and_flags() -> None:
    model = SimulatedChatModel(oracle=lambda m: "word " * 200, errors=ErrorModel(error_rate=0.0))
    from maker_graph.red_flags import truncated

    voter = Voter(
        ChatModelSampler(model, max_tokens=20),
        red_flags=[truncated()],
        policy=VotePolicy(k=1, max_samples=3),
    )
    with pytest.raises(NoConsensusError) as info:
        await voter.vote("talk")
    assert info.value.red_flags == {"truncated": 3}


def test_sync_wrapper_and_its_guard() -> None:
    assert vote_step_sync(lambda q: "x", "q", k=2).winner == "x"

    async def inside() -> None:
        with pytest.raises(RuntimeError, match="running event loop"):
            vote_step_sync(lambda q: "x", "q", k=2)

    asyncio.run(inside())


async def test_simulation_is_reproducible_under_any_concurrency() -> None:
    errors = ErrorModel(error_rate=0.25, rivals=2, seed=3)

    def make() -> SimulatedSampler:
        return SimulatedSampler(lambda q: "right", errors=errors, tokens=len)

    serial = [await vote_step(make(), f"step-{i}", k=2) for i in range(40)]
    together = await asyncio.gather(*[vote_step(make(), f"step-{i}", k=2) for i in range(40)])
    assert [r.tally for r in serial] == [r.tally for r in together]


@pytest.mark.parametrize("make_error", ["configuration", "interrupt"])
async def test_setup_errors_and_graph_interrupts_are_not_retried(make_error: str) -> None:
    from langgraph.errors import GraphInterrupt

    error: Exception = (
        ConfigurationError("bad prompt template")
        if make_error == "configuration"
        else GraphInterrupt(())
    )
    sampler = ScriptedSampler([error])
    voter = Voter(sampler, policy=VotePolicy(k=1, retry=FAST_RETRY))
    with pytest.raises(type(error)):
        await voter.vote("q")
    assert len(sampler.calls) == 1


async def test_a_none_answer_can_win_the_vote() -> None:
    """None is a legitimate parsed answer (e.g. "no entity found"), not "no winner"."""
    result = await vote_step(ScriptedSampler(["-", "-"]), "q", k=2, parser=lambda text: None)
    assert result.decided_by == "vote" and result.winner is None and result.tally == {None: 2}
