"""Provider calls are bounded: in time, in retries, in Retry-After waits, in output.

The real `ChatOpenAI` client (built by `maker_graph.providers.resolve_chat_model`)
talks to a small fault server on 127.0.0.1 that hangs, drips bytes, refuses the key,
rate-limits with a NaN hint or fails with HTTP 500, and counts every request it saw.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from maker_graph.errors import ConfigurationError, SamplerError
from maker_graph.sampling import MAX_RETRY_AFTER, ProviderRetry, as_sampler, draw, retry_after

pytest.importorskip("langchain_openai")

from maker_graph.providers import ProviderOptions, resolve_chat_model  # noqa: E402


def _completion(text: str = "ok") -> bytes:
    return json.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "stub",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    ).encode()


class _Fault:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests = 0
        self.bodies: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()


def _handler(fault: _Fault) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            with fault.lock:
                fault.requests += 1
                fault.bodies.append(body)
            mode = fault.mode
            if mode == "hang":
                fault.stop.wait(10)  # bounded: the server is stopped at the test's end
                return
            if mode == "drip":
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "10000")
                self.end_headers()
                for _ in range(5):  # 1 byte every 2 s: each read returns, the total never
                    if fault.stop.wait(2):
                        return
                    try:
                        self.wfile.write(b" ")
                        self.wfile.flush()
                    except OSError:
                        return
                return
            if mode in ("401", "403", "500", "429nan"):
                status = int(mode[:3])
                payload = json.dumps({"error": {"message": f"stub {status}"}}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                if mode == "429nan":
                    self.send_header("retry-after", "nan")
                    self.send_header("retry-after-ms", "nan")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            payload = _completion()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@contextmanager
def fault_server(mode: str) -> Iterator[tuple[_Fault, str]]:
    fault = _Fault(mode)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fault))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fault, f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        fault.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def _model(base_url: str, **options: Any) -> Any:
    return resolve_chat_model("openai:stub", ProviderOptions(base_url=base_url, **options))


def _draw(model: Any, retry: ProviderRetry, failures: dict[str, int]) -> Any:
    return asyncio.run(draw(as_sampler(model), "hi", 0, retry=retry, failures=failures))


FAST = {"initial_delay": 0.01, "max_delay": 0.02, "jitter": 0.0}


def test_defaults_one_retry_layer_and_a_bounded_time() -> None:
    assert ProviderRetry().timeout == 120.0
    assert ProviderOptions().max_retries == 0
    with fault_server("ok") as (_, url):
        assert _model(url).max_retries == 0


def test_a_server_that_never_answers_is_a_counted_timeout() -> None:
    with fault_server("hang") as (fault, url):
        failures: dict[str, int] = {}
        start = time.monotonic()
        with pytest.raises(SamplerError):
            _draw(_model(url), ProviderRetry(max_attempts=2, timeout=0.5, **FAST), failures)
        elapsed = time.monotonic() - start
    assert elapsed < 3.0
    assert failures == {"timeout": 2}
    assert fault.requests == 2


def test_a_drip_is_bounded_by_the_total_timeout() -> None:
    with fault_server("drip") as (fault, url):
        failures: dict[str, int] = {}
        start = time.monotonic()
        with pytest.raises(SamplerError):
            _draw(_model(url), ProviderRetry(max_attempts=1, timeout=1.0, **FAST), failures)
        elapsed = time.monotonic() - start
    assert elapsed < 3.0
    assert failures == {"timeout": 1}
    assert fault.requests == 1


@pytest.mark.parametrize("mode", ["401", "403"])
def test_authentication_errors_are_tried_once(mode: str) -> None:
    with fault_server(mode) as (fault, url):
        failures: dict[str, int] = {}
        with pytest.raises(ConfigurationError, match=mode):
            _draw(_model(url), ProviderRetry(max_attempts=6, timeout=5, **FAST), failures)
    assert fault.requests == 1


def test_a_nan_retry_after_does_not_stall() -> None:
    with fault_server("429nan") as (fault, url):
        failures: dict[str, int] = {}
        start = time.monotonic()
        with pytest.raises(SamplerError):
            _draw(_model(url), ProviderRetry(max_attempts=3, timeout=5, **FAST), failures)
        elapsed = time.monotonic() - start
    assert elapsed < 3.0
    assert failures == {"rate_limit": 3}
    assert fault.requests == 3


def test_http_calls_per_sample_are_bounded_by_max_attempts() -> None:
    with fault_server("500") as (fault, url):
        failures: dict[str, int] = {}
        with pytest.raises(SamplerError):
            _draw(_model(url), ProviderRetry(max_attempts=4, timeout=5, **FAST), failures)
    # One retry layer: 4 attempts are 4 HTTP requests, each one counted.
    assert fault.requests == 4
    assert failures == {"exception": 4}


def test_the_output_cap_reaches_servers_that_only_know_max_tokens() -> None:
    with fault_server("ok") as (fault, url):
        failures: dict[str, int] = {}
        raw = _draw(_model(url, max_tokens=7), ProviderRetry(timeout=5), failures)
    assert raw is not None
    assert fault.bodies[-1].get("max_tokens") == 7
    assert fault.bodies[-1].get("max_completion_tokens") == 7


class _Hinted(Exception):
    def __init__(self, value: Any) -> None:
        super().__init__("limited")
        self.retry_after = value


class _Response:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
        self.status_code = 429


class _Headed(Exception):
    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("limited")
        self.response = _Response(headers)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (float("nan"), None),
        (float("inf"), None),
        (-5, None),
        (1e9, MAX_RETRY_AFTER),
        (2.5, 2.5),
    ],
)
def test_retry_after_attribute_is_checked_and_clamped(value: float, expected: Any) -> None:
    assert retry_after(_Hinted(value)) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "nan"}, None),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "99999"}, MAX_RETRY_AFTER),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "nan", "retry-after": "2"}, 2.0),
        ({"retry-after": "soon"}, None),
    ],
)
def test_retry_after_header_is_checked_and_clamped(headers: dict[str, str], expected: Any) -> None:
    assert retry_after(_Headed(headers)) == expected


def test_retry_after_http_date() -> None:
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=30)
    hint = retry_after(_Headed({"retry-after": email.utils.format_datetime(later, usegmt=True)}))
    assert hint is not None and 25 <= hint <= 31
    past = email.utils.format_datetime(
        datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC), usegmt=True
    )
    assert retry_after(_Headed({"retry-after": past})) == 0.0
    far = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=3)
    assert retry_after(_Headed({"retry-after": email.utils.format_datetime(far, usegmt=True)})) == (
        MAX_RETRY_AFTER
    )


def test_policy_delay_uses_the_clamped_hint_or_its_own_backoff() -> None:
    policy = ProviderRetry(initial_delay=0.1, jitter=0.0)
    assert policy.delay(1, _Hinted(float("nan"))) == pytest.approx(0.1)
    assert policy.delay(1, _Hinted(1e9)) == MAX_RETRY_AFTER
    with pytest.raises(ConfigurationError):
        ProviderRetry(timeout=float("nan"))


@pytest.mark.parametrize("command", ["hanoi", "estimate"])
def test_cli_timeout_flag_bounds_a_hung_provider(command: str, tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from maker_graph.cli import app, load_commands

    load_commands()
    with fault_server("hang") as (fault, url):
        args = [command, "--disks", "1", "--model", "openai:stub", "--base-url", url]
        args += ["--timeout", "0.3", "--k", "1"] if command == "hanoi" else ["--timeout", "0.3"]
        if command == "hanoi":
            args += ["--run-dir", str(tmp_path / "run")]
        else:
            args[1:1] = ["hanoi"]
            args += ["--steps", "1", "--samples-per-step", "1"]
        start = time.monotonic()
        result = CliRunner().invoke(app, args)
        elapsed = time.monotonic() - start
    # Six attempts of 0.3 s plus backoff: far from the 120 s default.
    assert elapsed < 8.0, result.output
    assert fault.requests >= 1
    assert fault.requests <= 6 * 2  # one sample's attempts (estimate may draw two samples)


def test_multiply_timeout_reaches_every_role() -> None:
    from maker_graph.cli.multiply import _with_timeout
    from maker_graph.tasks.multiplication import multiplication_roles

    roles = _with_timeout(multiplication_roles(lambda inp: "{}", k=1), 0.5)
    for name in ("decomposer", "discriminator", "solver", "composer"):
        assert getattr(roles, name).policy.retry.timeout == 0.5
    with pytest.raises(ConfigurationError):
        _with_timeout(roles, 0)


def test_a_401_through_a_maker_node_is_requested_once() -> None:
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    from maker_graph import maker_node

    class State(TypedDict, total=False):
        question: str
        answer: str

    with fault_server("401") as (fault, url):
        graph = StateGraph(State)
        graph.add_node("vote", maker_node(_model(url), k=1, input_keys=["question"]))
        graph.add_edge(START, "vote")
        graph.add_edge("vote", END)
        with pytest.raises(ConfigurationError, match="401"):
            graph.compile().invoke({"question": "hi"})
    assert fault.requests == 1
