"""A small OpenAI-compatible chat server on loopback that answers like a noisy model.

Tests start it on 127.0.0.1 and a free port, point the real `ChatOpenAI` client
at it, and stop it in a `finally`. It serves `POST /v1/chat/completions`
(plain and streaming) and:

- answers from an oracle (the correct text for the request's messages) most of
  the time, sometimes with a wrong answer, a long ramble ending in the answer,
  or a malformed answer;
- sometimes fails with HTTP 429 (with `retry-after-ms` / `retry-after`
  headers) or HTTP 500, before producing anything;
- accepts `n` (several choices per request, the prompt billed once; at most
  `max_choices` of them, like a server that ignores `n`);
- sends an answer made by `tool_calls_text` as OpenAI tool calls (`message.tool_calls`,
  `function.arguments` a JSON string, possibly malformed; `finish_reason: "tool_calls"`;
  streamed as tool-call deltas);
- reports `usage` in every answer (tiktoken counts) and honours
  `max_completion_tokens` / `max_tokens` by cutting the answer and saying
  `finish_reason: "length"`.

Every outcome is counted in `stats`, so a test can check that what the client
saw matches what the server did. `hanoi_oracle(task)` builds the oracle and the
wrong answers for the Towers of Hanoi prompt.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from maker_graph.tokens import count_tokens, get_encoding

Messages = list[dict[str, Any]]
Oracle = Callable[[Messages], str]
Wrong = Callable[[Messages, int], str]

_FILLER = "Let me think about this carefully and check each peg once more. "


@dataclass(frozen=True, kw_only=True)
class StubBehaviour:
    """How often the stub errs, per request."""

    wrong_rate: float = 0.05
    """A well-formed but wrong answer."""
    ramble_rate: float = 0.03
    """A long preamble before the (correct) answer; cut short by a small `max_tokens`."""
    ramble_tokens: int = 400
    """About how many tokens a ramble has."""
    malformed_rate: float = 0.03
    """An answer in the wrong format."""
    rate_limit_rate: float = 0.05
    """HTTP 429 with a retry-after hint."""
    server_error_rate: float = 0.03
    """HTTP 500."""
    retry_after: float = 0.02
    """Seconds in the 429's retry-after hint."""
    latency: float = 0.0
    """Seconds each answer takes."""
    seed: int = 0
    """Seed of the stub's dice (outcomes follow request order)."""
    script: tuple[str, ...] = ()
    """Outcomes of the first requests, before the dice take over: any of `correct`,
    `wrong`, `ramble`, `malformed`, `rate_limited`, `server_error`. A request for `n`
    choices rolls once per choice; only its first roll may fail the request."""
    cached_prompt_tokens: int = 0
    """Prompt tokens each answered request reports as read from a prompt cache
    (`usage.prompt_tokens_details.cached_tokens`, at most the prompt's)."""
    max_choices: int | None = None
    """Most choices one answer carries whatever `n` asked (1: a server that ignores `n`,
    like llama.cpp); None: as many as asked."""


def _messages_text(messages: Messages) -> str:
    parts = []
    for m in messages:
        content = m.get("content", "")
        if isinstance(content, list):
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        parts.append(str(content))
    return "\n".join(parts)


