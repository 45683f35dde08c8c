"""Where a step's samples come from: a round's requests, and eager replacements.

`draw_round` draws one round's samples in as few requests as the sampler allows
(`n`), with spares for the step's next round. `EagerDraws` draws a step's samples
one task per index so that a red-flagged sample is replaced as soon as it is
known, not after the slowest sample of its round (`VotePolicy.eager_replacement`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any

from ._variation import use_variation
from .records import RawSample, Sample
from .sampling import ProviderRetry, draw, draw_many

__all__ = ["EagerDraws", "add_tokens", "batches", "draw_round"]

Signature = tuple[Any, Any, Any]
"""A red-flagged answer as the stuck rule compares it: (temperature, model, text)."""


def batches(sampler: Any) -> bool:
    """Whether `sampler` can draw several samples in one request (`n`)."""
    limit = getattr(sampler, "batch_limit", 1)
    return getattr(sampler, "batch_key", None) is not None and isinstance(limit, int) and limit > 1


def add_tokens(
    raws: Sequence[RawSample], tokens_in: int, tokens_out: int, tokens_cached: int
) -> tuple[int, int, int]:
    """Token totals (input, output, cached input) with `raws` (billed spares) added."""
    for raw in raws:
        tokens_in += raw.input_tokens or 0
        tokens_out += raw.output_tokens or 0
        tokens_cached += raw.cached_input_tokens or 0
    return tokens_in, tokens_out, tokens_cached


async def draw_round(
    sampler: Any,
    step_input: Any,
    first: int,
    n: int,
    retry: ProviderRetry,
    failures: dict[str, int],
    semaphore: asyncio.Semaphore | None,
    *,
    spares: int = 0,
) -> tuple[list[RawSample], list[RawSample]]:
    """Samples `first .. first + n - 1`, in index order, in as few requests as allowed,
    and up to `spares` samples after them drawn ahead in the round's last request.

    A sampler offering `batch_key`/`sample_many` (a chat model taking `n`) draws the
    samples that share a key (model and temperature) in one request, up to its
    `batch_limit`; whatever a request did not return is drawn one by one. Spares ride
    only on a request that is made anyway and share its key; a spare the server did
    not return is not drawn at all.
    """
    last = first + n  # the first index after the round
    indices = range(first, last)
    groups: list[list[int]] = []
    if batches(sampler):
        batch_key, limit = sampler.batch_key, sampler.batch_limit
        by_key: dict[Hashable, list[int]] = {}
        for i in indices:
            key_ = batch_key(i)
            if key_ is None:
                groups.append([i])
                continue
            group = by_key.get(key_)
            if group is None or len(group) >= limit:
                group = by_key[key_] = []
                groups.append(group)
            group.append(i)
        tail = groups[-1]
        key_ = batch_key(tail[-1])
        for j in range(last, last + spares):
            if key_ is None or len(tail) >= limit or batch_key(j) != key_:
                break
            tail.append(j)
    else:
        groups = [[i] for i in indices]

    def one(i: int) -> Any:
        return draw(sampler, step_input, i, retry=retry, failures=failures, semaphore=semaphore)

    async def several(group: list[int]) -> list[RawSample]:
        raws = await draw_many(
            sampler, step_input, group, retry=retry, failures=failures, semaphore=semaphore
        )
        # A server that sent fewer choices than asked: the round's own are drawn one by one.
        missing = [i for i in group[len(raws) :] if i < last]
        if missing:
            raws = [*raws, *await asyncio.gather(*[one(i) for i in missing])]
        return raws

    async def run(group: list[int]) -> list[RawSample]:
        return [await one(group[0])] if len(group) == 1 else await several(group)

    # return_exceptions: one failing request must not cancel its siblings.
    done = await asyncio.gather(*[run(g) for g in groups], return_exceptions=True)
    out: list[RawSample | None] = [None] * n
    ahead: list[RawSample] = []
    for group, raws in zip(groups, done, strict=True):
        if isinstance(raws, BaseException):
            raise raws
        for i, raw in zip(group, raws, strict=False):
            if i < last:
                out[i - first] = raw
            else:
                ahead.append(raw)
    return out, ahead  # type: ignore[return-value]  # every round index was filled above


class _Watched:
    """The sampler as one eager draw sees it: notes whether the call was made.

    A replacement thrown away before its call began was never billed; one whose
    call began was (the run's sample counter counts it the same way: at the call,
    less a call that failed and is retried).
    """

    __slots__ = ("inner", "started")

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.started = False

    async def sample(self, step_input: Any, index: int) -> Any:
        self.started = True
        try:
            return await self.inner.sample(step_input, index)
        except Exception:
            self.started = False  # a failed call is retried; it is not a sample
            raise


class EagerDraws:
    """A step's samples drawn one task per index; a red-flagged one is replaced at once.

    The vote still decides by rounds, exactly as without eager draws: a round is
    samples `first .. end - 1`, tallied in index order once all have arrived. What
    changes is when the next round's samples start. A round that holds j red-flagged
    samples cannot decide the step (it asked for exactly the votes that could), and
    leaves at least j votes still needed, so the next round surely draws indices
    `end .. end + j - 1` whenever it cannot be cut short by the budget: each index
    must be below the budget, and under loss of hope (`raise`, `escalate`) `end + k`
    must fit in it too, since the next round needs at most k samples and stops only
    if it needs more than are left. Each red-flagged arrival therefore starts the
    next such index at once. Which sample arrived first changes only when a draw
    starts, never which indices are drawn or what they are, so the tallies are the
    round-based loop's.

    The stuck rule (a red-flagged answer repeating at the same temperature and model
    makes the next round draw at a higher variation level) is the one exception: it
    is known for sure only once a repeat arrives, and a replacement started before
    then was drawn at the old level. It is cancelled and started again at the new
    level (or not at all when the sampler has no level left and the step gives up);
    if its call had begun it is billed and reported with the step's unused spares,
    never voted, never counted in the step's budget.
    """

    def __init__(
        self,
        sampler: Any,
        step_input: Any,
        check: Callable[[RawSample, int, int], Awaitable[Sample]],
        *,
        retry: ProviderRetry,
        failures: dict[str, int],
        semaphore: asyncio.Semaphore | None,
        k: int,
        budget: int,
        stop_hopeless: bool,
        levels: int,
    ) -> None:
        self.sampler = sampler
        self.step_input = step_input
        self.check = check
        self.retry, self.failures, self.semaphore = retry, failures, semaphore
        self.k, self.budget, self.stop_hopeless, self.levels = k, budget, stop_hopeless, levels
        self.tasks: dict[int, tuple[asyncio.Task[Sample], _Watched]] = {}
        self.dropped: list[tuple[asyncio.Task[Sample], _Watched]] = []

    async def _one(self, watched: _Watched, index: int, rnd: int) -> Sample:
        raw = await draw(
            watched,  # type: ignore[arg-type]  # `draw` needs only `sample`
            self.step_input,
            index,
            retry=self.retry,
            failures=self.failures,
            semaphore=self.semaphore,
        )
        return await self.check(raw, index, rnd)

    def _start(
        self, index: int, rnd: int, variation: contextlib.AbstractContextManager[Any]
    ) -> None:
        watched = _Watched(self.sampler)
        with variation:  # the task copies the context, variation level included
            task = asyncio.ensure_future(self._one(watched, index, rnd))
        self.tasks[index] = (task, watched)

    def _drop(self, indices: Sequence[int]) -> None:
        for i in indices:
            task, watched = self.tasks.pop(i)
            task.cancel()
            self.dropped.append((task, watched))

    async def round(
        self,
        first: int,
        n: int,
        rnd: int,
        level: int,
        variation: contextlib.AbstractContextManager[Any],
        repeats: set[Signature],
    ) -> list[Sample]:
        """Samples `first .. first + n - 1` (round `rnd`, variation `level`), checked, in
        index order; replacements for the red-flagged ones are started as they arrive.

        `repeats` holds the red-flagged signatures of the step's earlier rounds (the
        stuck rule's memory; read only).

        Raises:
            SamplerError: a sample of the round kept failing (the first in index order).
        """
        end = first + n
        for i in range(first, end):
            if i not in self.tasks:  # not started early by the round before
                self._start(i, rnd, variation)
        pending = {self.tasks[i][0] for i in range(first, end)}
        flagged = replaced = 0
        hopeful = not self.stop_hopeless or end + self.k <= self.budget
        stuck = False
        seen: set[Signature] = set()
        then = variation  # the variation of the next round
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.cancelled() or task.exception() is not None:
                    continue  # raised below, in index order
                sample = task.result()
                if sample.red_flag is None:
                    continue
                flagged += 1
                raw = sample.raw
                if self.levels and raw.temperature is not None and not stuck:
                    signature = (raw.temperature, raw.model, raw.text)
                    if signature in repeats or signature in seen:
                        # The step is stuck: its next round is drawn one level up, or not
                        # at all. What was started at this level is no replacement.
                        stuck = True
                        self._drop(range(end, end + replaced))
                        replaced = 0
                        if level >= self.levels:
                            hopeful = False
                        else:
                            then = use_variation(level + 1)
                    seen.add(signature)
            while hopeful and replaced < flagged and end + replaced < self.budget:
                self._start(end + replaced, rnd + 1, then)
                replaced += 1
        out: list[Sample] = []
        for i in range(first, end):
            task, _ = self.tasks.pop(i)
            out.append(task.result())  # raises the draw's error, if any
        return out

    async def close(self, timeout: float = 1.0) -> tuple[int, list[RawSample]]:
        """Cancel what is still in flight (a step that raised or was cancelled) and
        settle the replacements thrown away: how many were billed, and the replies of
        those that finished (their tokens were billed too).

        Waits at most `timeout` for cancelled draws to unwind.
        """
        if self.tasks:
            self._drop(list(self.tasks))
        billed = 0
        replies: list[RawSample] = []
        if self.dropped:
            await asyncio.wait([task for task, _ in self.dropped], timeout=timeout)
            for task, watched in self.dropped:
                if watched.started:
                    billed += 1
                if task.done() and not task.cancelled():
                    if task.exception() is None:
                        replies.append(task.result().raw)  # finished before the cancel landed
            self.dropped = []
        return billed, replies
