"""Missing token counts are counted as the model's family would: tiktoken for
OpenAI's models (and an unnamed model), LangChain's approximate counter for the
rest; a count the provider reported is never replaced."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.messages.utils import count_tokens_approximately

from maker_graph.costs import TokenCountingSampler, count_prompt_tokens
from maker_graph.records import RawSample
from maker_graph.sampling import as_sampler
from maker_graph.tokens import count_tokens

# A text whose tiktoken count and four-characters-per-token estimate differ a lot:
# o200k encodes a run of one digit in few tokens.
TEXT = "0" * 400


@pytest.mark.parametrize(
    ("model", "tiktoken"),
    [
        (None, True),
        ("gpt-4.1-mini", True),
        ("openai:gpt-4o", True),
        ("o3-mini", True),
        ("ft:gpt-4o-mini:acme::abc", True),
        ("claude-3-5-haiku-latest", False),
        ("anthropic:claude-sonnet-4", False),
        ("llama-3.2-1b-instruct", False),
        ("gemma-3-270m", False),
    ],
)
def test_the_answer_is_counted_as_its_model_family_would(model: str | None, tiktoken: bool) -> None:
    sampler = TokenCountingSampler(as_sampler(lambda q: TEXT), model=model)
    raw = asyncio.run(sampler.sample("q", 0))
    approximate = count_tokens_approximately([HumanMessage(TEXT)], extra_tokens_per_message=0)
    assert count_tokens(TEXT) != approximate  # the two counters disagree on TEXT
    assert raw.output_tokens == (count_tokens(TEXT) if tiktoken else approximate)


def test_a_prompt_of_messages_for_another_family_is_counted_approximately() -> None:
    prompt = [("system", "You move disks."), ("user", TEXT)]
    expected = count_tokens_approximately(
        [HumanMessage("You move disks."), HumanMessage(TEXT)], extra_tokens_per_message=3
    )
    assert count_prompt_tokens(prompt, "claude-3-5-haiku-latest") == expected
    assert count_prompt_tokens(prompt) == 3 + 3 + count_tokens(
        "You move disks."
    ) + 3 + count_tokens(TEXT)


def test_reported_counts_are_kept_for_every_family() -> None:
    class Reporting:
        async def sample(self, step_input: object, index: int) -> RawSample:
            return RawSample(output=TEXT, text=TEXT, input_tokens=7, output_tokens=5)

    raw = asyncio.run(
        TokenCountingSampler(Reporting(), prompt=str, model="claude-3-5-haiku-latest").sample(
            "q", 0
        )
    )
    assert (raw.input_tokens, raw.output_tokens) == (7, 5)


def test_the_replys_own_model_names_the_family_when_the_sampler_is_not_told() -> None:
    class Claude:
        async def sample(self, step_input: object, index: int) -> RawSample:
            return RawSample(output=TEXT, text=TEXT, model="claude-3-5-haiku-20241022")

    raw = asyncio.run(TokenCountingSampler(Claude()).sample("q", 0))
    approximate = count_tokens_approximately([HumanMessage(TEXT)], extra_tokens_per_message=0)
    assert raw.output_tokens == approximate
