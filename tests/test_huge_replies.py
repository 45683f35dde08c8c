"""Huge replies (issue 14): capped before anything parses or tokenizes them."""

from __future__ import annotations

import asyncio
import time

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from maker_graph import vote_step
from maker_graph.records import RawSample
from maker_graph.red_flags import MAX_SAMPLE_CHARS, TOO_LARGE, max_output_tokens, oversized
from maker_graph.sampling import ChatModelSampler
from maker_graph.tokens import MAX_COUNT_CHARS, count_tokens, count_tokens_cached, estimate_tokens

HUGE = 2_000_000  # twice the cap, small enough for a test


def test_cap_is_the_parse_cap() -> None:
    from maker_graph._bounded import MAX_PARSE_CHARS

    assert MAX_SAMPLE_CHARS == MAX_COUNT_CHARS == MAX_PARSE_CHARS == 1_000_000


def test_oversized_counts_text_output_and_blocks() -> None:
    assert oversized(RawSample("a" * (MAX_SAMPLE_CHARS + 1))) is not None  # output only
    assert oversized(RawSample("a" * MAX_SAMPLE_CHARS, "a" * MAX_SAMPLE_CHARS)) is None
    blocks = AIMessage(content=[{"type": "text", "text": "b" * (MAX_SAMPLE_CHARS // 2 + 1)}] * 2)
    assert oversized(RawSample(blocks, "")).reason == TOO_LARGE


def test_misreported_usage_does_not_let_a_huge_answer_vote() -> None:
    """A 2 MB answer billed as 10 tokens is flagged; the short answers decide the step."""
    huge = "4" + " " * HUGE  # parses as "4" once stripped, were it ever parsed

    def sampler(question: str, index: int) -> RawSample:
        text = huge if index % 2 == 0 else "4"
        return RawSample(text, text, input_tokens=5, output_tokens=10)

    seen: list[object] = []

    def parser(output: str) -> str:
        seen.append(len(output))
        return output.strip()

    result = asyncio.run(
        vote_step(sampler, "2+2?", k=2, parser=parser, red_flags=[max_output_tokens(750)])
    )
    assert result.winner == "4"
    assert result.red_flags == {TOO_LARGE: 2}
    assert result.valid_votes == 2
    assert all(n == 1 for n in seen)  # the parser never read a huge reply
    # Billed tokens are kept as reported: four samples of 10.
    assert result.output_tokens == 40
    flagged = [s for s in result.samples if s.red_flag == TOO_LARGE]
    assert all(len(s.raw.text) <= 1_000 and s.value is None for s in flagged)


def test_huge_chat_message_through_a_chat_model() -> None:
    """Through a LangChain chat model: the huge message is flagged and cut, quickly."""
    big = AIMessage(
        content="yes" + "!" * HUGE,
        usage_metadata={"input_tokens": 3, "output_tokens": 10, "total_tokens": 13},
    )
    model = GenericFakeChatModel(messages=iter([big] + [AIMessage(content="yes")] * 5))
    started = time.perf_counter()
    result = asyncio.run(vote_step(ChatModelSampler(model), "ok?", k=2, max_samples=6))
    assert result.winner == "yes"
    assert result.red_flags.get(TOO_LARGE) == 1
    assert time.perf_counter() - started < 10  # generous bound on a shared machine
    sample = next(s for s in result.samples if s.red_flag == TOO_LARGE)
    assert isinstance(sample.raw.output, str) and len(sample.raw.output) <= 1_000


def test_counting_a_huge_text_estimates_instead_of_encoding() -> None:
    text = "word " * (HUGE // 5 + 1)
    assert len(text) > MAX_COUNT_CHARS
    assert count_tokens(text) == estimate_tokens(text)
    assert count_tokens_cached(text) == estimate_tokens(text)
    assert count_tokens("move = [1, 0, 2]") == 11  # ordinary texts are still encoded


@pytest.mark.parametrize("reported", [None, 10])
def test_max_output_tokens_on_a_huge_text_is_bounded(reported: int | None) -> None:
    from maker_graph.records import Sample

    text = "x" * HUGE
    flag = max_output_tokens(750)
    n = flag.tokens(Sample(0, RawSample(text, text, output_tokens=reported)))
    assert n == (reported if reported is not None else estimate_tokens(text))
