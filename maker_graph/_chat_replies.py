"""Chat model replies as samples: one message, or the `n` choices of one request.

Samples of a step that share a model, a temperature and a prompt can come from one
request with OpenAI's `n`, so the prompt is sent (and billed) once; the bill is then
split between them. `maker_graph.sampling` re-exports the public names.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from .records import RawSample


def message_text(message: Any) -> str:
    """The text of a chat message (string content, text blocks, or tool-call arguments)."""
    content = getattr(message, "content", message)
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "".join(
            part if isinstance(part, str) else str(part.get("text", ""))
            for part in content
            if isinstance(part, (str, dict))
        )
    else:
        text = str(content)
    tool_calls = getattr(message, "tool_calls", None)
    if not text and tool_calls:
        # The tool name is half of the action: refund(A1) and cancel(A1) must not read alike.
        text = json.dumps(
            [{"name": c.get("name"), "args": c.get("args", {})} for c in tool_calls],
            sort_keys=True,
        )
    return text


def raw_from_message(message: Any, temperature: float | None = None) -> RawSample:
    """Wrap a chat model's `AIMessage` with its usage, finish reason and model name."""
    usage = getattr(message, "usage_metadata", None) or {}
    meta = getattr(message, "response_metadata", None) or {}
    return RawSample(
        output=message,
        text=message_text(message),
        input_tokens=usage.get("input_tokens"),
        output_tokens=usage.get("output_tokens"),
        finish_reason=meta.get("finish_reason") or meta.get("stop_reason"),
        model=meta.get("model_name") or meta.get("model"),
        temperature=temperature,
        cached_input_tokens=_cache_read(usage),
    )


def _cache_read(usage: Mapping[str, Any]) -> int | None:
    """Prompt tokens a provider read from its cache (LangChain's `cache_read`), if said."""
    details = usage.get("input_token_details")
    read = details.get("cache_read") if isinstance(details, Mapping) else None
    return read if isinstance(read, int) and read >= 0 else None


def raw_from_any(value: Any) -> RawSample:
    """A sample from whatever a function or Runnable returned: a message, a string, any value."""
    if isinstance(value, RawSample):
        return value
    if hasattr(value, "content") and hasattr(value, "response_metadata"):
        return raw_from_message(value)
    text = value if isinstance(value, str) else repr(value)
    return RawSample(output=value, text=text)


DEFAULT_SAMPLES_PER_REQUEST = 8
"""Most samples one request carries by default where the model accepts `n`.

A round draws at most k samples (then k minus the leader's margin), so with k <= 8
every round of one temperature is one request.
"""


def accepts_n(model: Any) -> tuple[Any, dict[str, Any]] | None:
    """(the chat model, the kwargs bound around it) when it takes OpenAI's `n`, else None.

    `ChatOpenAI` (and Azure's, any `BaseChatOpenAI`) sends `n` to the chat-completions
    API and returns one generation per choice. Not when it streams (`n > 1` is refused
    there), uses the Responses API (no `n`), or fixes `n` itself.
    """
    kwargs: dict[str, Any] = {}
    try:
        from langchain_core.runnables import RunnableBinding
    except ImportError:  # pragma: no cover - langchain-core is a dependency
        return None
    while isinstance(model, RunnableBinding):
        if model.config:  # per-call config of its own: keep the ordinary path
            return None
        kwargs = {**model.kwargs, **kwargs}
        model = model.bound
    if "langchain_openai" not in sys.modules:
        return None  # a ChatOpenAI exists only once its module is loaded; importing costs
    try:
        from langchain_openai.chat_models.base import BaseChatOpenAI
    except ImportError:  # pragma: no cover - loaded above
        return None
    if not isinstance(model, BaseChatOpenAI):
        return None
    if getattr(model, "streaming", False) or getattr(model, "use_responses_api", None):
        return None
    if getattr(model, "n", None) not in (None, 1) or "n" in kwargs or "stream" in kwargs:
        return None
    return model, kwargs


def to_messages(model_input: Any) -> list[Any]:
    """The message list of a chat model input (a string, a PromptValue or messages)."""
    from langchain_core.messages import HumanMessage, convert_to_messages

    if hasattr(model_input, "to_messages"):
        return list(model_input.to_messages())
    if isinstance(model_input, str):
        return [HumanMessage(model_input)]
    return list(convert_to_messages(model_input))


def apportion(total: int, weights: Sequence[int]) -> list[int]:
    """`total` split in proportion to `weights` (largest remainders), summing to `total`.

    Example:
        >>> apportion(10, [1, 1, 1]), apportion(7, [4, 3])
        ([4, 3, 3], [4, 3])
    """
    n = len(weights)
    weight_sum = sum(weights)
    if weight_sum <= 0:
        weights, weight_sum = [1] * n, n
    shares = [total * w // weight_sum for w in weights]
    order = sorted(range(n), key=lambda i: (-(total * weights[i] % weight_sum), i))
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares


def split_usage(
    messages: Sequence[Any], temperature: float | None, model: str | None
) -> list[RawSample]:
    """One `RawSample` per choice of one request, its billed usage split between them.

    Every choice's message carries the request's whole usage; each gets its share
    instead (in `usage_metadata` too), so summing samples gives what was billed.
    """
    from .tokens import count_tokens_cached

    raws = [raw_from_message(m, temperature) for m in messages]
    usage = getattr(messages[0], "usage_metadata", None) if messages else None
    if usage:
        total_in = int(usage.get("input_tokens") or 0)
        total_out = int(usage.get("output_tokens") or 0)
        # count_tokens_cached estimates (never encodes) a text over MAX_COUNT_CHARS.
        shares = apportion(total_out, [count_tokens_cached(r.text) for r in raws])
        for i, (message, raw) in enumerate(zip(messages, raws, strict=True)):
            prompt = total_in if i == 0 else 0
            raw.input_tokens, raw.output_tokens = prompt, shares[i]
            if i:  # the prompt, cached part included, is the first choice's
                raw.cached_input_tokens = None
            split: dict[str, Any] = {
                "input_tokens": prompt,
                "output_tokens": shares[i],
                "total_tokens": prompt + shares[i],
            }
            if i == 0 and usage.get("input_token_details"):
                split["input_token_details"] = usage["input_token_details"]
            message.usage_metadata = split
    else:
        for raw in raws[1:]:
            raw.input_tokens = 0  # the prompt was sent (and billed) once
    for raw in raws:
        raw.model = raw.model or model
    return raws
