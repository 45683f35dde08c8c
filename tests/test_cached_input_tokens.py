"""Prompt-cache hits: counted from the provider's usage and priced at the cached rate.

Through the real ChatOpenAI client against the loopback stub, which reports
`prompt_tokens_details.cached_tokens` as OpenAI does; LangChain maps it to
`usage_metadata["input_token_details"]["cache_read"]`.
"""

from __future__ import annotations

import asyncio

import pytest
from openai_stub import OpenAIStub, StubBehaviour, hanoi_oracle

from maker_graph.costs import Price, PriceTable, step_cost, token_cost
from maker_graph.errors import ConfigurationError
from maker_graph.providers import ProviderOptions, resolve_chat_model
from maker_graph.run import run_task_sync
from maker_graph.sampling import ChatModelSampler, TemperatureSchedule
from maker_graph.tasks.hanoi import HanoiTask
from maker_graph.vote import VotePolicy, Voter

QUIET = dict(
    wrong_rate=0.0,
    ramble_rate=0.0,
    malformed_rate=0.0,
    rate_limit_rate=0.0,
    server_error_rate=0.0,
    retry_after=0.01,
)


def _model(stub: OpenAIStub):  # type: ignore[no-untyped-def]
    return resolve_chat_model("openai:stub", ProviderOptions(base_url=stub.base_url, timeout=10))


@pytest.mark.parametrize("per_request", [1, 8])
def test_cache_reads_are_counted_once_per_request(per_request: int) -> None:
    behaviour = StubBehaviour(**QUIET, cached_prompt_tokens=3)
    with OpenAIStub(lambda m: "4", behaviour=behaviour) as stub:
        sampler = ChatModelSampler(
            _model(stub),
            samples_per_request=per_request,
            temperature=TemperatureSchedule(first=0.1, rest=0.1),
        )
        result = asyncio.run(Voter(sampler, policy=VotePolicy(k=3)).vote("2+2?"))
        requests = stub.stats["requests"]
        assert result.winner == "4" and requests == (3 if per_request == 1 else 1)
        assert result.cached_input_tokens == stub.usage["cached_tokens"] == 3 * requests
        assert result.input_tokens == stub.usage["prompt_tokens"]
        # Split per sample like the rest of the usage: the first choice of a request has it.
        assert sum(s.raw.cached_input_tokens or 0 for s in result.samples) == 3 * requests


def test_a_run_prices_cache_reads_at_the_cached_rate(tmp_path) -> None:
    task = HanoiTask(3)
    oracle, wrong = hanoi_oracle(task)
    behaviour = StubBehaviour(**QUIET, cached_prompt_tokens=200)
    with OpenAIStub(oracle, wrong, behaviour) as stub:
        sampler = ChatModelSampler(_model(stub), prompt=task.prompt)
        report = run_task_sync(
            task,
            sampler,
            VotePolicy(k=2),
            run_log=str(tmp_path / "run"),
            speculate=0,
            price_in=1.0,
            price_out=2.0,
            price_cached_in=0.25,
        )
        billed_in, cached = stub.usage["prompt_tokens"], stub.usage["cached_tokens"]
        billed_out = stub.usage["completion_tokens"]
    assert report.done and cached > 0
    assert report.input_tokens == billed_in and report.cached_input_tokens == cached
    expected = ((billed_in - cached) * 1.0 + cached * 0.25 + billed_out * 2.0) / 1e6
    assert report.cost == pytest.approx(expected, rel=1e-12)
    assert report.cost < (billed_in * 1.0 + billed_out * 2.0) / 1e6


def test_prices_with_and_without_a_cached_rate() -> None:
    assert token_cost(1000, 0, 400, (1.0, 0.0, None)) == pytest.approx(1000 / 1e6)
    assert token_cost(1000, 0, 400, (1.0, 0.0, 0.1)) == pytest.approx((600 + 40) / 1e6)
    table = PriceTable({"my-model": {"input": 1.0, "output": 2.0, "cached_input": 0.5}})
    assert table.lookup("my-model") == Price(input=1.0, output=2.0, cached_input=0.5)
    assert PriceTable().lookup("gpt-4.1-mini").cached_input == 0.1
    with pytest.raises(ConfigurationError, match="cached input"):
        Price(input=1.0, output=1.0, cached_input=-1.0)


def test_step_cost_uses_the_cached_rate() -> None:
    from maker_graph.records import StepResult

    r = StepResult(
        winner="a",
        winner_key="a",
        tally={"a": 3},
        decided_by="vote",
        k=3,
        samples_drawn=3,
        valid_votes=3,
        input_tokens=1000,
        output_tokens=0,
        cached_input_tokens=1000,
    )
    assert step_cost(r, Price(input=1.0, output=1.0, cached_input=0.1)) == pytest.approx(1e-4)
