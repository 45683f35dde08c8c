"""Providers: `PROVIDER:MODEL` resolution, env-only credentials, install hints, limits."""

from __future__ import annotations

import asyncio
import importlib.util
import time
from typing import Any

import pytest
from langchain_core.rate_limiters import InMemoryRateLimiter
from openai_stub import OpenAIStub, StubBehaviour

from maker_graph.errors import ConfigurationError
from maker_graph.providers import (
    ConcurrencyLimitedSampler,
    ModelSpec,
    ProviderOptions,
    limit_concurrency,
    make_rate_limiter,
    parse_model_spec,
    resolve_chat_model,
    simulated_error_model,
)
from maker_graph.records import RawSample
from maker_graph.sampling import as_sampler
from maker_graph.testing import ErrorModel

LOCAL = "http://127.0.0.1:9/v1"  # never contacted: models are only built here


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "provider", "model"),
    [
        ("openai:gpt-4.1-mini", "openai", "gpt-4.1-mini"),
        ("ollama:qwen2.5:0.5b", "ollama", "qwen2.5:0.5b"),
        ("gpt-4.1-nano", None, "gpt-4.1-nano"),
        ("  anthropic:claude-haiku-4-5 ", "anthropic", "claude-haiku-4-5"),
        ("simulated", "simulated", ""),
        ("simulated-chat", "simulated-chat", ""),
    ],
)
def test_parse_model_spec(text: str, provider: str | None, model: str) -> None:
    spec = parse_model_spec(text)
    assert (spec.provider, spec.model) == (provider, model)
    assert spec.simulated == (provider in ("simulated", "simulated-chat"))


