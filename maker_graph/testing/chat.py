"""`SimulatedChatModel`: a real LangChain chat model that errs on purpose.

It works anywhere a `BaseChatModel` does (LangGraph nodes, agents,
`with_structured_output`), reports `usage_metadata`, `model_name` and
`finish_reason` like a provider, honours `max_tokens`, and answers from an
oracle with the mistakes its `ErrorModel` describes. Randomness is keyed on the
prompt and the sample index, so runs are reproducible under any concurrency.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr

from ..sampling import message_text
from .errors_model import ErrorModel, decide, stable_hash, uniforms
from .simulated import default_malform, default_wrong, outcome_text

__all__ = ["SampleIndexedChatModel", "SimulatedChatModel", "prompt_key"]

Oracle = Callable[[list[BaseMessage]], str]


def prompt_key(messages: Sequence[BaseMessage]) -> str:
    """A stable hash of the prompt messages: equal prompts are the same step."""
    return stable_hash("\x1e".join(f"{m.type}:{message_text(m)}" for m in messages))


class SampleIndexedChatModel(BaseChatModel):
    """Base of the simulated chat models: knows which sample of its step a call is.

    maker_graph puts the sample index in the call's run metadata
    (`maker_sample_index`), so a simulated model answers sample i of a step the
    same way however the samples interleave. Called outside maker_graph, it counts
    calls per prompt instead.
    """

    _calls_per_prompt: dict[str, int] = PrivateAttr(default_factory=dict)

    def _sample_index(self, key: str, metadata: dict[str, Any] | None) -> int:
        index = (metadata or {}).get("maker_sample_index")
        if isinstance(index, int):
            return index
        n = self._calls_per_prompt.get(key, 0)
        self._calls_per_prompt[key] = n + 1
        return n

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[Any, AIMessage]:
        """Bind tools in OpenAI's format, as real chat models do; each model's
        `_respond` reads them from its call's keyword arguments."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)


class SimulatedChatModel(SampleIndexedChatModel):
    """A chat model that answers from an oracle and makes configurable mistakes.

    Args:
        oracle: the correct answer text for the prompt messages (JSON text when used
            with `with_structured_output`).
        wrong: a wrong answer text for `(messages, rival)`; default: drawn from `choices`
            when given, else a distinct variant of the correct text per rival.
        choices: the allowed answers (e.g. labels); wrong answers are the other choices.
        errors: the `ErrorModel`.
        model_name: reported in `response_metadata["model_name"]`.

    With tools bound (`bind_tools`), the oracle's answer (JSON text) comes back as a
    call of the first tool.

    Example:
        >>> model = SimulatedChatModel(oracle=lambda msgs: "billing",
        ...                            choices=["billing", "bug", "other"],
        ...                            errors=ErrorModel(error_rate=0.2, seed=1))
        >>> model.invoke("Classify: I was charged twice").content in {"billing", "bug", "other"}
        True
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    oracle: Oracle
    wrong: Callable[[list[BaseMessage], int], str] | None = None
    choices: list[str] | None = None
    errors: ErrorModel = Field(default_factory=ErrorModel)
    model_name: str = "simulated-chat"
    _attempts: dict[tuple[str, int], int] = PrivateAttr(default_factory=dict)

    @property
    def _llm_type(self) -> str:
        return "maker-graph-simulated"

    # ------------------------------------------------------------------ answering

    def _wrong_text(self, messages: list[BaseMessage], correct: str, rival: int) -> str:
        if self.wrong is not None:
            return self.wrong(messages, rival)
        if self.choices:
            others = [c for c in self.choices if c != correct] or [default_wrong(correct, 0)]
            return others[rival % len(others)]
        return default_wrong(correct, rival)

    def _respond(
        self, messages: list[BaseMessage], metadata: dict[str, Any] | None, kwargs: dict[str, Any]
    ) -> tuple[ChatResult, float]:
        errors = self.errors
        key = prompt_key(messages)
        index = self._sample_index(key, metadata)
        slot = (key, index)
        attempt = self._attempts.get(slot, 0)
        self._attempts[slot] = attempt + 1
        latency = errors.latency(uniforms(errors.seed, key, index, "latency", attempt)[0])
        if errors.fails:
            failure = errors.failure(uniforms(errors.seed, key, index, "fail", attempt)[0])
            if failure is not None:
                return _Failure(failure), latency  # type: ignore[return-value]
        self._attempts.pop(slot, None)

        outcome, _ = decide(errors, key, index)
        correct = self.oracle(messages)
        text = outcome_text(
            errors,
            key,
            index,
            outcome,
            correct,
            wrong=lambda rival: self._wrong_text(messages, correct, rival),
            malform=default_malform,
        )
        from ..tokens import count_tokens

        out_tokens = count_tokens(text)
        finish = "stop"
        cap = kwargs.get("max_tokens")
        if isinstance(cap, int) and out_tokens > cap:
            # Cut at roughly the cap, as a provider would, and say so.
            text = text[: max(1, len(text) * cap // out_tokens)]
            out_tokens, finish = cap, "length"
        in_tokens = sum(count_tokens(message_text(m)) for m in messages)
        usage = {
            "input_tokens": in_tokens,
            "output_tokens": out_tokens,
            "total_tokens": in_tokens + out_tokens,
        }
        meta = {
            "model_name": self.model_name,
            "finish_reason": finish,
            "temperature": kwargs.get("temperature"),
        }
        tools = kwargs.get("tools")
        if tools and finish == "stop":
            message = _tool_message(text, tools, usage, meta)
        else:
            message = AIMessage(content=text, usage_metadata=usage, response_metadata=meta)  # type: ignore[arg-type]
        return ChatResult(generations=[ChatGeneration(message=message)]), latency

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        result, latency = self._respond(
            messages, run_manager.metadata if run_manager else None, kwargs
        )
        if latency:
            time.sleep(latency)
        if isinstance(result, _Failure):
            raise result.error
        return result

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        result, latency = self._respond(
            messages, run_manager.metadata if run_manager else None, kwargs
        )
        if latency:
            await asyncio.sleep(latency)
        if isinstance(result, _Failure):
            raise result.error
        return result


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _tool_message(
    text: str, tools: list[dict[str, Any]], usage: dict[str, int], meta: dict[str, Any]
) -> AIMessage:
    name = tools[0].get("function", {}).get("name", "answer")
    try:
        args = json.loads(text)
    except json.JSONDecodeError:
        # Not JSON: a provider would return plain text; the structured parser then fails.
        return AIMessage(content=text, usage_metadata=usage, response_metadata=meta)  # type: ignore[arg-type]
    if not isinstance(args, dict):
        args = {"value": args}
    return AIMessage(
        content="",
        tool_calls=[{"name": name, "args": args, "id": f"call_{stable_hash(text)}"}],
        usage_metadata=usage,  # type: ignore[arg-type]
        response_metadata=meta,
    )
