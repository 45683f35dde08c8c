"""Speculative stepping: start step t+1 from step t's likely winner while t's vote finishes.

A sequential run waits, at every step, for the slowest sample of the step's
last round. The first valid sample of a step usually names the winner, so the
`Speculator` starts the next step from that sample's next state at once, up to
`depth` steps ahead of the oldest undecided step. When a step is decided, the
step that was started from its guess is kept if the guess dumps to the same
action and state as the winner (its step input is then exactly the one a
non-speculative run would build), and is cancelled otherwise; the run then
starts that step again from the winner.

Exactness: a kept speculative step is voted by the same `Voter`, on the same
step input, with the same sample indices as it would be without speculation,
so a sampler seeded by step and sample index gives the same samples, winners
and tallies. Results are handed to the run strictly in step order, so nothing
speculative is ever committed. Samples of cancelled steps are never votes;
they are counted (`wasted`) for the run's report and budgets.

Escalation (a human or a stronger model) is never asked about a speculative
step: the handler waits until the step is the oldest undecided one.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .records import RawSample, StepResult
from .sampling import ForwardsBatching
from .vote import Voter

__all__ = ["Speculator", "takes_time"]


def takes_time(sampler: Any) -> bool:
    """Whether samples from `sampler` take time, so that speculation can save some.

    A sampler may say so itself with a boolean `takes_time` attribute. Otherwise:
    a sampler flagged as instant (a callable `sample_now`) does not; a simulated
    model (an `errors` `ErrorModel`) does when it has latency; a chat-model sampler
    does unless every model is one of maker_graph's instant test doubles; a wrapper
    (`inner`) is asked through. Plain functions, Runnables and scripted doubles are
    taken as instant: they are mostly tests, and scripted answers follow call order.
    """
    own = getattr(sampler, "takes_time", None)
    if isinstance(own, bool):
        return own
    if callable(getattr(sampler, "sample_now", None)):
        return False
    errors = getattr(sampler, "errors", None)
    median = getattr(errors, "latency_median", None)
    if isinstance(median, (int, float)):
        return median > 0
    models = getattr(sampler, "models", None)
    if isinstance(models, list) and models:
        return any(_model_takes_time(m) for m in models)
    inner = getattr(sampler, "inner", None)
    if inner is not None and inner is not sampler:
        return takes_time(inner)
    return False


def _model_takes_time(model: Any) -> bool:
    while hasattr(model, "bound"):  # bind_tools / bind / with_config bindings
        model = model.bound
    if not type(model).__module__.startswith("maker_graph.testing"):
        return True  # a real provider
    median = getattr(getattr(model, "errors", None), "latency_median", 0)
    return isinstance(median, (int, float)) and median > 0


@dataclass(eq=False)
class _Slot:
    """One step in flight: its position, its vote, and the guess its children start from."""

    step: int
    state: Any
    previous: Any
    task: asyncio.Task[StepResult] | None = None
    drawn: int = 0
    replied: int = 0
    """Of `drawn`, the samples whose reply (and usage) came back."""
    tokens_in: int = 0
    tokens_out: int = 0
    guess: Any = None
    guess_id: tuple[str, str] | None = None
    promoted: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: bool = False
    failures: dict[str, int] = field(default_factory=dict)


class _SlotSampler(ForwardsBatching):
    """The run's sampler as one slot sees it: counts the slot's samples, spots its guess."""

    __slots__ = ("inner", "on_raw", "slot")

    def __init__(self, inner: Any, slot: _Slot, on_raw: Callable[[_Slot, RawSample, int], Any]):
        self.inner = inner
        self.slot = slot
        self.on_raw = on_raw

    async def sample(self, step_input: Any, index: int) -> Any:
        slot = self.slot
        if slot.cancelled:
            raise _refused()
        slot.drawn += 1
        try:
            raw = await self.inner.sample(step_input, index)
        except Exception:
            slot.drawn -= 1  # a failed call is retried; it is not a sample
            raise
        await self.on_raw(slot, raw, index)
        return raw

    async def sample_many(self, step_input: Any, indices: list[int]) -> Any:
        slot = self.slot
        if slot.cancelled:
            raise _refused()
        slot.drawn += len(indices)
        try:
            raws = await self.inner.sample_many(step_input, indices)
        except Exception:
            slot.drawn -= len(indices)
            raise
        slot.drawn -= len(indices) - len(raws)
        for raw, index in zip(raws, indices, strict=False):
            await self.on_raw(slot, raw, index)
        return raws


class Speculator:
    """Runs the votes of a sequential task up to `depth` steps ahead, results in step order.

    Args:
        voter: the run's voter (its sampler may be the run's sample counter).
        step_input: the task's `step_input(state, previous, step)`.
        identity: an answer -> (dumped action, state hash): answers with equal
            identities lead to the same next step input.
        may_start: a step number -> whether a speculative step may start (not done,
            not past the run's last step, within the budgets).
        room: samples the run may still draw (None: no sample budget); speculation
            never starts a step whose whole budget would not fit.
        depth: steps started ahead of the oldest undecided step.
        semaphore: the run's limit of calls in flight, shared by every step.
    """

    def __init__(
        self,
        voter: Voter,
        *,
        step_input: Callable[[Any, Any, int], Any],
        identity: Callable[[Any], tuple[str, str]],
        may_start: Callable[[Any, int], bool],
        room: Callable[[], int] | None,
        depth: int,
        semaphore: asyncio.Semaphore | None,
    ) -> None:
        if room is not None and voter.policy.eager_replacement:
            # `_fits` reserves each slot's step budget, and an eager replacement thrown
            # away when a step proves stuck is outside it: under a run sample budget
            # draw round by round, so the run cannot pass it (tallies are the same).
            voter = copy.copy(voter)
            voter.policy = dataclasses.replace(voter.policy, eager_replacement=False)
        self.voter = voter
        self.step_input = step_input
        self.identity = identity
        self.may_start = may_start
        self.room = room
        self.depth = depth
        self.semaphore = semaphore
        self.chain: list[_Slot] = []
        self.wasted = 0
        """Samples drawn by cancelled speculative steps (never votes)."""
        self.wasted_tokens_in = 0
        self.wasted_tokens_out = 0
        self.wasted_unmetered = 0
        """Of `wasted`, samples cancelled mid-request: billed, their usage never seen."""
        self.undecided_failures: dict[str, int] = {}
        """Failed provider calls of steps the run never got a result of (cancelled, or in
        flight when the run stopped); the run takes them into its report."""
        self._taken = (0, 0, 0, 0)
        self._escalate = voter.escalate
        self._cancelled: list[asyncio.Task[StepResult]] = []

    # ------------------------------------------------------------------ slots

    def _start(self, step: int, state: Any, previous: Any) -> _Slot:
        slot = _Slot(step, state, previous)
        voter = self.voter
        escalate = None
        if self._escalate is not None:
            handler = self._escalate

            async def escalate_when_due(result: StepResult) -> Any:
                await slot.promoted.wait()  # never ask about a step that may be thrown away
                answer = handler(result)
                if inspect.isawaitable(answer):
                    answer = await answer
                return answer

            escalate = escalate_when_due
        slot_voter = voter.with_sampler(
            _SlotSampler(voter.sampler, slot, self._on_raw), escalate=escalate
        )
        slot.task = asyncio.ensure_future(
            slot_voter.vote(
                self.step_input(state, previous, step),
                step=step,
                semaphore=self.semaphore,
                failures=slot.failures,
            )
        )
        slot.task.add_done_callback(_retrieve)
        slot.task.add_done_callback(functools.partial(self._decided_task, slot))
        self.chain.append(slot)
        return slot

    async def _on_raw(self, slot: _Slot, raw: RawSample, index: int) -> None:
        slot.replied += 1
        if raw.input_tokens:
            slot.tokens_in += raw.input_tokens
        if raw.output_tokens:
            slot.tokens_out += raw.output_tokens
        if slot.guess_id is not None:
            return
        try:
            # A copy: checking may trim an oversized reply, and the vote checks the original.
            sample = await self.voter.check(copy.copy(raw), index)
            if sample.red_flag is not None:
                return
            guess_id = self.identity(sample.value)
        except Exception:  # noqa: BLE001 - an answer without a usable state is no guess
            return
        if slot.guess_id is None:
            slot.guess, slot.guess_id = sample.value, guess_id
            self._extend()

    def _decided_task(self, slot: _Slot, _task: asyncio.Task[StepResult]) -> None:
        self._decided(slot)

    def _decided(self, slot: _Slot) -> None:
        """A step finished voting (maybe ahead of time): re-aim its child at the winner."""
        task = slot.task
        if task is None or task.cancelled() or task.exception() is not None:
            return
        if slot not in self.chain:
            return
        result = task.result()
        try:
            winner_id = self.identity(result.winner)
        except Exception:  # noqa: BLE001 - the run reports it when the step comes due
            return
        if winner_id != slot.guess_id:
            self._discard_after(slot)
            slot.guess, slot.guess_id = result.winner, winner_id
            self._extend()

    def _extend(self) -> None:
        """Start children while the last step has a guess and the depth allows."""
        while len(self.chain) <= self.depth:
            last = self.chain[-1] if self.chain else None
            if last is None or last.guess_id is None:
                return
            answer = last.guess
            step = last.step + 1
            if not self.may_start(answer.next_state, step) or not self._fits():
                return
            self._start(step, answer.next_state, answer.action)

    def _fits(self) -> bool:
        if self.room is None:
            return True
        budget = self.voter.policy.budget
        reserved = sum(max(0, budget - s.drawn) for s in self.chain)
        return self.room() - reserved >= budget

    def _discard_after(self, slot: _Slot) -> None:
        at = self.chain.index(slot)
        for dropped in self.chain[at + 1 :]:
            self._cancel(dropped, wasted=True)
        del self.chain[at + 1 :]

    def _cancel(self, slot: _Slot, *, wasted: bool) -> None:
        slot.cancelled = True  # no new sample starts from here on (see `_SlotSampler`)
        task = slot.task
        if task is not None and not task.done():
            task.cancel()
            self._cancelled.append(task)
            # Counted once the vote has unwound: a sample in flight may still fail
            # (then it is no sample), and before Python 3.12 `wait_for` can swallow
            # the cancellation when its call completes at that moment, so the vote
            # goes on until its next draw is refused.
            task.add_done_callback(lambda _t: self._waste(slot, wasted))
        else:
            self._waste(slot, wasted)

    def _waste(self, slot: _Slot, wasted: bool) -> None:
        for kind, n in slot.failures.items():  # its result never reaches the run
            self.undecided_failures[kind] = self.undecided_failures.get(kind, 0) + n
        if not wasted:
            return  # the run's own sample counter counts the oldest step's samples
        self.wasted += slot.drawn
        self.wasted_unmetered += slot.drawn - slot.replied
        self.wasted_tokens_in += slot.tokens_in
        self.wasted_tokens_out += slot.tokens_out

    # ------------------------------------------------------------------ the run's side

    def take_waste(self) -> tuple[int, int, int, int]:
        """(samples, input tokens, output tokens, unmetered samples) wasted since the
        last call."""
        now = (self.wasted, self.wasted_tokens_in, self.wasted_tokens_out, self.wasted_unmetered)
        before, self._taken = self._taken, now
        return now[0] - before[0], now[1] - before[1], now[2] - before[2], now[3] - before[3]

    def has(self, step: int) -> bool:
        """Whether `step` is already in flight as the oldest undecided step."""
        return bool(self.chain) and self.chain[0].step == step

    async def decide(self, state: Any, previous: Any, step: int) -> StepResult:
        """The result of `step` from `(state, previous)`, the last decided position.

        Uses the step started speculatively when there is one (it was started from
        this very position: a mismatch was cancelled when its parent was decided).
        """
        if not self.has(step):
            self._discard_after_head()
            self._start(step, state, previous)
        head = self.chain[0]
        head.promoted.set()
        self._extend()
        assert head.task is not None
        try:
            result = await head.task
        except BaseException:
            self.close()
            raise
        self.chain.pop(0)
        try:
            winner_id = self.identity(result.winner)
        except Exception:  # noqa: BLE001 - the run itself reports a winner without a state
            winner_id = None
        if self.chain and (winner_id is None or winner_id != head.guess_id):
            self._discard_after_head()
        return result

    def _discard_after_head(self) -> None:
        for dropped in self.chain:
            self._cancel(dropped, wasted=True)
        self.chain.clear()

    def close(self) -> None:
        """Cancel everything in flight; steps beyond the oldest undecided one are wasted."""
        for at, slot in enumerate(self.chain):
            self._cancel(slot, wasted=at > 0)
        self.chain.clear()

    async def drain(self, timeout: float = 1.0) -> None:
        """Wait (bounded) for cancelled steps to unwind, so that no call outlives the run."""
        pending = [t for t in self._cancelled if not t.done()]
        self._cancelled.clear()
        if pending:
            await asyncio.wait(pending, timeout=timeout)


def _refused() -> asyncio.CancelledError:
    """What a cancelled step's next draw gets: its vote stops there, the call is never made."""
    return asyncio.CancelledError("speculative step cancelled")


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a step's error as seen: a thrown-away step's error concerns nobody."""
    if not task.cancelled():
        task.exception()
