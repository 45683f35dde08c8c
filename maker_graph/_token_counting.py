"""Token counts a sampler did not report, filled in by counting with tiktoken.

Provider replies carry `usage_metadata`; some local servers and plain-function
samplers do not. `TokenCountingSampler` counts what is missing (the prompt and
the answer, with `maker_graph.tokens`, offline) so that `maker_graph.costs` can
price every sample. Re-exported by `maker_graph.costs`.
"""

from __future__ import annotations

from typing import Any

from .records import RawSample
from .sampling import ForwardsBatching, Sampler, message_text

__all__ = ["TokenCountingSampler", "count_prompt_tokens"]


def count_prompt_tokens(prompt: Any) -> int:
    """tiktoken's count of a prompt: a string, a list of messages, or a PromptValue.

    Chat formats add a few tokens per message for roles and separators; this adds
    OpenAI's documented 3 per message plus 3 for the reply's priming, so the count
    is close to what OpenAI bills.

    Example:
        >>> count_prompt_tokens("hello world")
        2
    """
    from .tokens import count_tokens

    if hasattr(prompt, "to_messages"):
        prompt = prompt.to_messages()
    if isinstance(prompt, str):
        return count_tokens(prompt)
    if isinstance(prompt, (list, tuple)):
        total = 3
        for message in prompt:
            if isinstance(message, tuple) and len(message) == 2:
                text = str(message[1])
            else:
                text = message_text(message)
            total += 3 + count_tokens(text)
        return total
    return count_tokens(str(prompt))


class TokenCountingSampler(ForwardsBatching):
    """Fills in token counts a sampler did not report, by counting with tiktoken.

    Reported counts are kept as they are. A missing input count is the prompt's
    count (`prompt(step_input)`, e.g. `task.prompt`), computed once per distinct
    prompt text; a missing output count is the answer text's count.

    Example:
        >>> import asyncio
        >>> from maker_graph.sampling import as_sampler
        >>> s = TokenCountingSampler(as_sampler(lambda q: "four"), prompt=lambda q: q)
        >>> raw = asyncio.run(s.sample("What is 2 + 2?", 0))
        >>> raw.input_tokens, raw.output_tokens
        (8, 1)
    """

    inner: Sampler

    def __init__(self, inner: Sampler, *, prompt: Any = None) -> None:
        self.inner = inner
        self.prompt = prompt

    async def sample(self, step_input: Any, index: int) -> RawSample:
        raw = await self.inner.sample(step_input, index)
        if raw.output_tokens is None:
            from .tokens import count_tokens_cached

            raw.output_tokens = count_tokens_cached(raw.text)
        if raw.input_tokens is None and self.prompt is not None:
            raw.input_tokens = count_prompt_tokens(self.prompt(step_input))
        return raw

    # Several samples from one request (`n`, see ChatModelSampler.sample_many).
    async def sample_many(self, step_input: Any, indices: list[int]) -> list[RawSample]:
        raws: list[RawSample] = await self.inner.sample_many(  # type: ignore[attr-defined]
            step_input, indices
        )
        from .tokens import count_tokens_cached

        for i, raw in enumerate(raws):
            if raw.output_tokens is None:
                raw.output_tokens = count_tokens_cached(raw.text)
            if raw.input_tokens is None and self.prompt is not None:
                # The prompt went once, with the request's first sample.
                raw.input_tokens = count_prompt_tokens(self.prompt(step_input)) if i == 0 else 0
        return raws
