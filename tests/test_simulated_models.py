"""The simulated and scripted doubles: error model, determinism, LangChain compatibility.

Rate checks use fixed seeds and a two-sided tolerance of 4 binomial standard errors
around the rate the model was configured with (`near`): a correct model passes at any
seed except about once in 15,000, and each check is sized so that a rate off by a
quarter of itself fails.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter

import pytest
from langchain_core.messages import HumanMessage
from pydantic import BaseModel

from maker_graph.records import RawSample
from maker_graph.testing import (
    ErrorModel,
    ScriptedChatModel,
    ScriptedSampler,
    ScriptExhaustedError,
    SimulatedChatModel,
    SimulatedProviderError,
    SimulatedRateLimitError,
    SimulatedSampler,
    SimulatedTimeoutError,
)

SIGMAS = 4.0


def near(count: int, n: int, rate: float, sigmas: float = SIGMAS) -> bool:
    """`count` successes in `n` trials is within `sigmas` binomial SEs of `rate`."""
    return abs(count / n - rate) <= sigmas * math.sqrt(rate * (1 - rate) / n)


def test_near_is_two_sided_and_sized() -> None:
    # 1,000 draws at 20 %: 4 SE = 0.051 either side.
    assert near(200, 1000, 0.2) and near(160, 1000, 0.2) and near(240, 1000, 0.2)
    assert not near(140, 1000, 0.2) and not near(260, 1000, 0.2)


def draw_many(sampler: SimulatedSampler, steps: int, per_step: int) -> list[RawSample]:
    async def go() -> list[RawSample]:
        return [await sampler.sample(f"s{s}", i) for s in range(steps) for i in range(per_step)]

    return asyncio.run(go())


def test_error_rate_matches_configuration() -> None:
    # 20,000 samples at 10 % error: standard error 0.0021, tolerance 4 SE = 0.0085.
    sampler = SimulatedSampler(
        lambda q: "right", errors=ErrorModel(error_rate=0.1, seed=11), tokens=len
    )
    texts = [r.text for r in draw_many(sampler, 5000, 4)]
    wrong = sum(t != "right" for t in texts)
    assert near(wrong, len(texts), 0.1)
    # One rival: every wrong answer is the same text (the worst case for voting).
    assert len({t for t in texts if t != "right"}) == 1


def test_several_rivals_spread_errors() -> None:
    sampler = SimulatedSampler(
        lambda q: "right", errors=ErrorModel(error_rate=0.5, rivals=3, seed=2), tokens=len
    )
    wrong = Counter(r.text for r in draw_many(sampler, 1000, 3) if r.text != "right")
    # 3,000 samples: half wrong, each rival a third of those (1/6 of all samples).
    assert near(sum(wrong.values()), 3000, 0.5)
    assert len(wrong) == 3 and all(near(c, 3000, 1 / 6) for c in wrong.values())


def test_hard_steps_err_together() -> None:
    errors = ErrorModel(error_rate=0.0, hard_fraction=0.05, hard_error_rate=0.4, seed=5)
    sampler = SimulatedSampler(lambda q: "ok", errors=errors, tokens=len)
    texts = [r.text for r in draw_many(sampler, 2000, 10)]  # one event loop: fast
    by_step = {f"s{s}": texts[10 * s : 10 * s + 10] for s in range(2000)}
    hard = [k for k in by_step if errors.is_hard(k)]
    assert near(len(hard), 2000, 0.05)  # 100 +- 39
    assert all(all(t == "ok" for t in by_step[k]) for k in by_step if k not in hard)
    hard_wrong = [t for k in hard for t in by_step[k] if t != "ok"]
    assert near(len(hard_wrong), 10 * len(hard), 0.4)  # ~1,000 samples: 0.4 +- 0.06
    assert len(set(hard_wrong)) == 1  # correlated: all towards the same rival


def test_rambles_report_many_tokens_and_malformed_text_differs() -> None:
    errors = ErrorModel(error_rate=0.0, ramble_rate=0.2, malformed_rate=0.2, ramble_tokens=900)
    raws = draw_many(SimulatedSampler(lambda q: "answer: 7", errors=errors), 2000, 2)
    rambles = [r for r in raws if r.output_tokens == 900]
    # Rambling and malformation are independent dice: 20 % ramble (malformed or not) ...
    assert near(len(rambles), 4000, 0.2)
    assert all(len(r.text) > 2000 for r in rambles)
    # ... and 20 % of the other 80 % are short malformed answers: 16 % (not 20 %).
    malformed = [r for r in raws if r.output_tokens != 900 and r.text != "answer: 7"]
    assert near(len(malformed), 4000, 0.2 * 0.8)  # 4 SE = 0.023 < 0.04


def test_failures_raise_provider_errors_and_retries_roll_again() -> None:
    errors = ErrorModel(
        error_rate=0.0, exception_rate=0.3, timeout_rate=0.2, rate_limit_rate=0.1, retry_after=0.5
    )
    sampler = SimulatedSampler(lambda q: "ok", errors=errors, tokens=len)
    kinds: Counter[str] = Counter()

    async def until_success(step: str) -> RawSample:
        while True:
            try:
                return await sampler.sample(step, 0)
            except SimulatedRateLimitError as exc:
                assert exc.retry_after == 0.5
                kinds["rate_limit"] += 1
            except SimulatedTimeoutError:
                kinds["timeout"] += 1
            except SimulatedProviderError:
                kinds["exception"] += 1

    for s in range(2000):
        assert asyncio.run(until_success(f"s{s}")).text == "ok"
    # Every call rolls the same die: each kind's share of all calls is its rate.
    calls = sum(kinds.values()) + 2000  # ~5,000: 4 SE <= 0.026
    assert near(kinds["exception"], calls, 0.3)
    assert near(kinds["timeout"], calls, 0.2)
    assert near(kinds["rate_limit"], calls, 0.1)


def test_error_model_validation() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        ErrorModel(error_rate=1.5)
    with pytest.raises(ValueError, match="no call could ever succeed"):
        ErrorModel(exception_rate=0.6, timeout_rate=0.5)
    with pytest.raises(ValueError, match="rivals"):
        ErrorModel(rivals=0)


def test_simulated_chat_model_is_a_real_chat_model() -> None:
    model = SimulatedChatModel(
        oracle=lambda msgs: "billing",
        choices=["billing", "bug"],
        model_name="sim-x",
        errors=ErrorModel(error_rate=0.0),
    )
    message = model.invoke([HumanMessage("I was charged twice")])
    assert message.content == "billing"
    assert message.response_metadata["model_name"] == "sim-x"
    assert message.response_metadata["finish_reason"] == "stop"
    assert message.usage_metadata and message.usage_metadata["output_tokens"] >= 1
    assert asyncio.run(model.ainvoke("hi")).content == "billing"


def test_simulated_chat_model_choices_give_wrong_labels() -> None:
    model = SimulatedChatModel(
        oracle=lambda msgs: "a", choices=["a", "b", "c"], errors=ErrorModel(error_rate=1.0 - 1e-9)
    )
    answers = {model.invoke(f"q{i}").content for i in range(30)}
    assert answers <= {"b", "c"} and answers


class Ticket(BaseModel):
    label: str
    urgent: bool


def test_structured_output() -> None:
    model = SimulatedChatModel(
        oracle=lambda msgs: '{"label": "bug", "urgent": true}', errors=ErrorModel(error_rate=0.0)
    )
    assert model.with_structured_output(Ticket).invoke("x") == Ticket(label="bug", urgent=True)


def test_max_tokens_truncates_with_length_finish() -> None:
    model = SimulatedChatModel(oracle=lambda m: "token " * 300, errors=ErrorModel(error_rate=0.0))
    message = model.bind(max_tokens=10).invoke("x")
    assert message.response_metadata["finish_reason"] == "length"
    assert message.usage_metadata and message.usage_metadata["output_tokens"] == 10


def test_scripted_doubles_record_and_check_usage() -> None:
    model = ScriptedChatModel(answers=["one", ValueError("boom")])
    assert model.invoke("a").content == "one"
    with pytest.raises(ValueError, match="boom"):
        model.invoke("b")
    assert len(model.calls) == 2
    model.assert_all_used()
    with pytest.raises(ScriptExhaustedError):
        model.invoke("c")

    sampler = ScriptedSampler(["x", "y"])
    asyncio.run(sampler.sample("q", 0))
    with pytest.raises(AssertionError, match="1 scripted answer"):
        sampler.assert_all_used()


def test_a_timed_out_call_is_retried_with_fresh_latency() -> None:
    """A slow call cut off by the retry policy's timeout must not be slow on every attempt."""
    from maker_graph.sampling import ProviderRetry
    from maker_graph.vote import VotePolicy, Voter

    errors = ErrorModel(error_rate=0.0, latency_median=0.02, latency_sigma=1.5, seed=4)
    sampler = SimulatedSampler(lambda q: "ok", errors=errors, tokens=len)
    retry = ProviderRetry(timeout=0.03, initial_delay=0.0, jitter=0.0, max_attempts=20)
    voter = Voter(sampler, policy=VotePolicy(k=2, retry=retry))

    async def run() -> list[dict[str, int]]:
        return [(await voter.vote(f"s{i}")).provider_failures for i in range(30)]

    failures = asyncio.run(run())
    timeouts = sum(f.get("timeout", 0) for f in failures)
    assert timeouts > 0  # some calls were slower than the timeout ...
    assert all(f.get("timeout", 0) < 10 for f in failures)  # ... and their retries were not
