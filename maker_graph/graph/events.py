"""Progress events the graph surfaces write to LangGraph's `custom` stream.

Every event is a plain dict with an `"event"` name and the emitting `"node"`,
so it can be shown, logged or sent to a browser as JSON:

- `maker.round`: a round of samples is sent out (`round`, `samples`, `tally`, `drawn`).
- `maker.sample`: a sample was drawn and checked (`index`, `round`, `key`, `valid`,
  `red_flag`, `output_tokens`).
- `maker.red_flag`: a sample was red-flagged (`index`, `reason`, `detail`, `resampled`).
- `maker.provider_failure`: every retry of a sample's provider call failed (`index`,
  `error`, `failures`).
- `maker.decided`: the step is decided (`winner`, `decided_by`, `tally`,
  `samples_drawn`, `rounds`, `red_flags`).
- `maker.chunk`: a decomposition chunk was committed (`steps_done`, `chunk_steps`,
  `done`, `samples`).
- `maker.progress`: a long decomposition chunk reports how far it is (`steps`,
  `total_steps`, `samples`, `red_flagged`, `elapsed` seconds), as `run_task`'s
  progress callback does.

`EVENT_FIELDS` maps each name to its fields (beside `event` and `node`).

`maker.escalation` is not streamed: it is the value of the `interrupt()` that
asks for an answer when the budget is spent.

Example:
    >>> stream = graph.stream(inputs, stream_mode="custom", subgraphs=True)  # doctest: +SKIP
    >>> for namespace, event in stream:  # doctest: +SKIP
    ...     print(event["event"])
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from langgraph.config import get_stream_writer

# `jsonable` is the records' JSON form of answers and keys, so events and
# `StepResult.to_dict()` always agree.
from ..errors import SamplerError
from ..records import Sample, StepResult, jsonable
from ..voting import samples_needed

__all__ = [
    "EVENT_NAMES",
    "EVENT_FIELDS",
    "VoteEvents",
    "chunk_event",
    "decided_event",
    "emit",
    "escalation_request",
    "jsonable",
    "progress_event",
    "provider_failure_event",
    "red_flag_event",
    "round_event",
    "sample_event",
]

EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "maker.round": ("round", "samples", "tally", "drawn"),
    "maker.sample": ("index", "round", "key", "valid", "red_flag", "output_tokens"),
    "maker.red_flag": ("index", "reason", "detail", "resampled"),
    "maker.provider_failure": ("index", "error", "failures"),
    "maker.decided": (
        "step",
        "winner",
        "decided_by",
        "tally",
        "samples_drawn",
        "rounds",
        "red_flags",
    ),
    "maker.chunk": ("steps_done", "chunk_steps", "done", "samples"),
    "maker.progress": ("steps", "total_steps", "samples", "red_flagged", "elapsed"),
}
"""Each streamed event's fields beside `event` and `node` (the emitting graph node)."""

EVENT_NAMES = tuple(EVENT_FIELDS)


def _pairs(tally: Iterable[tuple[Any, int]] | Mapping[Any, int]) -> list[list[Any]]:
    items = tally.items() if isinstance(tally, Mapping) else tally
    return [[jsonable(key), n] for key, n in items]


def round_event(
    node: str, rnd: int, samples: int, tally: Iterable[tuple[Any, int]], drawn: int
) -> dict[str, Any]:
    return {
        "event": "maker.round",
        "node": node,
        "round": rnd,
        "samples": samples,
        "tally": _pairs(tally),
        "drawn": drawn,
    }


def sample_event(node: str, sample: Sample) -> dict[str, Any]:
    return {
        "event": "maker.sample",
        "node": node,
        "index": sample.index,
        "round": sample.round,
        "key": jsonable(sample.key),
        "valid": sample.red_flag is None,
        "red_flag": sample.red_flag,
        "output_tokens": sample.raw.output_tokens,
    }


def red_flag_event(node: str, sample: Sample, *, resampled: bool | None) -> dict[str, Any]:
    return {
        "event": "maker.red_flag",
        "node": node,
        "index": sample.index,
        "reason": sample.red_flag,
        "detail": sample.red_flag_detail,
        "resampled": resampled,
    }


