"""The step loop of `run_task`: vote a step, buffer it, commit batches, stop cleanly.

Every way out of the loop (done, `max_steps`, a budget, no consensus, an error,
a cancellation) commits every decided step first; the step in flight, if any,
is redone on resume, and its samples are counted.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from .._util import compact_json
from ..costs import token_cost
from ..errors import BudgetExhaustedError, NoConsensusError
from ..records import StepResult
from ..runlog import Checkpoint, RunLog, RunMeta, StepRecord
from ..runlog.base import SampleReservations
from ..sampling import ForwardsBatching
from ..speculation import Speculator
from ..tasks.base import Task
from ..vote import Voter
from ._report import ProgressEvent, RunReport, StopReason, Totals, build_report
from ._task_io import task_codec


def _add_counts(into: dict[str, int], counts: Mapping[str, int]) -> None:
    """Add `counts` (by kind) into `into`."""
    for kind, n in counts.items():
        into[kind] = into.get(kind, 0) + n


class SampleCounter(ForwardsBatching):
    """Counts the samples asked of the provider, an undecided step's included.

    Used only under a sample budget, so that the budget stays exact when a run
    stops in the middle of a step (cancelled, budget, no consensus): those samples
    were paid for, and a resumed run must count them.
    """

    __slots__ = ("drawn", "inner", "reservations", "sample_now")

    def __init__(self, inner: Any, reservations: SampleReservations | None = None) -> None:
        self.inner = inner
        self.drawn = 0
        # Samples are reserved in the run log before they are asked for (exact across crashes).
        self.reservations = reservations
        # Keep the inner sampler's no-wait path (see `Voter`), counted too.
        now = getattr(inner, "sample_now", None)
        self.sample_now = self._sample_now if callable(now) else None

    def _sample_now(self, step_input: Any, index: int) -> Any:
        if self.reservations is not None:
            self.reservations.need(self.drawn + 1)
        raw = self.inner.sample_now(step_input, index)
        self.drawn += 1  # after the call: one that raised is redone through `sample`
        return raw

    async def sample(self, step_input: Any, index: int) -> Any:
        self.drawn += 1
        if self.reservations is not None:
            self.reservations.need(self.drawn)
        try:
            return await self.inner.sample(step_input, index)
        except Exception:
            self.drawn -= 1  # a failed call is retried; it is not a sample
            raise

    # Several samples per request (`n`): counted as asked, less what was not returned.
    async def sample_many(self, step_input: Any, indices: list[int]) -> Any:
        self.drawn += len(indices)
        if self.reservations is not None:
            self.reservations.need(self.drawn)
        try:
            raws = await self.inner.sample_many(step_input, indices)
        except Exception:
            self.drawn -= len(indices)
            raise
        self.drawn -= len(indices) - len(raws)
        return raws


async def run_loop(
    task: Task,
    voter: Voter,
    log: RunLog | None,
    meta: RunMeta | None,
    *,
    chunk_size: int,
    commit_interval: float,
    max_steps: int | None,
    limits: tuple[int | None, int | None, float | None],
    prices: tuple[float, float, float | None],
    flags: Mapping[str, str],
    semaphore: asyncio.Semaphore | None,
    on_step: Callable[[int, StepResult], Any] | None,
    on_progress: Callable[[ProgressEvent], Any] | None,
    speculate: int = 0,
) -> RunReport:
    """Decide steps from the last checkpoint on until the task is done or the run stops."""
    codec = task_codec(task)
    checkpoint = log.checkpoint() if log is not None else None
    if checkpoint is None:
        state, previous, step = task.initial_state(), None, 0
        totals = Totals()
    else:
        state = codec.load_state(checkpoint.state)
        previous = codec.load_action(checkpoint.previous_action)
        step = checkpoint.next_step
        totals = Totals.from_json(checkpoint.totals)
    if log is not None:
        # Samples reserved but never committed (a crash) were paid for: they count.
        spent = SampleReservations.resume_total(log, totals.samples)
        totals.uncommitted += spent - totals.samples
        totals.samples = spent
    totals.sessions += 1
    dump_state, dump_action, state_hash = codec.dump_state, codec.dump_action, codec.state_hash
    total_steps: int | None = getattr(task, "total_steps", None)
    started = time.perf_counter()
    wall_before = totals.wall_seconds
    first_step = step
    committed = step
    buffer: list[StepRecord] = []
    stopped: StopReason = "error"
    done = False
    budget_error: BudgetExhaustedError | None = None
    max_samples, max_tokens, max_cost = limits
    budgeted = any(limit is not None for limit in limits)
    stop_at = step + max_steps if max_steps is not None else None
    if total_steps is not None:
        # A task that knows its length is off course if it is not done by then (a wrong
        # step committed): stop rather than wander on, possibly for ever.
        stop_at = total_steps if stop_at is None else min(stop_at, total_steps)

    # An exact sample budget: count every sample asked for, and never let a step
    # start more samples than remain (see `SampleCounter`).
    counter: SampleCounter | None = None
    reservations: SampleReservations | None = None
    step_budget, k = voter.policy.budget, voter.policy.k
    if max_samples is not None or log is not None:
        # With a log, samples are reserved in it before they are asked for, so a crash
        # cannot hide them (`SampleReservations`); an instant sampler (`sample_now`, a
        # simulation) costs nothing and is reserved only under a sample budget.
        if log is not None and (
            max_samples is not None or getattr(voter.sampler, "sample_now", None) is None
        ):
            reservations = SampleReservations(log, totals.samples)
        counter = SampleCounter(voter.sampler, reservations)
        voter = voter.with_sampler(counter, escalate=voter.escalate)
    session_base = totals.samples

    # Hot-path locals: one million iterations make every attribute lookup count.
    vote = voter.vote
    step_input = task.step_input
    is_done = task.is_done
    append = buffer.append
    perf_counter = time.perf_counter
    samples_hist = totals.samples_histogram
    rounds_hist = totals.rounds_histogram
    red_flags_total = totals.red_flags
    decided_by = totals.decided_by
    failures_total = totals.provider_failures
    # The failed calls of the step being voted, kept here so that they count however the
    # step ends: decided, no consensus, a budget stop, an error, or an interruption.
    undecided: dict[str, int] = {}
    samples = totals.samples
    valid = totals.valid
    tokens_in = totals.input_tokens
    tokens_out = totals.output_tokens
    tokens_cached = totals.cached_input_tokens

    def sync_totals() -> None:
        totals.samples, totals.valid = samples, valid
        totals.input_tokens, totals.output_tokens = tokens_in, tokens_out
        totals.cached_input_tokens = tokens_cached

    def progress() -> None:
        if on_progress is not None:
            on_progress(
                ProgressEvent(
                    steps=step,
                    total_steps=total_steps,
                    session_steps=step - first_step,
                    committed=committed,
                    samples=samples,
                    valid_samples=valid,
                    red_flagged=samples - valid - totals.spares_unused,
                    elapsed=perf_counter() - started,
                    input_tokens=tokens_in,
                    output_tokens=tokens_out,
                )
            )

    def commit(final: bool = False) -> None:
        nonlocal committed
        if log is not None and (buffer or final):
            sync_totals()
            wall = wall_before + (perf_counter() - started)
            checkpoint = Checkpoint(
                next_step=step,
                state=dump_state(state),
                previous_action=None if previous is None else json.loads(dump_action(previous)),
                totals=totals.to_json(wall),
                done=done,
            )
            log.append(buffer, checkpoint)
        buffer.clear()
        committed = step

    def over_budget() -> BudgetExhaustedError | None:
        if max_samples is not None and samples >= max_samples:
            return BudgetExhaustedError("samples", max_samples, samples, flags["samples"], step)
        if max_tokens is not None and tokens_in + tokens_out >= max_tokens:
            return BudgetExhaustedError(
                "tokens", max_tokens, tokens_in + tokens_out, flags["tokens"], step
            )
        if max_cost is not None:
            cost = token_cost(tokens_in, tokens_out, tokens_cached, prices)
            if cost >= max_cost:
                return BudgetExhaustedError("cost", max_cost, cost, flags["cost"], step)
        return None

    spec: Speculator | None = None
    if speculate:
        spec = Speculator(
            voter,
            step_input=step_input,
            depth=speculate,
            semaphore=semaphore,
            identity=lambda answer: (dump_action(answer.action), state_hash(answer.next_state)),
            may_start=lambda next_state, at: (
                not is_done(next_state)
                and (stop_at is None or at < stop_at)
                and (not budgeted or over_budget() is None)
            ),
            room=(
                (lambda: max_samples - session_base - counter.drawn)  # type: ignore[union-attr]
                if max_samples is not None and counter is not None
                else None
            ),
        )

    def take_waste() -> None:
        # Cancelled speculative samples were paid for: they count in the totals and budgets.
        nonlocal samples, tokens_in, tokens_out
        if spec is not None:
            wasted, wasted_in, wasted_out, unmetered = spec.take_waste()
            samples += wasted
            tokens_in += wasted_in
            tokens_out += wasted_out
            totals.speculative_wasted += wasted
            totals.unmetered += unmetered
            _add_counts(failures_total, spec.undecided_failures)  # cancelled steps' calls
            spec.undecided_failures.clear()

    def bill_undecided(exc: NoConsensusError) -> None:
        # A step that did not decide was billed all the same.
        nonlocal samples, tokens_in, tokens_out, tokens_cached
        tokens_in += exc.input_tokens
        tokens_out += exc.output_tokens
        tokens_cached += exc.cached_input_tokens
        totals.unmetered += exc.unmetered_samples
        if counter is None:  # with a counter, `finally` counts the samples exactly
            drawn = exc.samples_drawn + exc.spares_unused
            samples += drawn
            totals.uncommitted += drawn

    progress()
    last_commit = perf_counter()
    try:
        while True:
            if spec is not None:
                take_waste()
            if is_done(state):
                done, stopped = True, "done"
                break
            if stop_at is not None and step >= stop_at:
                stopped = "max_steps"
                break
            if budgeted:
                budget_error = over_budget()
                if budget_error is not None:
                    stopped = "budget"
                    break
            if (
                max_samples is not None
                and max_samples - samples < step_budget
                and not (spec is not None and spec.has(step))  # started within the budget
            ):
                # Near the end of the sample budget: this step may draw only what is
                # left, and stops the run (not a plurality fallback) if that is not enough.
                remaining = max_samples - samples
                if remaining < k:
                    budget_error = BudgetExhaustedError(
                        "samples", max_samples, samples, flags["samples"], step
                    )
                    stopped = "budget"
                    break
                capped = copy.copy(voter)
                # No eager replacement: one thrown away (a stuck step) would come on
                # top of what is left, and this step may draw no more than that.
                capped.policy = replace(
                    voter.policy,
                    max_samples=remaining,
                    on_no_consensus="raise",
                    eager_replacement=False,
                )
                try:
                    result = await capped.vote(
                        step_input(state, previous, step),
                        step=step,
                        semaphore=semaphore,
                        failures=undecided,
                    )
                except NoConsensusError as exc:
                    bill_undecided(exc)
                    spent = session_base + counter.drawn if counter is not None else max_samples
                    budget_error = BudgetExhaustedError(
                        "samples", max_samples, spent, flags["samples"], step
                    )
                    stopped = "budget"
                    break
            elif spec is not None:
                result = await spec.decide(state, previous, step)
            else:
                result = await vote(
                    step_input(state, previous, step),
                    step=step,
                    semaphore=semaphore,
                    failures=undecided,
                )
            answer = result.winner
            previous, state = answer.action, answer.next_state

            drawn = result.samples_drawn
            votes = result.valid_votes
            samples += drawn
            if result.spares_unused:
                samples += result.spares_unused  # billed, never needed
                totals.spares_unused += result.spares_unused
                totals.unmetered += result.unmetered_samples
            valid += votes
            tokens_in += result.input_tokens
            tokens_out += result.output_tokens
            if result.cached_input_tokens:
                tokens_cached += result.cached_input_tokens
            samples_hist[drawn] = samples_hist.get(drawn, 0) + 1
            rounds = result.rounds
            rounds_hist[rounds] = rounds_hist.get(rounds, 0) + 1
            flagged = result.red_flags
            if flagged:
                for reason, n in flagged.items():
                    red_flags_total[reason] = red_flags_total.get(reason, 0) + n
                flags_text: str | None = compact_json(flagged)
            else:
                flags_text = None
            how = result.decided_by
            if how != "vote":
                decided_by[how] = decided_by.get(how, 0) + 1
            if result.provider_failures:
                _add_counts(failures_total, result.provider_failures)
                undecided = {}  # (this step's, when it was voted here) the next step's own
            tally = result.tally
            if len(tally) == 1 and how == "vote":
                tally_text = f"[{votes}]"
            else:
                winner_key = result.winner_key
                rest = sorted((n for k_, n in tally.items() if k_ != winner_key), reverse=True)
                tally_text = compact_json([tally.get(winner_key, 0), *rest])  # type: ignore[arg-type]
            append(
                StepRecord(
                    step,
                    dump_action(previous),
                    state_hash(state),
                    tally_text,
                    drawn,
                    votes,
                    flags_text,
                    rounds,
                    result.input_tokens,
                    result.output_tokens,
                    how,
                )
            )
            step += 1
            if on_step is not None:
                on_step(step - 1, result)
            if len(buffer) >= chunk_size or perf_counter() - last_commit >= commit_interval:
                commit()
                last_commit = perf_counter()
                progress()
            if not step & 63:
                # A sampler that answers at once (`sample_now`) never suspends the loop:
                # yield now and then so other tasks run and a cancellation (Ctrl-C) lands.
                await asyncio.sleep(0)
    except asyncio.CancelledError:
        stopped = "cancelled"
        raise
    except KeyboardInterrupt:
        stopped = "cancelled"
        raise
    except Exception as exc:
        stopped = "error"
        if isinstance(exc, NoConsensusError):
            stopped = "no_consensus"
            bill_undecided(exc)
        raise
    finally:
        # Whatever stopped the loop, every step decided so far is committed; the
        # step in flight (if any) was not decided and will be redone on resume.
        if spec is not None:
            spec.close()  # nothing speculative is ever committed
            await spec.drain()
            take_waste()
        _add_counts(failures_total, undecided)
        if counter is not None:
            # An undecided step's samples count too: drawn, never voted.
            totals.uncommitted += session_base + counter.drawn - samples
            samples = session_base + counter.drawn
        sync_totals()
        commit(final=True)
        if reservations is not None and counter is not None:
            reservations.release(counter.drawn)  # reserved for calls that failed: not spent
        progress()
    if budget_error is not None:
        raise budget_error
    session = perf_counter() - started
    return build_report(
        task.name,
        totals,
        run_id=meta.run_id if meta is not None else None,
        steps=step,
        session_steps=step - first_step,
        resumed_from=first_step,
        done=done,
        stopped=stopped,
        k=voter.policy.k,
        prices=prices,
        wall_seconds=wall_before + session,
        session_seconds=session,
        final_state=dump_state(state),
        speculate=speculate,
    )
