"""Drawing a pilot's samples: random steps with known answers, each sample scored.

The lowest layer of `maker_graph.estimate`: it picks the steps (replaying the task's
ground truth), samples a model on them with retries and a concurrency cap, and keeps
every sample as a `SampleRecord`, so everything downstream can be recomputed from
the records alone (another length cap, another target) without sampling again.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from .errors import ConfigurationError, SamplerError
from .records import RawSample, Sample
from .red_flags import RedFlag, check_sample
from .sampling import ProviderRetry, Sampler, draw
from .tasks.base import StepAnswer

Outcome = Literal["correct", "wrong", "malformed", "failed"]


class FrozenModel(BaseModel):
    """Base of the estimate file's records: immutable, and unknown fields are refused
    (a typo in a hand-edited file fails on load instead of being dropped)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SampleRecord(FrozenModel):
    """One pilot sample, enough to recompute everything at another length cap."""

    step: int
    """The step it answered."""
    index: int
    """Its index among the step's samples."""
    outcome: Outcome
    """`correct`, `wrong` (parsed, not the truth), `malformed` (did not parse) or
    `failed` (the provider failed every retry; not a sample)."""
    answer: str | None = None
    """A short fingerprint of a wrong answer, to tell identical wrong answers apart."""
    flag: str | None = None
    """A further red flag that discarded it (length flags are recomputed, not stored)."""
    output_tokens: int = 0
    """Output tokens (reported by the provider, else counted)."""
    input_tokens: int = 0
    """Input tokens (reported by the provider, else counted)."""
    finish_reason: str | None = None
    """Why generation stopped; `length` means the provider cut it off."""

    def valid(self, cap: int | None) -> bool:
        """True when this sample would vote under a length cap of `cap` tokens."""
        return (
            self.outcome in ("correct", "wrong")
            and self.flag is None
            and self.finish_reason != "length"
            and (cap is None or self.output_tokens <= cap)
        )


@dataclass(frozen=True, slots=True)
class PilotStep:
    """A step of the task with its right answer."""

    step: int
    state: Any
    previous_action: Any
    truth: StepAnswer


def pick_steps(
    task: Any, n: int, *, seed: int = 0, total_steps: int | None = None
) -> list[PilotStep]:
    """`n` distinct random steps of `task` (all of them when it has fewer), in step order.

    Steps are found by replaying the task's ground truth from the start (a task may
    offer `state_at(step) -> (state, previous_action)` to jump there directly).

    Raises:
        ConfigurationError: the task has no `true_step`.

    Example:
        >>> from maker_graph.tasks.hanoi import HanoiTask
        >>> [s.step for s in pick_steps(HanoiTask(3), 3, seed=1)]
        [0, 1, 4]
    """
    if not callable(getattr(task, "true_step", None)):
        raise ConfigurationError(
            f"{type(task).__name__} has no true_step(): a pilot estimate needs steps whose "
            "right answer is known (a TaskWithTruth)"
        )
    total = total_steps or getattr(task, "total_steps", None) or count_steps(task)
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(total), min(n, total)))
    state_at = getattr(task, "state_at", None)
    out: list[PilotStep] = []
    if callable(state_at):
        for step in chosen:
            state, previous = state_at(step)
            out.append(PilotStep(step, state, previous, task.true_step(state, previous)))
        return out
    wanted = iter(chosen)
    target = next(wanted, None)
    state, previous = task.initial_state(), None
    step = 0
    while target is not None:
        truth = task.true_step(state, previous)
        if step == target:
            out.append(PilotStep(step, state, previous, truth))
            target = next(wanted, None)
        state, previous = truth.next_state, truth.action
        step += 1
    return out


def count_steps(task: Any, limit: int = 50_000_000) -> int:
    state, previous, n = task.initial_state(), None, 0
    while not task.is_done(state):
        truth = task.true_step(state, previous)
        state, previous = truth.next_state, truth.action
        n += 1
        if n >= limit:
            raise ConfigurationError(
                f"{type(task).__name__} did not finish within {limit} true steps: "
                "give its length with task_steps="
            )
    return n


def fingerprint(answer: StepAnswer) -> str:
    import hashlib

    return hashlib.blake2b(repr(answer.key()).encode(), digest_size=6).hexdigest()


def score_sample(
    task: Any,
    pilot: PilotStep,
    index: int,
    raw: RawSample,
    red_flags: Sequence[RedFlag],
) -> SampleRecord:
    from .tokens import count_tokens_cached

    try:
        answer = task.parse(raw.output)
        key = answer.key() if hasattr(answer, "key") else answer
        truth_key = pilot.truth.key()
        outcome: Outcome = "correct" if key == truth_key else "wrong"
    except Exception:  # noqa: BLE001 - any parse failure is a malformed answer
        answer, outcome = None, "malformed"
    flag = None
    if outcome != "malformed" and red_flags:
        verdict = check_sample(Sample(index, raw, answer), red_flags)
        flag = verdict.reason if verdict is not None else None
    out_tokens = raw.output_tokens
    if out_tokens is None:
        out_tokens = count_tokens_cached(raw.text)
    return SampleRecord(
        step=pilot.step,
        index=index,
        outcome=outcome,
        answer=fingerprint(answer) if outcome == "wrong" and answer is not None else None,
        flag=flag,
        output_tokens=out_tokens,
        input_tokens=raw.input_tokens or 0,
        finish_reason=raw.finish_reason,
    )


async def sample_model(
    task: Any,
    sampler: Sampler,
    steps: Sequence[PilotStep],
    *,
    samples_per_step: int,
    concurrency: int,
    retry: ProviderRetry,
    red_flags: Sequence[RedFlag],
) -> tuple[list[SampleRecord], dict[str, int], float]:
    """Sample `sampler` `samples_per_step` times on each step and score every sample.

    Returns the records (failed calls as `outcome="failed"`), the provider failures
    by kind, and the wall time in seconds.
    """
    import time

    started = time.perf_counter()
    failures: dict[str, int] = {}
    semaphore = asyncio.Semaphore(concurrency)
    inputs = [task.step_input(s.state, s.previous_action, s.step) for s in steps]
    prompt_tokens: dict[int, int] = {}

    async def one(i: int, index: int) -> SampleRecord:
        pilot = steps[i]
        try:
            raw = await draw(
                sampler,
                inputs[i],
                index,
                retry=retry,
                failures=failures,
                semaphore=semaphore,
            )
        except SamplerError:
            return SampleRecord(step=pilot.step, index=index, outcome="failed")
        record = score_sample(task, pilot, index, raw, red_flags)
        if raw.input_tokens is None:
            # No usage from the provider: count the prompt (once per step) instead.
            if i not in prompt_tokens:
                from .costs import count_prompt_tokens

                prompt_tokens[i] = count_prompt_tokens(task.prompt(inputs[i]))
            record = record.model_copy(update={"input_tokens": prompt_tokens[i]})
        return record

    jobs = [one(i, j) for i in range(len(steps)) for j in range(samples_per_step)]
    records = list(await asyncio.gather(*jobs))
    return records, failures, time.perf_counter() - started