def provider_failure_event(
    node: str, index: int, error: BaseException, failures: Mapping[str, int]
) -> dict[str, Any]:
    return {
        "event": "maker.provider_failure",
        "node": node,
        "index": index,
        "error": repr(error),
        "failures": dict(failures),
    }


def decided_event(node: str, result: StepResult) -> dict[str, Any]:
    return {
        "event": "maker.decided",
        "node": node,
        "step": jsonable(result.step),
        "winner": jsonable(result.winner),
        "decided_by": result.decided_by,
        "tally": _pairs(result.tally),
        "samples_drawn": result.samples_drawn,
        "rounds": result.rounds,
        "red_flags": dict(result.red_flags),
    }


def chunk_event(
    node: str, steps_done: int, chunk_steps: int, done: bool, samples: int
) -> dict[str, Any]:
    return {
        "event": "maker.chunk",
        "node": node,
        "steps_done": steps_done,
        "chunk_steps": chunk_steps,
        "done": done,
        "samples": samples,
    }


def progress_event(
    node: str,
    steps: int,
    total_steps: int | None,
    samples: int,
    red_flagged: int,
    elapsed: float,
) -> dict[str, Any]:
    return {
        "event": "maker.progress",
        "node": node,
        "steps": steps,
        "total_steps": total_steps,
        "samples": samples,
        "red_flagged": red_flagged,
        "elapsed": elapsed,
    }


def escalation_request(
    node: str, step_input: Any, result: StepResult, max_samples: int
) -> dict[str, Any]:
    """The `interrupt()` value when a step's budget is spent without a winner.

    Resume the graph with `Command(resume=answer)`; the answer is written as the
    step's winner (`decided_by="escalation"`).
    """
    return {
        "event": "maker.escalation",
        "node": node,
        "question": (
            f"No answer got {result.k} votes ahead within {max_samples} samples. "
            "Resume with Command(resume=<the answer>)."
        ),
        "step_input": step_input,
        "tally": _pairs(result.tally),
        "samples_drawn": result.samples_drawn,
        "max_samples": max_samples,
        "k": result.k,
        "red_flags": dict(result.red_flags),
    }


def emit(event: dict[str, Any]) -> None:
    """Write a progress event to the graph's `custom` stream (a no-op when not streamed,
    or when the node is called directly, outside any graph)."""
    try:
        writer = get_stream_writer()
    except RuntimeError:
        return
    writer(event)


class VoteEvents:
    """The events of one vote decided by the engine in one call (`Voter.vote`).

    `maker_node`, `maker_task` and `MakerMiddleware` stream the same events as the
    voting sub-graph's nodes. The engine tells a caller only of checked samples
    (`on_sample`), in round order, after the whole round is drawn, so a round's
    event is written when its first sample arrives, sized as the engine sizes it
    (the votes still needed, capped by the budget left) from the earlier rounds.
    """

    def __init__(self, node: str, k: int, budget: int, attempts: int = 1) -> None:
        self.node = node
        self.k = k
        self.budget = budget
        self.attempts = attempts
        self.round = 0
        self.drawn = 0
        self.counts: dict[Hashable, int] = {}
        # Failed provider attempts per sample index: the index whose count reaches
        # the retry limit is the one whose `SamplerError` ends the vote.
        self.failed: dict[int, int] = {}
        self.exhausted: int | None = None

    def on_sample(self, sample: Sample) -> None:
        if sample.round != self.round:
            self.round = sample.round
            n = min(samples_needed(self.counts, self.k), self.budget - self.drawn)
            emit(round_event(self.node, self.round, n, list(self.counts.items()), self.drawn))
        self.drawn += 1
        emit(sample_event(self.node, sample))
        if sample.red_flag is None:
            self.counts[sample.key] = self.counts.get(sample.key, 0) + 1
        else:
            # The engine replaces it in its next round while the budget lasts.
            emit(red_flag_event(self.node, sample, resampled=None))

    def attempt_failed(self, index: int) -> None:
        self.failed[index] = self.failed.get(index, 0) + 1
        if self.failed[index] >= self.attempts and self.exhausted is None:
            self.exhausted = index

    def provider_failed(self, exc: SamplerError) -> None:
        index = self.exhausted if self.exhausted is not None else self.drawn
        emit(provider_failure_event(self.node, index, exc.last or exc, exc.failures))

    def decided(self, result: StepResult) -> None:
        emit(decided_event(self.node, result))
