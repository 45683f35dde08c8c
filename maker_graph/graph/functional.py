"""`maker_task`: a voted step for LangGraph's Functional API (`@entrypoint`/`@task`).

`maker_task(step, k=3, ...)` (or `@maker_task(k=3, ...)` over a function that
draws one sample) returns a `MakerTask`. Called inside an `@entrypoint` it works
like a `@task`: `voted(step_input)` returns a future of the winning answer
(`.result()` in a sync entrypoint, `await` in an async one), and
`voted.with_result(step_input)` a future of the whole `StepResult` (tally,
samples drawn, red flags, tokens).

The vote is a task, and each of its samples is a task nested in it. The
checkpointer saves every sample as it finishes, so after a crash, an outage or
an `interrupt()` the resumed run replays the finished samples from the
checkpoint and draws only the missing ones. The engine (`Voter`) decides the
step exactly as in `maker_node`; only the way a sample is drawn changes.

Example:
    >>> from langgraph.checkpoint.memory import InMemorySaver
    >>> from langgraph.func import entrypoint
    >>> from maker_graph.graph import maker_task
    >>> @maker_task(k=2)
    ... def classify(ticket: str) -> str:
    ...     return "billing" if "charged" in ticket else "other"
    >>> @entrypoint(checkpointer=InMemorySaver())
    ... def triage(ticket: str) -> str:
    ...     return classify(ticket).result()
    >>> triage.invoke("charged twice", {"configurable": {"thread_id": "1"}})
    'billing'
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import dataclasses
from collections.abc import Callable
from typing import Any, cast

from langgraph.config import get_config
from langgraph.func import task
from typing_extensions import Unpack

from .._sync import run_sync
from ..errors import ConfigurationError, MakerRuntimeError, NoConsensusError, SamplerError
from ..records import RawSample, StepResult
from ..sampling import ProviderRetry, Sampler, draw
from ..vote import Voter
from ._escalation import escalated, result_fields, step_result, undecided
from ._options import (
    StepOptions,
    VotedStep,
    checked_input,
)
from .events import VoteEvents, decided_event, emit

__all__ = ["MakerTask", "maker_task"]

# The vote's own draw must not retry: each call of a sample task has its own place in
# the checkpoint (LangGraph numbers a task's nested calls in call order), so a retry
# outside the task would shift the numbering of every later sample on resume. The
# retries happen inside the sample task instead (`_draw_sample`).
_NO_RETRY = ProviderRetry(max_attempts=1, timeout=None, retry_on=())
_RAW_FIELDS = tuple(f.name for f in dataclasses.fields(RawSample))


class _TaskSampler:
    """Draws sample `index` of a step as a LangGraph task nested in the vote task.

    One instance per vote: it gathers the provider failures its samples report
    (they happen inside the sample tasks, out of the engine's sight).
    """

    def __init__(self, owner: MakerTask, *, sync: bool) -> None:
        self.inner = owner.sampler  # followed by `variation_levels`
        self._owner = owner
        self._sync = sync
        self.failures: dict[str, int] = {}
        # Sync: the sample tasks are called from one thread that is not an asyncio task,
        # in the order the engine asks for them (see `sample`).
        self._caller: concurrent.futures.ThreadPoolExecutor | None = None

    async def sample(self, step_input: Any, index: int) -> RawSample:
        owner = self._owner
        if self._sync:
            # A sync task must be called outside any asyncio task (LangGraph hands an
            # asyncio task an asyncio future of the graph's own loop, not of this one),
            # and one caller thread keeps the calls in the order they were asked for.
            if self._caller is None:
                self._caller = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="maker-task"
                )
            context = contextvars.copy_context()
            call = self._caller.submit(context.run, owner._sample_task, step_input, index)
            future = await asyncio.wrap_future(call)
            saved = await asyncio.wrap_future(future)
        else:
            saved = await owner._asample_task(step_input, index)
        return self._raw(saved, index)

    def _raw(self, saved: Any, index: int) -> RawSample:
        if not isinstance(saved, dict) or saved.get("index") != index:
            got = saved.get("index") if isinstance(saved, dict) else type(saved).__name__
            raise MakerRuntimeError(
                f"maker_task {self._owner.name!r}: the checkpoint holds sample {got} where "
                f"sample {index} was expected; the entrypoint must call its tasks in the "
                "same order on every run (do not branch on time, randomness or I/O)"
            )
        for kind, n in saved["failures"].items():
            self.failures[kind] = self.failures.get(kind, 0) + n
        # A field added to RawSample later is absent from older checkpoints: its default.
        return RawSample(**{f: saved[f] for f in _RAW_FIELDS if f in saved})

    def close(self) -> None:
        if self._caller is not None:
            self._caller.shutdown(wait=False)


class MakerTask:
    """A voted step for the Functional API (see `maker_task`); sync and async.

    Call it inside an `@entrypoint` (or a `@task`) as you would a `@task`.

    Attributes:
        name: the vote task's name; its samples are tasks named `name + ".sample"`.
        voter: the compiled `Voter` (parser, key, red flags, policy) that decides the step.
        sampler: what one sample is, as a `Sampler`.
    """

    def __init__(
        self,
        name: str,
        sampler: Sampler,
        voter: Voter,
        *,
        retry: ProviderRetry,
        interrupt_on_no_consensus: bool,
        check_input: Callable[[Any], Any] | None = None,
    ) -> None:
        self.name = name
        self.sampler = sampler
        self.voter = voter
        self._retry = retry
        self._interrupts = interrupt_on_no_consensus
        self._check_input = check_input
        # Both variants of each task share one name: a thread started under `invoke`
        # resumes under `ainvoke` (or back) with the same checkpointed samples.
        self._vote_task: Any = task(name=name)(cast(Any, self._vote))
        self._avote_task: Any = task(name=name)(cast(Any, self._avote))
        self._sample_task: Any = task(name=f"{name}.sample")(cast(Any, self._sample))
        self._asample_task: Any = task(name=f"{name}.sample")(cast(Any, self._asample))

    # ------------------------------------------------------------ calling it

    def __call__(self, step_input: Any) -> Any:
        """A future of the winning answer (`.result()` when sync, `await` when async)."""
        return _mapped(self._start(step_input), _winner)

    def with_result(self, step_input: Any) -> Any:
        """A future of the step's `StepResult` (winner, tally, samples drawn, red flags).

        Example:
            >>> from langgraph.func import entrypoint
            >>> voted = maker_task(lambda q: "4", k=2)
            >>> @entrypoint()
            ... def run(q: str) -> dict:
            ...     return voted.with_result(q).result().tally
            >>> run.invoke("2 + 2?")
            {'4': 2}
        """
        return _mapped(self._start(step_input), _step_result)

    def _start(self, step_input: Any) -> Any:
        try:
            get_config()
        except RuntimeError:
            raise ConfigurationError(
                f"maker_task {self.name!r} was called outside a LangGraph run; call it "
                "inside an @entrypoint (or a @task), or use maker_graph.vote_step_sync / "
                "vote_step to vote a step without LangGraph"
            ) from None
        checked_input(step_input, self._check_input)
        try:
            in_async = asyncio.current_task() is not None
        except RuntimeError:
            in_async = False
        return (self._avote_task if in_async else self._vote_task)(step_input)

    # ------------------------------------------------------------ the vote task

    async def _decide(self, step_input: Any, sampler: _TaskSampler) -> dict[str, Any]:
        voter = self.voter.with_sampler(sampler, escalate=self.voter.escalate)
        policy = voter.policy
        events = VoteEvents(self.name, policy.k, policy.budget)
        try:
            try:
                result = await voter.vote(step_input, on_sample=events.on_sample)
            except SamplerError as exc:
                events.provider_failed(exc)
                raise
            except NoConsensusError as exc:
                if not self._interrupts:
                    raise
                return undecided(exc, sampler.failures)
        finally:
            sampler.close()
        for kind, n in sampler.failures.items():
            result.provider_failures[kind] = result.provider_failures.get(kind, 0) + n
        events.decided(result)
        return {"decided": True, "result": result_fields(result)}

    def _escalated(self, step_input: Any, saved: dict[str, Any]) -> dict[str, Any]:
        if saved["decided"]:
            return saved
        result = escalated(self.voter, saved, self.name, step_input)
        emit(decided_event(self.name, result))
        return {"decided": True, "result": result_fields(result)}

    def _vote(self, step_input: Any) -> dict[str, Any]:
        saved = run_sync(self._decide(step_input, _TaskSampler(self, sync=True)))
        return self._escalated(step_input, saved)

    async def _avote(self, step_input: Any) -> dict[str, Any]:
        saved = await self._decide(step_input, _TaskSampler(self, sync=False))
        return self._escalated(step_input, saved)

    # ------------------------------------------------------------ one sample task

    async def _asample(self, step_input: Any, index: int) -> dict[str, Any]:
        failures: dict[str, int] = {}
        raw = await draw(self.sampler, step_input, index, retry=self._retry, failures=failures)
        # Plain data: any checkpointer can store it (the output is the step's own raw
        # answer: an `AIMessage`, a string, whatever the function returned).
        fields = {f: getattr(raw, f) for f in _RAW_FIELDS}
        return {"index": index, **fields, "failures": failures}

    def _sample(self, step_input: Any, index: int) -> dict[str, Any]:
        return run_sync(self._asample(step_input, index))


def _step_result(saved: dict[str, Any]) -> StepResult:
    return step_result(saved["result"])


def _winner(saved: dict[str, Any]) -> Any:
    return saved["result"]["winner"]


def _mapped(future: Any, fn: Callable[[Any], Any]) -> Any:
    """A future of `fn(result)` of the same kind as `future` (asyncio or concurrent)."""
    out: Any
    if isinstance(future, asyncio.Future):
        out = future.get_loop().create_future()
    else:
        out = concurrent.futures.Future()

    def done(source: Any) -> None:
        if out.done():
            return
        if source.cancelled():
            out.cancel()
            return
        exc = source.exception()
        if exc is not None:
            out.set_exception(exc)
            return
        try:
            out.set_result(fn(source.result()))
        except Exception as err:  # noqa: BLE001 - handed to whoever awaits the future
            out.set_exception(err)

    future.add_done_callback(done)
    return out


def maker_task(step: Any = None, *, name: str | None = None, **options: Unpack[StepOptions]) -> Any:
    """Make a fragile step a voted task for the Functional API, whose samples survive a resume.

    Two spellings, one meaning: `maker_task(step, k=3, ...)` wraps a step, and
    `@maker_task(k=3, ...)` decorates a function that draws one sample. Call the
    result inside an `@entrypoint` with the step's one input (pass a dict for
    several values): `voted(x)` is a future of the winner (`.result()` in a sync
    entrypoint, `await voted(x)` in an async one); `voted.with_result(x)` a future
    of the `StepResult`. The winner must be storable by your checkpointer, like any
    `@task`'s result.

    The vote is a `@task`; each sample is a `@task` nested in it. A resume after a
    crash, an outage or an `interrupt()` replays the finished samples from the
    checkpoint and draws only the missing ones; a decided vote is not redone at all.
    The entrypoint must call its tasks in the same order on every run (LangGraph
    matches task results by call order).

    Args:
        step: what one sample is: a function `fn(x)` or `fn(x, sample_index)` (sync
            or async), a chat model (with `prompt=`; without one it gets `x` itself,
            or `x["messages"]`, or a one-key dict's value), a list of chat models
            (rotated per sample), any `Runnable`, or a `Sampler`. Omit it to get a
            decorator.
        options: the step options (`StepOptions`: `k`, `parser`, `key`, `red_flags`,
            `max_samples`, `on_no_consensus`, `escalate`, `temperature`, `models`,
            `prompt`, `max_tokens`, `structured`, `max_concurrency`, `retry`). Here
            `retry` runs inside each sample's task, and an escalation's `interrupt()`
            is made by the vote task (no sample is redrawn on resume).
        name: the vote task's name (default: the function's name, else
            `"maker_task"`); the samples are tasks named `name + ".sample"`.

    Returns:
        A `MakerTask`, or (without `step`) a decorator that makes one.

    Raises:
        ConfigurationError: options that cannot work, at build time.

    Example:
        >>> import asyncio
        >>> from langgraph.func import entrypoint
        >>> voted = maker_task(lambda q, i: "4" if i != 1 else "5", k=2)
        >>> @entrypoint()
        ... async def run(q: str) -> str:
        ...     return await voted(q)
        >>> asyncio.run(run.ainvoke("2 + 2?"))
        '4'
    """
    if step is None:
        return lambda fn: _build(fn, name, options)
    return _build(step, name, options)


def _build(step: Any, name: str | None, options: StepOptions) -> MakerTask:
    if step is None:
        raise ConfigurationError("maker_task needs a step: a function, chat model or Runnable")
    voted = VotedStep("maker_task", step, options)
    if name is None:
        name = getattr(step, "__name__", None) or "maker_task"
        if name == "<lambda>":
            name = "maker_task"
    retry = voted.options["retry"]
    return MakerTask(
        name,
        voted.sampler,
        voted.voter(decides=True, retry=_NO_RETRY),
        retry=retry if retry is not None else ProviderRetry(),
        interrupt_on_no_consensus=voted.interrupts,
        check_input=voted.check_input,
    )