def test_simulated_spec_options() -> None:
    assert parse_model_spec("simulated:0.05").error_overrides == {"error_rate": 0.05}
    spec = parse_model_spec("simulated-chat:error_rate=0.1,rivals=3,seed=7")
    assert spec.error_overrides == {"error_rate": 0.1, "rivals": 3, "seed": 7}
    model = simulated_error_model(spec, ErrorModel(ramble_rate=0.01))
    assert (model.error_rate, model.rivals, model.seed, model.ramble_rate) == (0.1, 3, 7, 0.01)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty model spec"),
        ("openai:", "PROVIDER:MODEL"),
        (":gpt", "PROVIDER:MODEL"),
        ("simulated:abc", "error_rate must be a number"),
        ("simulated:colour=red", "NAME=VALUE"),
    ],
)
def test_bad_specs_name_the_fix(text: str, needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        parse_model_spec(text)


def test_simulated_override_out_of_range() -> None:
    with pytest.raises(ConfigurationError, match="error_rate"):
        simulated_error_model(parse_model_spec("simulated:1.5"))


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"requests_per_second": 0}, "requests_per_second"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": 3.0}, "temperature"),
        ({"max_retries": -1}, "max_retries"),
        ({"timeout": 0}, "timeout"),
        ({"base_url": "localhost:8080"}, "base_url"),
    ],
)
def test_bad_options(options: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        ProviderOptions(**options)


# --------------------------------------------------------------------------- building


def test_openai_model_gets_every_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    options = ProviderOptions(
        base_url=LOCAL,
        temperature=0.1,
        max_tokens=750,
        requests_per_second=5,
        max_retries=4,
        timeout=12.5,
    )
    model = resolve_chat_model("openai:gpt-4.1-mini", options)
    assert type(model).__name__ == "ChatOpenAI"
    assert model.model_name == "gpt-4.1-mini"
    assert (model.temperature, model.max_tokens, model.max_retries) == (0.1, 750, 4)
    assert model.request_timeout == 12.5
    assert model.openai_api_base == LOCAL
    # A custom base URL streams without usage unless asked: the option is switched on.
    assert model.stream_usage is True
    assert isinstance(model.rate_limiter, InMemoryRateLimiter)


def test_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    model = resolve_chat_model("openai:gpt-4.1-mini")
    assert model.openai_api_key.get_secret_value() == "sk-from-env"
    # Without a custom base URL maker_graph leaves streaming usage at the client's own
    # default (whatever this langchain-openai version picks), neither forcing it on nor off.
    from langchain_openai import ChatOpenAI

    assert model.stream_usage == ChatOpenAI(model="gpt-4.1-mini").stream_usage


@pytest.mark.parametrize("asked", [False, True])
def test_an_explicit_stream_usage_wins_over_the_custom_url_default(
    monkeypatch: pytest.MonkeyPatch, asked: bool
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    model = resolve_chat_model(
        "openai:gpt-4.1-mini", ProviderOptions(base_url=LOCAL, stream_usage=asked)
    )
    assert model.stream_usage is asked


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_ADMIN_KEY", raising=False)
    with pytest.raises(ConfigurationError, match=r"set \$OPENAI_API_KEY"):
        resolve_chat_model("openai:gpt-4.1-mini")


def test_api_key_env_names_another_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_TEAM_KEY", "sk-team")
    model = resolve_chat_model("openai:gpt-4.1-mini", ProviderOptions(api_key_env="MY_TEAM_KEY"))
    assert model.openai_api_key.get_secret_value() == "sk-team"
    monkeypatch.delenv("MY_TEAM_KEY")
    with pytest.raises(ConfigurationError, match=r"\$MY_TEAM_KEY"):
        resolve_chat_model("openai:gpt-4.1-mini", ProviderOptions(api_key_env="MY_TEAM_KEY"))


def test_missing_provider_package_gives_install_hint() -> None:
    if importlib.util.find_spec("langchain_anthropic") is not None:
        pytest.skip("langchain-anthropic is installed here")
    with pytest.raises(ConfigurationError, match="pip install langchain-anthropic"):
        resolve_chat_model("anthropic:claude-haiku-4-5")


def test_missing_langchain_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "langchain" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigurationError, match=r"maker-graph\[providers\]"):
        resolve_chat_model("openai:gpt-4.1-mini")


def test_unknown_provider_and_simulated_spec() -> None:
    with pytest.raises(ConfigurationError, match="PROVIDER:MODEL"):
        resolve_chat_model("nosuchprovider:model-x")
    with pytest.raises(ConfigurationError, match="simulated model"):
        resolve_chat_model(ModelSpec(text="simulated", provider="simulated", model=""))


# --------------------------------------------------------------------------- pacing


def test_rate_limiter_paces_calls() -> None:
    limiter = make_rate_limiter(40)
    started = time.monotonic()
    for _ in range(12):
        assert limiter.acquire(blocking=True)
    elapsed = time.monotonic() - started
    # The bucket starts empty and fills at 40/s: 12 requests need about 0.3 s.
    assert 0.2 <= elapsed < 3.0


async def test_concurrency_limit_holds() -> None:
    in_flight = peak = 0

    async def slow(step_input: Any) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return "ok"

    sampler = limit_concurrency(as_sampler(slow), 3)
    assert isinstance(sampler, ConcurrencyLimitedSampler)
    raws = await asyncio.gather(*[sampler.sample("q", i) for i in range(12)])
    assert all(isinstance(r, RawSample) and r.text == "ok" for r in raws)
    assert peak == 3


def test_concurrency_limit_works_across_event_loops() -> None:
    sampler = limit_concurrency(as_sampler(lambda q: "ok"), 2)
    for _ in range(2):
        assert asyncio.run(sampler.sample("q", 0)).text == "ok"


# --------------------------------------------------------------------------- the real client


def test_streaming_from_custom_base_url_reports_usage() -> None:
    stub = OpenAIStub(
        lambda messages: "the answer is 42",
        behaviour=StubBehaviour(
            wrong_rate=0, ramble_rate=0, malformed_rate=0, rate_limit_rate=0, server_error_rate=0
        ),
    )
    stub.start()
    try:
        model = resolve_chat_model("openai:stub", ProviderOptions(base_url=stub.base_url))
        message: Any = None
        for chunk in model.stream("What is six times seven?"):
            message = chunk if message is None else message + chunk
        assert message.content == "the answer is 42"
        assert message.usage_metadata["output_tokens"] == stub.usage["completion_tokens"] > 0
        assert message.usage_metadata["input_tokens"] == stub.usage["prompt_tokens"] > 0
    finally:
        stub.stop()


def test_alias_names_a_model_for_tables() -> None:
    spec = parse_model_spec("mini=openai:gpt-4.1-mini")
    assert (spec.alias, spec.provider, spec.model, spec.label) == (
        "mini",
        "openai",
        "gpt-4.1-mini",
        "mini",
    )
    sim = parse_model_spec("cheap=simulated:error_rate=0.05,seed=3")
    assert sim.simulated and sim.label == "cheap"
    assert sim.error_overrides == {"error_rate": 0.05, "seed": 3}
    # An "=" after the provider's ":" is an option, not an alias.
    assert parse_model_spec("simulated:error_rate=0.05").alias is None
