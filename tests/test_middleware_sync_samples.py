"""A sync `create_agent` run (`agent.invoke`) draws a round's samples all at once.

The sync middleware path runs each sample's model call in a worker thread. It used
the event loop's default executor, whose `cpu_count + 4` threads (6 on a 2-core
machine) capped how many samples of a round were in flight, and whose threads a
hung, timed-out call kept: enough hung calls starved every later sample.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from maker_graph import MakerMiddleware, ProviderRetry

ROUND = 10  # more samples than the default executor has threads on up to 6 cores


class _SyncOnlyModel(BaseChatModel):
    """A sync-only chat model (no `_agenerate`), answering "42" once `gate` lets it."""

    gate: Any

    @property
    def _llm_type(self) -> str:
        return "sync-only"

    def bind_tools(self, tools: Any, **kwargs: Any) -> _SyncOnlyModel:
        return self

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        self.gate()
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="42"))])


def test_a_rounds_samples_are_all_in_flight_at_once() -> None:
    # Every call waits until ROUND calls are waiting together (at most 10 s): with
    # fewer threads than that the barrier breaks and the calls fail.
    barrier = threading.Barrier(ROUND, timeout=10)
    model = _SyncOnlyModel(gate=barrier.wait)
    retry = ProviderRetry(max_attempts=1, retry_on=())
    agent = create_agent(model, tools=[], middleware=[MakerMiddleware(k=ROUND, retry=retry)])

    out = agent.invoke({"messages": [("user", "6 * 7?")]})

    assert out["messages"][-1].content == "42"
    assert not barrier.broken


def test_hung_calls_do_not_starve_later_samples() -> None:
    # As many calls hang (until the test ends, at most 30 s) as the default executor
    # has threads; each times out after 0.3 s, and its retry must still find a thread.
    hung = min(32, (os.cpu_count() or 1) + 4)
    release = threading.Event()
    calls = 0
    lock = threading.Lock()

    def gate() -> None:
        nonlocal calls
        with lock:
            calls += 1
            hang = calls <= hung
        if hang:
            release.wait(30)

    # 3 samples share the hung calls: each needs at most hung // 3 + 1 attempts.
    retry = ProviderRetry(max_attempts=hung // 3 + 2, timeout=0.3, initial_delay=0.01)
    agent = create_agent(
        _SyncOnlyModel(gate=gate), tools=[], middleware=[MakerMiddleware(k=3, retry=retry)]
    )
    try:
        out = agent.invoke({"messages": [("user", "6 * 7?")]})
    finally:
        release.set()

    assert out["messages"][-1].content == "42"
    assert calls > hung
