"""One request per round (`n`): through the real ChatOpenAI client against the stub."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from openai_stub import OpenAIStub, StubBehaviour

from maker_graph import vote_step
from maker_graph.errors import ConfigurationError
from maker_graph.providers import ProviderOptions, limit_concurrency, resolve_chat_model
from maker_graph.red_flags import max_output_tokens, truncated
from maker_graph.sampling import ChatModelSampler, TemperatureSchedule
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
        stub = OpenAIStub(lambda messages: "4", behaviour=StubBehaviour(**options))  # type: ignore[arg-type]
        started.append(stub.start())
        return stub

    yield make
    for stub in started:
        stub.stop()


def _model(stub: OpenAIStub) -> object:
    return resolve_chat_model("openai:stub", ProviderOptions(base_url=stub.base_url, timeout=10))


def _vote(sampler: object, k: int = 3, **policy: object) -> object:
    voter = Voter(
        sampler, red_flags=[truncated(), max_output_tokens(50)], policy=VotePolicy(k=k, **policy)
    )  # type: ignore[arg-type]
    return asyncio.run(voter.vote("2+2?"))


def test_one_temperature_is_one_request(stub_factory) -> None:
    stub = stub_factory()
    result = _vote(ChatModelSampler(_model(stub), temperature=ONE_TEMPERATURE))
    assert result.winner == "4" and result.samples_drawn == 3
    assert stub.stats["requests"] == 1 and stub.stats["choices"] == 3
    # The prompt was billed once; the report says so, and the sample counts add up.
    assert result.input_tokens == stub.usage["prompt_tokens"] > 0
    assert result.output_tokens == stub.usage["completion_tokens"] == 3
    assert [s.raw.input_tokens for s in result.samples] == [stub.usage["prompt_tokens"], 0, 0]
    assert [s.raw.output_tokens for s in result.samples] == [1, 1, 1]
    assert [s.raw.model for s in result.samples] == ["stub"] * 3


def test_paper_schedule_is_two_requests(stub_factory) -> None:
    stub = stub_factory()
    result = _vote(ChatModelSampler(_model(stub)))  # 0 for sample 0, then 0.1
    assert result.samples_drawn == 3 and stub.stats["requests"] == 2
    assert [s.raw.temperature for s in result.samples] == [0.0, 0.1, 0.1]
    assert result.input_tokens == stub.usage["prompt_tokens"]


def test_off_means_one_request_per_sample(stub_factory) -> None:
    stub = stub_factory()
    sampler = ChatModelSampler(_model(stub), temperature=ONE_TEMPERATURE, samples_per_request=1)
    assert sampler.batch_limit == 1
    result = _vote(sampler)
    assert result.samples_drawn == stub.stats["requests"] == 3
    assert result.input_tokens == stub.usage["prompt_tokens"]


def test_a_limit_below_the_round_splits_it(stub_factory) -> None:
    stub = stub_factory()
    sampler = ChatModelSampler(_model(stub), temperature=ONE_TEMPERATURE, samples_per_request=2)
    result = _vote(sampler, k=5)
    assert result.samples_drawn == 5 and stub.stats["requests"] == 3  # 2 + 2 + 1
    assert result.input_tokens == stub.usage["prompt_tokens"]


def test_a_server_returning_fewer_choices(stub_factory) -> None:
    """A server that ignores `n` (one choice each): the rest are drawn one by one."""
    stub = stub_factory(max_choices=1)
    result = _vote(ChatModelSampler(_model(stub), temperature=ONE_TEMPERATURE))
    assert result.winner == "4" and result.samples_drawn == 3
    assert stub.stats["requests"] == stub.stats["choices"] == 3
    assert result.input_tokens == stub.usage["prompt_tokens"]
    assert result.output_tokens == stub.usage["completion_tokens"]


def test_per_choice_finish_reason_and_tokens(stub_factory) -> None:
    """A cut choice is flagged alone; per-sample completion tokens add up to the bill."""
    stub = stub_factory(script=("correct", "ramble", "correct", "correct"), ramble_tokens=200)
    sampler = ChatModelSampler(_model(stub), temperature=ONE_TEMPERATURE, max_tokens=30)
    result = _vote(sampler)
    assert result.red_flags == {"truncated": 1}
    assert result.samples_drawn == 4 and stub.stats["requests"] == 2
    flagged = [s for s in result.samples if s.red_flag]
    assert flagged[0].raw.finish_reason == "length"
    assert abs(flagged[0].raw.output_tokens - 30) <= 1  # its share of the bill
    assert result.output_tokens == stub.usage["completion_tokens"]
    assert result.input_tokens == stub.usage["prompt_tokens"]


def test_a_failed_request_is_retried_whole(stub_factory) -> None:
    stub = stub_factory(script=("rate_limited", "server_error"))
    sampler = limit_concurrency(ChatModelSampler(_model(stub), temperature=ONE_TEMPERATURE), 2)
    result = _vote(sampler)
    assert result.winner == "4" and result.samples_drawn == 3
    assert result.provider_failures == {"rate_limit": 1, "exception": 1}
    assert stub.stats["requests"] == 3 and stub.stats["choices"] == 3
    assert result.input_tokens == stub.usage["prompt_tokens"]


def test_authentication_failure_is_not_retried() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    calls: list[int] = []

    class Refuse(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            calls.append(1)
            self.rfile.read(int(self.headers.get("content-length") or 0))
            body = b'{"error": {"message": "bad key", "type": "invalid_api_key"}}'
            self.send_response(401)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        model = resolve_chat_model("openai:stub", ProviderOptions(base_url=url, timeout=10))
        with pytest.raises(ConfigurationError, match="401"):
            _vote(ChatModelSampler(model, temperature=ONE_TEMPERATURE))
        assert len(calls) == 1  # one request for the round, not retried
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_models_without_n_are_not_batched() -> None:
    from maker_graph.testing import SimulatedChatModel

    sampler = ChatModelSampler(SimulatedChatModel(oracle=lambda msgs: "yes"))
    assert sampler.batch_limit == 1 and sampler.batch_key(1) is None
    result = asyncio.run(vote_step(sampler, "ok?", k=2))
    assert result.winner == "yes"


def test_bad_samples_per_request() -> None:
    from maker_graph.testing import SimulatedChatModel

    with pytest.raises(ConfigurationError):
        ChatModelSampler(SimulatedChatModel(oracle=lambda msgs: "yes"), samples_per_request=0)


@pytest.mark.parametrize("per_request", [None, "1"])
def test_cli_flag(tmp_path, per_request: str | None) -> None:
    """`maker-graph hanoi --samples-per-request`: batched by default, one per request with 1."""
    import json

    from openai_stub import hanoi_oracle
    from typer.testing import CliRunner

    from maker_graph.cli import app, load_commands
    from maker_graph.tasks.hanoi import HanoiTask

    load_commands()
    oracle, wrong = hanoi_oracle(HanoiTask(3))
    stub = OpenAIStub(oracle, wrong, StubBehaviour(**QUIET)).start()  # type: ignore[arg-type]
    extra = [] if per_request is None else ["--samples-per-request", per_request]
    try:
        result = CliRunner().invoke(
            app,
            [
                "hanoi",
                "--disks",
                "3",
                "--k",
                "3",
                "--model",
                "openai:stub-hanoi",
                "--base-url",
                stub.base_url,
                "--temperature",
                "0.1",
                "--no-progress",
                "--run-dir",
                str(tmp_path / "run"),
                "--report",
                str(tmp_path / "r.json"),
                *extra,
            ],
        )
    finally:
        stub.stop()
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["solved"] and data["samples"] == 7 * 3 == stub.stats["choices"]
    # One temperature: a step of k=3 agreeing samples is one request, or three with 1.
    assert stub.stats["requests"] == (7 if per_request is None else 21)
    assert data["input_tokens"] == stub.usage["prompt_tokens"]
    assert data["output_tokens"] == stub.usage["completion_tokens"]


def test_cli_flag_refuses_zero(tmp_path) -> None:
    from typer.testing import CliRunner

    from maker_graph.cli import app, load_commands

    load_commands()
    result = CliRunner().invoke(
        app,
        [
            "hanoi",
            "--disks",
            "3",
            "--model",
            "openai:x",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--samples-per-request",
            "0",
        ],
    )
    assert result.exit_code != 0 and "--samples-per-request must be >= 1" in result.output
