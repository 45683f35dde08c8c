"""Voter and sampler settings that used to pass the build and fail every sample now fail at once.

Before, each of these built fine and then turned every sample into a parse or red-flag
error (a NoConsensusError after the whole budget) or a SamplerError after six retries.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from maker_graph import ConfigurationError, VotePolicy, Voter
from maker_graph.red_flags import max_output_tokens
from maker_graph.sampling import ChatModelSampler


def answer(step_input: Any) -> str:
    return "4"


@pytest.mark.parametrize("flags", [["max_tokens"], [None], [1], "max_tokens", 3])
def test_red_flags_must_be_functions(flags: Any) -> None:
    with pytest.raises(ConfigurationError, match="red_flags"):
        Voter(answer, red_flags=flags)


def test_a_single_red_flag_is_taken_as_one() -> None:
    def never(sample: Any) -> None:
        return None

    voter = Voter(answer, red_flags=never, policy=VotePolicy(k=1))
    assert voter.red_flags == (never,)
    assert asyncio.run(voter.vote("2+2")).winner == "4"
    assert Voter(answer, red_flags=[max_output_tokens(750)]).red_flags[0] is not None


@pytest.mark.parametrize("role", ["parser", "key"])
@pytest.mark.parametrize("value", ["json", 3])
def test_parser_and_key_must_be_functions(role: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=f"{role}="):
        Voter(answer, **{role: value})


@pytest.mark.parametrize("k", [True, False, 0, 1.5, "3"])
def test_k_must_be_a_positive_int_not_a_bool(k: Any) -> None:
    with pytest.raises(ConfigurationError, match="k must be an integer"):
        VotePolicy(k=k)


@pytest.mark.parametrize("prompt", ["Classify: {ticket}", 42])
def test_a_chat_prompt_must_be_a_function_or_template(prompt: Any) -> None:
    model = FakeListChatModel(responses=["a"])
    with pytest.raises(ConfigurationError, match="prompt="):
        ChatModelSampler(model, prompt=prompt)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_the_default_step_budget_is_10k_plus_20(k: int) -> None:
    """The documented default (docs/voting.md: `10k + 20`), and max_samples overrides it."""
    assert VotePolicy(k=k).budget == 10 * k + 20
    assert VotePolicy(k=k, max_samples=k + 2).budget == k + 2