class OpenAIStub:
    """The server. Use as a context manager, or `start()` and `stop()` in a finally.

    Args:
        oracle: the correct answer text for a request's messages.
        wrong: a wrong answer for `(messages, rival)`; default: the oracle's text reversed.
        behaviour: how often it errs.
    """

    def __init__(
        self,
        oracle: Oracle,
        wrong: Wrong | None = None,
        behaviour: StubBehaviour | None = None,
    ) -> None:
        self.oracle = oracle
        self.wrong = wrong or (lambda messages, rival: oracle(messages)[::-1])
        self.behaviour = behaviour or StubBehaviour()
        self.stats: Counter[str] = Counter()
        self.usage: Counter[str] = Counter()
        self.request_times: list[float] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._rng = random.Random(self.behaviour.seed)
        self._rolled = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stub is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> OpenAIStub:
        handler = type("_Handler", (_Handler,), {"stub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> OpenAIStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ answering

    def _roll(self, answers_only: bool = False) -> tuple[str, int]:
        b = self.behaviour
        with self._lock:
            u = self._rng.random()
            rival = self._rng.randrange(1000)
            scripted = self._rolled < len(b.script)
            outcome = b.script[self._rolled] if scripted else None
            self._rolled += 1
        if outcome is not None:
            if answers_only and outcome in ("rate_limited", "server_error"):
                return "correct", rival  # failures are per request, not per choice
            return outcome, rival
        for outcome, rate in (
            ("rate_limited", b.rate_limit_rate),
            ("server_error", b.server_error_rate),
            ("malformed", b.malformed_rate),
            ("ramble", b.ramble_rate),
            ("wrong", b.wrong_rate),
        ):
            if u < rate:
                if answers_only and outcome in ("rate_limited", "server_error"):
                    return "correct", rival
                return outcome, rival
            u -= rate
        return "correct", rival

    def respond(self, body: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Status, headers and JSON body for one chat-completions request."""
        with self._lock:
            self.stats["requests"] += 1
            self.request_times.append(time.monotonic())
        messages: Messages = body.get("messages") or []
        outcome, rival = self._roll()
        if outcome == "rate_limited":
            self._count("rate_limited")
            hint = self.behaviour.retry_after
            headers = {"retry-after-ms": str(int(hint * 1000)), "retry-after": f"{hint:g}"}
            return 429, headers, _error("rate limit reached, slow down", "rate_limit_exceeded")
        if outcome == "server_error":
            self._count("server_error")
            return 500, {}, _error("the stub had a bad moment", "server_error")
        if self.behaviour.latency:
            time.sleep(self.behaviour.latency)

        cap = body.get("max_completion_tokens") or body.get("max_tokens")
        asked = body.get("n") or 1
        if not isinstance(asked, int) or asked < 1:
            return 400, {}, _error(f"n must be a positive integer, got {asked!r}", "invalid_n")
        served = min(asked, self.behaviour.max_choices or asked)
        rolls = [(outcome, rival)] + [self._roll(answers_only=True) for _ in range(served - 1)]
        choices = []
        out_tokens = 0
        for index, (choice_outcome, choice_rival) in enumerate(rolls):
            text, tokens, finish = self._answer(messages, choice_outcome, choice_rival, cap)
            out_tokens += tokens
            self._count(choice_outcome)
            if finish == "length":
                self._count("truncated")
            message, finish = _wire_message(text, finish, f"{self.stats['requests']}_{index}")
            choices.append(
                {
                    "index": index,
                    "message": message,
                    "finish_reason": finish,
                    "logprobs": None,
                }
            )
        # Billed like OpenAI: the prompt once per request, completion tokens summed.
        in_tokens = count_tokens(_messages_text(messages))
        with self._lock:
            self.stats["choices"] += len(choices)
            self.usage["prompt_tokens"] += in_tokens
            self.usage["completion_tokens"] += out_tokens
        usage: dict[str, Any] = {
            "prompt_tokens": in_tokens,
            "completion_tokens": out_tokens,
            "total_tokens": in_tokens + out_tokens,
        }
        if self.behaviour.cached_prompt_tokens:
            cached = min(self.behaviour.cached_prompt_tokens, in_tokens)
            usage["prompt_tokens_details"] = {"cached_tokens": cached}
            with self._lock:
                self.usage["cached_tokens"] += cached
        return (
            200,
            {},
            {
                "id": f"chatcmpl-stub-{self.stats['requests']}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "stub"),
                "choices": choices,
                "usage": usage,
            },
        )

    def _answer(
        self, messages: Messages, outcome: str, rival: int, cap: Any
    ) -> tuple[str, int, str]:
        """One choice's text, its completion tokens and its finish reason."""
        correct = self.oracle(messages)
        if outcome == "wrong":
            text = self.wrong(messages, rival)
        elif outcome == "malformed":
            text = ("I would move the small disk, probably. " + correct[::-1])[: len(correct)]
        elif outcome == "ramble":
            text = _FILLER * max(1, self.behaviour.ramble_tokens // 13) + correct
        else:
            text = correct
        finish = "stop"
        encoding = get_encoding()
        tokens = encoding.encode_ordinary(text) if encoding is not None else None
        out_tokens = len(tokens) if tokens is not None else count_tokens(text)
        if isinstance(cap, int) and out_tokens > cap:
            text = encoding.decode(tokens[:cap]) if encoding and tokens else text[: cap * 4]
            out_tokens, finish = cap, "length"
        return text, out_tokens, finish

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


def tool_calls_text(*calls: tuple[str, Any]) -> str:
    """An answer text the stub sends as OpenAI tool calls: `(name, arguments)` pairs, the
    arguments a dict (sent as its JSON) or a string (sent verbatim, e.g. malformed JSON)."""
    return json.dumps({"tool_calls": [{"name": n, "arguments": a} for n, a in calls]})


def _wire_message(text: str, finish: str, tag: str) -> tuple[dict[str, Any], str]:
    """The choice's `message` in OpenAI's wire format: tool calls for a `tool_calls_text`."""
    if text.startswith('{"tool_calls"'):
        try:
            calls = json.loads(text)["tool_calls"]
        except (json.JSONDecodeError, KeyError, TypeError):
            calls = None
        if calls:
            wire = [
                {
                    "id": f"call_{tag}_{i}",
                    "type": "function",
                    "function": {
                        "name": c["name"],
                        "arguments": c["arguments"]
                        if isinstance(c["arguments"], str)
                        else json.dumps(c["arguments"]),
                    },
                }
                for i, c in enumerate(calls)
            ]
            message = {"role": "assistant", "content": None, "tool_calls": wire}
            return message, "tool_calls" if finish == "stop" else finish
    return {"role": "assistant", "content": text}, finish


def _error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": code, "code": code, "param": None}}


class _Handler(BaseHTTPRequestHandler):
    stub: OpenAIStub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # keep test output clean

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        stub = self.stub
        stub.enter()
        try:
            length = int(self.headers.get("content-length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self._send(400, {}, _error("body is not JSON", "invalid_request_error"))
                return
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {}, _error(f"no route {self.path}", "not_found"))
                return
            status, headers, payload = stub.respond(body)
            if status == 200 and body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                self._stream(payload, include_usage)
            else:
                self._send(status, headers, payload)
        finally:
            stub.leave()

    def _send(self, status: int, headers: dict[str, str], payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, payload: dict[str, Any], include_usage: bool) -> None:
        """Server-sent events: a role chunk, the text in pieces, the finish, then usage."""
        choice = payload["choices"][0]
        text: str = choice["message"]["content"] or ""
        base = {k: payload[k] for k in ("id", "created", "model")}
        base["object"] = "chat.completion.chunk"
        pieces = [text[i : i + 16] for i in range(0, len(text), 16)] or [""]
        chunks: list[dict[str, Any]] = [
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                    }
                ],
            }
        ]
        chunks += [
            {**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
            for p in pieces
        ]
        # Tool calls stream as OpenAI does: id and name first, then the arguments in pieces.
        for i, call in enumerate(choice["message"].get("tool_calls") or []):
            fn = call["function"]
            head = {
                "index": i,
                "id": call["id"],
                "type": "function",
                "function": {"name": fn["name"], "arguments": ""},
            }
            chunks.append(
                {
                    **base,
                    "choices": [
                        {"index": 0, "delta": {"tool_calls": [head]}, "finish_reason": None}
                    ],
                }
            )
            args = fn["arguments"]
            for j in range(0, len(args), 8):
                part = {"index": i, "function": {"arguments": args[j : j + 8]}}
                chunks.append(
                    {
                        **base,
                        "choices": [
                            {"index": 0, "delta": {"tool_calls": [part]}, "finish_reason": None}
                        ],
                    }
                )
        finish = {"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}
        chunks.append({**base, "choices": [finish]})
        if include_usage:
            chunks.append({**base, "choices": [], "usage": payload["usage"]})
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


# --------------------------------------------------------------------------- Hanoi


def hanoi_oracle(task: Any) -> tuple[Oracle, Wrong]:
    """The oracle and the wrong answers of a noisy model for `task`'s Hanoi prompts.

    The state and the previous move are read back from the prompt text, as a model
    would; the wrong answer is another legal move with the state it really leads to,
    so it parses and only the vote can reject it.
    """
    from maker_graph.tasks.hanoi import apply_move, format_answer, legal_moves

    def read(messages: Messages) -> tuple[Any, Any]:
        return task.read_prompt(_messages_text(messages))

    def oracle(messages: Messages) -> str:
        state, previous = read(messages)
        truth = task.true_step(state, previous)
        return str(format_answer(truth.action, truth.next_state))

    def wrong(messages: Messages, rival: int) -> str:
        state, previous = read(messages)
        right = task.true_step(state, previous).action
        options = [m for m in legal_moves(state) if m != right]
        move = options[rival % len(options)]
        return str(format_answer(move, apply_move(state, move)))

    return oracle, wrong
