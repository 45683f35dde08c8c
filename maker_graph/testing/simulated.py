"""`SimulatedSampler`: a fast, deterministic stand-in for a model, with no LangChain overhead.

It answers from an oracle (the correct answer text for a step input) and errs
as its `ErrorModel` says: wrong answers from the caller's `wrong` function,
rambles, malformed text, provider failures and latency. It is the engine's
default model for million-step runs and statistical tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any

from ..records import RawSample
from .errors_model import ErrorModel, Outcome, decide, stable_hash, uniforms

__all__ = [
    "SimulatedSampler",
    "default_malform",
    "default_wrong",
    "outcome_text",
    "ramble_text",
]

_FILLER = "Let me reconsider the previous reasoning once more before answering. "


def default_wrong(correct: str, rival: int) -> str:
    """A wrong answer for generic text tasks: a distinct string per rival."""
    return f"{correct} (alternative {rival + 1})" if correct else f"wrong-{rival + 1}"


def default_malform(text: str, die: int) -> str:
    """Break an answer's format: cut it short, garble it, or leave it empty."""
    choice = die % 3
    if choice == 0:
        return text[: max(0, len(text) // 2)] + " ..."
    if choice == 1:
        return "I am not sure about the format, but roughly: " + text[::-1]
    return ""


def ramble_text(answer: str, tokens: int) -> str:
    """A long preamble before the answer, about `tokens` tokens long."""
    # ~12 tokens per filler sentence; the answer still comes last so a lenient
    # parser would accept it: only a length red flag catches it.
    return _FILLER * max(1, tokens // 12) + answer


def outcome_text(
    errors: ErrorModel,
    key: str,
    index: int,
    outcome: Outcome,
    correct: str,
    *,
    wrong: Callable[[int], str],
    malform: Callable[[str, int], str],
) -> str:
    """The answer text a simulated sample gives for its rolled `outcome`.

    Shared by `SimulatedSampler` and `SimulatedChatModel`, so both err the same way.
    """
    if outcome.kind == "malformed":
        text = malform(correct, int(uniforms(errors.seed, key, index, "m")[0] * 1e9))
    elif outcome.kind == "wrong":
        text = wrong(outcome.rival)
    else:
        text = correct
    return ramble_text(text, errors.ramble_tokens) if outcome.ramble else text


class SimulatedSampler:
    """A simulated model as a `Sampler`, deterministic in `(seed, step, sample index)`.

    Args:
        answer: the correct answer text for a step input.
        wrong: a wrong answer text for `(step_input, rival)`; rival is in `[0, errors.rivals)`.
        errors: the error model.
        step_key: a stable identifier of a step input (default: the input itself when it
            is a str or int, else a hash of its repr). Samples of the same step share it.
        malform: breaks a correct answer's format; gets the text and a random integer.
        tokens: the output-token count the simulated provider reports for a text
            (default: tiktoken's count).
        input_tokens: prompt tokens reported per call, or a function of the step input.
        model_name: reported as the sample's model.

    Example:
        >>> import asyncio
        >>> s = SimulatedSampler(lambda q: "4", errors=ErrorModel(error_rate=0.0))
        >>> asyncio.run(s.sample("2+2?", 0)).text
        '4'
    """

    def __init__(
        self,
        answer: Callable[[Any], str],
        *,
        wrong: Callable[[Any, int], str] | None = None,
        errors: ErrorModel | None = None,
        step_key: Callable[[Any], Hashable] | None = None,
        malform: Callable[[str, int], str] | None = None,
        tokens: Callable[[str], int] | None = None,
        input_tokens: int | Callable[[Any], int] = 0,
        model_name: str = "simulated",
    ) -> None:
        self.answer = answer
        self.wrong = wrong
        self.errors = errors if errors is not None else ErrorModel()
        self.step_key = step_key
        self.malform = malform or default_malform
        if tokens is None:
            from ..tokens import count_tokens

            tokens = count_tokens
        self.tokens = tokens
        self.input_tokens = input_tokens
        self.model_name = model_name
        self._attempts: dict[tuple[str, int], int] = {}
        # No latency and no failures: the engine may take the answer without awaiting
        # (see `Voter`); it is exactly what `sample` would return.
        self.sample_now: Callable[[Any, int], RawSample] | None = (
            self.respond if self.errors.latency_median <= 0 and not self.errors.fails else None
        )

    def _key(self, step_input: Any) -> str:
        if self.step_key is not None:
            return stable_hash(self.step_key(step_input))
        return stable_hash(step_input)

    def _wrong(self, step_input: Any, correct: str, rival: int) -> str:
        if self.wrong is not None:
            return self.wrong(step_input, rival)
        return default_wrong(correct, rival)

    def respond(self, step_input: Any, index: int, attempt: int = 0) -> RawSample:
        """The sample synchronously (raises the simulated provider failure, if any)."""
        errors = self.errors
        key = self._key(step_input)
        if errors.fails:
            failure = errors.failure(uniforms(errors.seed, key, index, "fail", attempt)[0])
            if failure is not None:
                raise failure
        outcome, _ = decide(errors, key, index)
        correct = self.answer(step_input)
        text = outcome_text(
            errors,
            key,
            index,
            outcome,
            correct,
            wrong=lambda rival: self._wrong(step_input, correct, rival),
            malform=self.malform,
        )
        if outcome.ramble:
            out_tokens = errors.ramble_tokens
        else:
            out_tokens = self.tokens(text)
        in_tokens = (
            self.input_tokens
            if isinstance(self.input_tokens, int)
            else self.input_tokens(step_input)
        )
        return RawSample(
            output=text,
            text=text,
            input_tokens=in_tokens,
            output_tokens=out_tokens,
            finish_reason="stop",
            model=self.model_name,
            temperature=0.0 if index == 0 else 0.1,
        )

    async def sample(self, step_input: Any, index: int) -> RawSample:
        errors = self.errors
        if errors.latency_median <= 0 and not errors.fails:
            return self.respond(step_input, index)
        # A retry of the same sample must roll fresh dice (failure and latency), or a
        # failed or timed-out call would fail forever. Retries of one (step, index) run
        # one after another, so counting attempts here stays deterministic; the entry
        # goes once the call succeeds.
        key = self._key(step_input)
        slot = (key, index)
        attempt = self._attempts.get(slot, 0)
        self._attempts[slot] = attempt + 1
        if errors.latency_median > 0:
            die = uniforms(errors.seed, key, index, "latency", attempt)[0]
            await asyncio.sleep(errors.latency(die))
        sample = self.respond(step_input, index, attempt=attempt)
        del self._attempts[slot]
        return sample
