"""Token counts a sampler did not report, filled in by counting.

Provider replies carry `usage_metadata`; some local servers and plain-function
samplers do not. `TokenCountingSampler` counts what is missing (the prompt and
the answer) so that `maker_graph.costs` can price every sample. The provider's
own count always wins; then OpenAI's model families (and an unnamed model) are
counted with tiktoken (`maker_graph.tokens`, offline), since tiktoken is their
tokenizer; any other family (Claude, Llama, Gemma, ...) with LangChain's
`count_tokens_approximately`, since o200k would be no truer for them than an
estimate and would claim to be exact. Re-exported by `maker_graph.costs`.
"""

from __future__ import annotations

import re
from typing import Any

from .records import RawSample
from .sampling import ForwardsBatching, Sampler, message_text

__all__ = ["TokenCountingSampler", "count_prompt_tokens", "uses_tiktoken"]

# OpenAI's model names (bare, `openai:`-prefixed or fine-tuned `ft:...`).
_OPENAI_FAMILY = re.compile(
    r"^(?:(?:openai|azure_openai):)?(?:ft:)?"
    r"(?:gpt-|chatgpt-|o\d|text-|davinci|babbage|codex-|computer-use-)",
    re.IGNORECASE,
)


def uses_tiktoken(model: str | None) -> bool:
    """True when tiktoken is the tokenizer of `model` (OpenAI's families), or no
    model is named.

    Example:
        >>> uses_tiktoken("openai:gpt-4.1-mini"), uses_tiktoken("claude-3-5-haiku-latest")
        (True, False)
    """
    return model is None or _OPENAI_FAMILY.match(model) is not None


def _approximate(texts: list[str], per_message: float) -> int:
    from langchain_core.messages import HumanMessage
    from langchain_core.messages.utils import count_tokens_approximately

    messages = [HumanMessage(text) for text in texts]
    return count_tokens_approximately(messages, extra_tokens_per_message=per_message)


def _count_answer(text: str, model: str | None) -> int:
    from .tokens import count_tokens_cached

    if uses_tiktoken(model):
        return count_tokens_cached(text)
    return _approximate([text], 0)


def count_prompt_tokens(prompt: Any, model: str | None = None) -> int:
    """The token count of a prompt: a string, a list of messages, or a PromptValue.

    For OpenAI's families (and no `model`), tiktoken's count plus OpenAI's
    documented 3 tokens per message and 3 for the reply's priming, close to what
    OpenAI bills; for other families, LangChain's approximate count.

    Example:
        >>> count_prompt_tokens("hello world")
        2
    """
    from .tokens import count_tokens

    if hasattr(prompt, "to_messages"):
        prompt = prompt.to_messages()
    if not uses_tiktoken(model):
        if isinstance(prompt, (list, tuple)):
            return _approximate([_message_text(m) for m in prompt], 3)
        return _approximate([str(prompt)], 0)
    if isinstance(prompt, str):
        return count_tokens(prompt)
    if isinstance(prompt, (list, tuple)):
        return 3 + sum(3 + count_tokens(_message_text(m)) for m in prompt)
    return count_tokens(str(prompt))


def _message_text(message: Any) -> str:
    if isinstance(message, tuple) and len(message) == 2:  # ("user", "text")
        return str(message[1])
    return message_text(message)


class TokenCountingSampler(ForwardsBatching):
    """Fills in token counts a sampler did not report.

    Reported counts are kept as they are. A missing input count is the prompt's
    count (`prompt(step_input)`, e.g. `task.prompt`); a missing output count is
    the answer text's count; both counted as `model`'s family is (see the module
    docstring), or as the reply's own `model` says when `model` is None, with
    tiktoken when neither names one.

    Example:
        >>> import asyncio
        >>> from maker_graph.sampling import as_sampler
        >>> s = TokenCountingSampler(as_sampler(lambda q: "four"), prompt=lambda q: q)
        >>> raw = asyncio.run(s.sample("What is 2 + 2?", 0))
        >>> raw.input_tokens, raw.output_tokens
        (8, 1)
    """

    inner: Sampler

    def __init__(self, inner: Sampler, *, prompt: Any = None, model: str | None = None) -> None:
        self.inner = inner
        self.prompt = prompt
        self.model = model

    async def sample(self, step_input: Any, index: int) -> RawSample:
        raw = await self.inner.sample(step_input, index)
        if raw.output_tokens is None:
            raw.output_tokens = _count_answer(raw.text, self.model or raw.model)
        if raw.input_tokens is None and self.prompt is not None:
            raw.input_tokens = count_prompt_tokens(self.prompt(step_input), self.model or raw.model)
        return raw

    # Several samples from one request (`n`, see ChatModelSampler.sample_many).
    async def sample_many(self, step_input: Any, indices: list[int]) -> list[RawSample]:
        raws: list[RawSample] = await self.inner.sample_many(  # type: ignore[attr-defined]
            step_input, indices
        )
        for i, raw in enumerate(raws):
            if raw.output_tokens is None:
                raw.output_tokens = _count_answer(raw.text, self.model or raw.model)
            if raw.input_tokens is None and self.prompt is not None:
                # The prompt went once, with the request's first sample.
                prompt = self.prompt(step_input)
                model = self.model or raw.model
                raw.input_tokens = count_prompt_tokens(prompt, model) if i == 0 else 0
        return raws
