"""A vote's checkpointed data and its escalation to a human (private).

`maker_node` and `maker_task` keep a vote's outcome in a LangGraph task result,
so a resume reads it back instead of voting again: `result_fields`/`step_result`
for a decided vote, `undecided` for one whose budget ran out. `escalated` asks a
human for the answer with `interrupt()`, and every surface that interrupts
checks the resume value the same way (`human_answer`, `resumed_answer`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.types import interrupt

from .._sync import run_sync
from ..errors import ConfigurationError, NoConsensusError
from ..records import RawSample, StepResult, jsonable
from ..red_flags import PARSE_ERROR, TOO_LARGE
from ..vote import Voter
from .events import escalation_request

__all__ = [
    "escalated",
    "hashable_key",
    "human_answer",
    "result_fields",
    "resumed_answer",
    "step_result",
    "undecided",
]


def result_fields(result: StepResult) -> dict[str, Any]:
    """A decided step as plain data a checkpointer stores (samples are not kept)."""
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    del fields["samples"]
    fields["tally"] = list(result.tally.items())
    return fields


def step_result(fields: Mapping[str, Any]) -> StepResult:
    """`result_fields` back as a `StepResult` (a checkpoint turns tuple keys into lists)."""
    values = dict(fields)
    tally = values["tally"]  # a dict in checkpoints written before the pairs
    pairs = tally.items() if isinstance(tally, Mapping) else tally
    values["tally"] = {hashable_key(key): n for key, n in pairs}
    values["winner_key"] = hashable_key(values["winner_key"])
    return StepResult(**values)


async def resumed_answer(
    voter: Voter, answer: Any, tally: Mapping[Hashable, int], node: str
) -> tuple[Any, Hashable]:
    """A resume value after an escalation, checked as the step checks a sample.

    An answer with the key of a tallied candidate is taken as it is; any other must
    parse and key as a sample's raw output would (a text answer to a chat-model parser
    is also tried as an `AIMessage` of that text). Red flags are not applied: they are
    signs of an unreliable model reply (length, format, a pattern), and an escalation
    exists because the person answering is trusted over the model. Returns the winner
    and its key; raises `ConfigurationError` naming what the step expects.
    """
    try:
        key = voter.key(answer)
    except Exception:  # noqa: BLE001 - then the parser decides
        key = None
    if key is not None and key in tally:
        return answer, key
    tries = [answer] + ([AIMessage(content=answer)] if isinstance(answer, str) else [])
    problems = []
    for raw in tries:
        text = answer if isinstance(answer, str) else ""
        sample = await voter.check(RawSample(raw, text), 0)
        if sample.red_flag not in (PARSE_ERROR, TOO_LARGE):
            return sample.value, sample.key
        problems.append(f"{sample.red_flag}: {sample.red_flag_detail}")
    raise ConfigurationError(
        f"{node}: the resume value {answer!r} is not an answer this step accepts "
        f"({problems[-1]}); resume with Command(resume=<answer>), one of the candidates "
        f"{[jsonable(k) for k in tally]} or an answer the step's parser accepts"
    )


async def human_answer(
    request: dict[str, Any], voter: Voter, tally: Mapping[Hashable, int], node: str
) -> tuple[Any, Hashable]:
    """Ask with `interrupt(request)` until the resume value passes `resumed_answer`.

    A refused value is not an error the thread cannot leave (LangGraph would replay
    the same resume value on every retry): the step interrupts again, the new value
    saying why (`question`) and what was refused (`refused`). Returns winner and key.
    """
    answer = interrupt(request)
    while True:
        try:
            return await resumed_answer(voter, answer, tally, repr(node))
        except ConfigurationError as exc:
            answer = interrupt({**request, "question": str(exc), "refused": jsonable(answer)})


def hashable_key(value: Any) -> Any:
    """A vote key read back from a checkpoint: lists (a serialised tuple) become tuples.

    Example:
        >>> hashable_key([1, [2, 3]])
        (1, (2, 3))
    """
    if isinstance(value, list):
        return tuple(hashable_key(v) for v in value)
    return value


def undecided(exc: NoConsensusError, failures: Mapping[str, int] | None = None) -> dict[str, Any]:
    """An undecided vote as plain data for a checkpointed task (see `escalated`)."""
    return {
        "decided": False,
        "tally": list(exc.tally.items()),
        "drawn": exc.samples_drawn,
        "red_flags": dict(exc.red_flags),
        "failures": dict(failures or {}),
        # Billed all the same: the decided step's totals must not drop them.
        "tokens": [exc.input_tokens, exc.output_tokens, exc.cached_input_tokens],
        "spares_unused": exc.spares_unused,
        "unmetered_samples": exc.unmetered_samples,
    }


def escalated(voter: Voter, saved: Mapping[str, Any], node: str, step_input: Any) -> StepResult:
    """The `undecided` vote decided by a human: `interrupt()` until an answer passes."""
    tally = {hashable_key(key): n for key, n in saved["tally"]}
    # .get: a checkpoint written before tokens were kept has none.
    tokens_in, tokens_out, tokens_cached = saved.get("tokens", (0, 0, 0))
    result = StepResult(
        winner=None,
        winner_key=None,
        tally=tally,
        decided_by="escalation",
        k=voter.policy.k,
        samples_drawn=saved["drawn"],
        valid_votes=sum(tally.values()),
        red_flags=dict(saved["red_flags"]),
        provider_failures=dict(saved.get("failures") or {}),
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cached_input_tokens=tokens_cached,
        spares_unused=saved.get("spares_unused", 0),
        unmetered_samples=saved.get("unmetered_samples", 0),
    )
    request = escalation_request(node, step_input, result, voter.policy.budget)
    result.winner, result.winner_key = run_sync(human_answer(request, voter, tally, node))
    return result
