"""Scripted doubles for exact tests: they return the answers you list, in order.

Each records its calls in `.calls` and `assert_all_used()` fails a test that
scripted answers it never consumed (a test that silently stopped exercising
what it meant to).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, PrivateAttr

from ..records import RawSample

__all__ = ["ScriptExhaustedError", "ScriptedChatModel", "ScriptedSampler"]


class ScriptExhaustedError(AssertionError):
    """A scripted double was called more often than it had answers."""


class _Script:
    def __init__(self, answers: Sequence[Any]) -> None:
        self.answers = list(answers)
        self.position = 0

    def next(self, owner: str) -> Any:
        if self.position >= len(self.answers):
            raise ScriptExhaustedError(
                f"{owner} was called {self.position + 1} times but scripts only "
                f"{len(self.answers)} answers"
            )
        answer = self.answers[self.position]
        self.position += 1
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def assert_all_used(self, owner: str) -> None:
        left = len(self.answers) - self.position
        if left:
            raise AssertionError(f"{owner}: {left} scripted answer(s) never used")


class ScriptedSampler:
    """A `Sampler` returning scripted answers (str, `RawSample` or an exception to raise).

    Example:
        >>> import asyncio
        >>> s = ScriptedSampler(["a", "a"])
        >>> asyncio.run(s.sample("q", 0)).text
        'a'
    """

    def __init__(self, answers: Sequence[Any]) -> None:
        self._script = _Script(answers)
        self.calls: list[tuple[Any, int]] = []

    async def sample(self, step_input: Any, index: int) -> RawSample:
        self.calls.append((step_input, index))
        answer = self._script.next("ScriptedSampler")
        if isinstance(answer, RawSample):
            return answer
        return RawSample(output=answer, text=str(answer), finish_reason="stop")

    def assert_all_used(self) -> None:
        self._script.assert_all_used("ScriptedSampler")


class ScriptedChatModel(BaseChatModel):
    """A chat model returning scripted answers (str, `AIMessage`, or an exception to raise).

    Example:
        >>> m = ScriptedChatModel(answers=["hello"])
        >>> m.invoke("hi").content
        'hello'
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    answers: list[Any]
    model_name: str = "scripted-chat"
    _script: _Script = PrivateAttr()
    _calls: list[list[BaseMessage]] = PrivateAttr(default_factory=list)

    def model_post_init(self, context: Any) -> None:
        self._script = _Script(self.answers)

    @property
    def calls(self) -> list[list[BaseMessage]]:
        """The messages of every call, in order."""
        return self._calls

    @property
    def _llm_type(self) -> str:
        return "maker-graph-scripted"

    def _next(self, messages: list[BaseMessage]) -> ChatResult:
        self._calls.append(list(messages))
        answer = self._script.next("ScriptedChatModel")
        if not isinstance(answer, AIMessage):
            answer = AIMessage(
                content=str(answer),
                response_metadata={"model_name": self.model_name, "finish_reason": "stop"},
            )
        return ChatResult(generations=[ChatGeneration(message=answer)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._next(messages)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._next(messages)

    def assert_all_used(self) -> None:
        self._script.assert_all_used("ScriptedChatModel")
