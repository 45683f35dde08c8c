"""Opt-in: a k = 2 vote of a small real model against its own greedy answer (marker `live`).

Skipped unless `MAKER_GRAPH_LIVE=1` and `MAKER_GRAPH_LIVE_BASE_URL` points at an
OpenAI-compatible server on this machine, e.g. llama.cpp's server with a small
instruction-tuned GGUF model (see docs/choosing-a-model.md, "A real model,
offline"):

    MAKER_GRAPH_LIVE=1 MAKER_GRAPH_LIVE_BASE_URL=http://127.0.0.1:8080/v1 \\
        .venv/bin/python -m pytest -m live tests/test_live_local_model.py -s

The micro-task is single-digit addition. The baseline is what a user would
otherwise do: one greedy (temperature 0) call. Voting draws at temperature 0.8,
so the test also prints one such sample's accuracy. What it asserts is only
that the vote is not clearly worse than greedy (within 2 binomial standard
errors): on a small model whose wrong sums agree (correlated errors, measured
with Qwen2.5-Coder-0.5B in issue 13), a vote mostly returns sampled accuracy to
greedy accuracy and need not beat it. `benchmarks/real_model.py` measures why.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import re

import pytest

from maker_graph.providers import ProviderOptions, resolve_chat_model
from maker_graph.sampling import ChatModelSampler, TemperatureSchedule
from maker_graph.vote import VotePolicy, Voter

pytestmark = pytest.mark.live

BASE_URL = os.environ.get("MAKER_GRAPH_LIVE_BASE_URL")
MODEL = os.environ.get("MAKER_GRAPH_LIVE_MODEL", "local-model")
QUESTIONS = int(os.environ.get("MAKER_GRAPH_LIVE_QUESTIONS", "20"))


def _prompt(pair: tuple[int, int]) -> str:
    a, b = pair
    return f"What is {a} + {b}? Reply with the number only, digits, nothing else."


def _parse(output: object) -> int:
    text = getattr(output, "content", output)
    numbers = re.findall(r"-?\d+", str(text))
    if len(numbers) != 1:
        raise ValueError(f"expected exactly one number, got {text!r}")  # a red flag
    return int(numbers[0])


@pytest.mark.timeout(1800)
def test_voting_lifts_a_small_local_model() -> None:
    if not BASE_URL:
        pytest.skip("set MAKER_GRAPH_LIVE_BASE_URL to a local OpenAI-compatible server")
    model = resolve_chat_model(
        f"openai:{MODEL}",
        ProviderOptions(base_url=BASE_URL, max_tokens=8, timeout=120, max_retries=1),
    )
    # Diversity for every sample, the first included: at temperature 0 a small model
    # repeats its one answer and voting has nothing to work with.
    schedule = TemperatureSchedule(first=0.8, rest=0.8)
    sampler = ChatModelSampler(model, prompt=_prompt, temperature=schedule, max_tokens=8)
    greedy_sampler = ChatModelSampler(
        model,
        prompt=_prompt,
        temperature=TemperatureSchedule(first=0.0, rest=0.0),
        max_tokens=8,
    )
    voter = Voter(
        sampler,
        parser=_parse,
        policy=VotePolicy(k=2, max_samples=12, on_no_consensus="plurality", max_concurrency=2),
    )
    rng = random.Random(0)
    pairs = [(rng.randint(1, 9), rng.randint(1, 9)) for _ in range(QUESTIONS)]

    def right(output: object, pair: tuple[int, int]) -> bool:
        try:
            return _parse(output) == sum(pair)
        except ValueError:
            return False

    async def run() -> tuple[int, int, int, int]:
        greedy = single = voted = samples = 0
        for pair in pairs:
            raw = await greedy_sampler.sample(pair, 0)
            greedy += right(raw.output, pair)
            result = await voter.vote(pair)
            samples += result.samples_drawn
            first = result.samples[0]
            single += first.valid and first.value == sum(pair)
            voted += result.winner == sum(pair)
        return greedy, single, voted, samples

    greedy, single, voted, samples = asyncio.run(run())
    print(
        f"\n{MODEL}: greedy call right on {greedy}/{QUESTIONS}, one T=0.8 sample on "
        f"{single}/{QUESTIONS}, first-to-ahead-by-2 vote on {voted}/{QUESTIONS}, "
        f"{samples / QUESTIONS:.1f} samples per question"
    )
    rate = greedy / QUESTIONS
    se = math.sqrt(max(rate * (1 - rate), 1 / QUESTIONS) / QUESTIONS)
    assert voted / QUESTIONS >= rate - 2 * se
