"""`vote_step`: decide one step by rounds of parallel samples and a k-ahead vote.

Each round draws, in parallel, only as many samples as could still decide the
step (k in the first round, then k minus the leader's margin). Red-flagged
samples never vote; the next round replaces them. A per-step budget caps the
samples drawn, and `on_no_consensus` says what happens when it is spent.

`Voter` compiles the options once so that long runs pay for them once, not
per step; `vote_step` is the one-call convenience.

Example:
    >>> import asyncio
    >>> from maker_graph import vote_step
    >>> result = asyncio.run(vote_step(lambda q: "4", "2+2?", k=2))
    >>> result.winner, result.samples_drawn
    ('4', 2)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ._rounds import EagerDraws, add_tokens, batches, draw_round
from ._sample_check import apply_key, check_raw, check_raw_async, has_async_key
from ._sync import run_to_end
from .actions import is_chat_message, tool_call_key
from .errors import ConfigurationError, NoConsensusError
from .records import RawSample, Sample, StepResult
from .red_flags import RedFlag, has_async
from .sampling import (
    ProviderRetry,
    Sampler,
    as_sampler,
    draw,
    message_text,
    use_variation,
    variation_levels,
)
from .voting import KeyFunction, canonical_key, samples_needed, top_two

__all__ = [
    "EscalationHandler",
    "NoConsensusAction",
    "VotePolicy",
    "Voter",
    "default_key",
    "default_parser",
    "vote_step",
    "vote_step_sync",
]

NoConsensusAction = Literal["raise", "plurality", "escalate"]
EscalationHandler = Callable[[StepResult], Any]
"""Called with the undecided step (`decided_by="escalation"`, winner None); returns the answer."""
Parser = Callable[[Any], Any]


@dataclass(frozen=True, kw_only=True)
class VotePolicy:
    """How one step is voted.

    Example:
        >>> VotePolicy(k=3, max_samples=30, on_no_consensus="plurality").k
        3
    """

    k: int = 3
    """Margin: an answer wins once it has k more votes than any other."""
    max_samples: int | None = None
    """Samples one step may draw, red-flagged ones included (None: 10 * k + 20)."""
    on_no_consensus: NoConsensusAction = "raise"
    """When the budget is spent: raise `NoConsensusError`, take the plurality answer, or
    call the escalation handler (a human or a stronger model)."""
    max_concurrency: int | None = None
    """Provider calls in flight at once for this voter (None: a whole round at once)."""
    retry: ProviderRetry = field(default_factory=ProviderRetry)
    """Retries of provider failures, which never count as votes or samples."""
    keep_samples: bool = True
    """Keep every `Sample` in the result (turn off for the leanest long runs)."""
    spare_samples: int = 0
    """Extra samples asked for in each request of `n` (a sampler with `sample_many`),
    kept for the same step's next round: a red-flagged or outvoted sample is then
    replaced without another request (another billed prompt, another call's latency).
    Spares a step never needs are billed and counted against budgets
    (`StepResult.spares_unused`); they never vote. 0 draws exactly what a round needs."""
    eager_replacement: bool = True
    """Replace a red-flagged sample as soon as it arrives instead of after its round's
    slowest sample, for samplers that draw one sample per request (with `n`, spares do
    it without a request). Tallies and winners are the same either way; only the wall
    time changes. A replacement started before the step proved stuck (see `stopped`)
    was drawn at the old temperature: it is thrown away, billed as an unused spare."""

    def __post_init__(self) -> None:
        # bool is an int in Python: k=True would silently mean k=1.
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1:
            raise ConfigurationError(f"k must be an integer >= 1, got {self.k!r}")
        if self.max_samples is not None and self.max_samples < self.k:
            raise ConfigurationError(
                f"max_samples ({self.max_samples}) must be >= k ({self.k}): "
                "fewer samples can never decide a step"
            )
        if self.on_no_consensus not in ("raise", "plurality", "escalate"):
            raise ConfigurationError(
                f"on_no_consensus must be 'raise', 'plurality' or 'escalate', "
                f"got {self.on_no_consensus!r}"
            )
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        if not isinstance(self.retry, ProviderRetry):
            # LangGraph's RetryPolicy (a NamedTuple) retries whole nodes; taken here it
            # would only fail later, at the first provider error.
            raise ConfigurationError(
                f"retry= takes a maker_graph ProviderRetry (per-sample provider retries), got "
                f"{type(self.retry).__module__}.{type(self.retry).__qualname__}; LangGraph's "
                "RetryPolicy retries a whole node: give it to add_node(retry_policy=...)"
            )
        if not isinstance(self.eager_replacement, bool):
            raise ConfigurationError(
                f"eager_replacement must be True or False, got {self.eager_replacement!r}"
            )
        if not isinstance(self.spare_samples, int) or self.spare_samples < 0:
            raise ConfigurationError(
                f"spare_samples must be an integer >= 0, got {self.spare_samples!r}"
            )

    @property
    def budget(self) -> int:
        return self.max_samples if self.max_samples is not None else 10 * self.k + 20


def default_parser(output: Any) -> Any:
    """The answer of a raw output: a chat message's text (stripped), anything else as is.

    A message that calls tools is its own answer (the winner is the `AIMessage`, tool
    calls included); the default key then votes on its action (`tool_call_key`).
    """
    if is_chat_message(output):
        if getattr(output, "tool_calls", None):
            return output
        return message_text(output).strip()
    error = getattr(output, "error", None)
    if error is not None and type(output).__name__ == "_StructuredFailure":
        raise ValueError(f"structured output did not validate: {error}")
    return output


def default_key(value: Any) -> Hashable:
    """The default vote key: a chat message's action (`tool_call_key`), else `canonical_key`."""
    if is_chat_message(value):
        return tool_call_key(value)
    return canonical_key(value)


def _red_flag_tuple(red_flags: Sequence[RedFlag] | RedFlag) -> tuple[RedFlag, ...]:
    """The red flags as a tuple; a single red flag is taken as one, a non-callable refused.

    A non-callable entry would not fail at build time: every sample would be a
    `red_flag_error`, and the step a NoConsensusError after its whole budget.
    """
    if callable(red_flags):
        return (red_flags,)
    if isinstance(red_flags, (str, bytes)) or not isinstance(red_flags, Iterable):
        raise ConfigurationError(
            f"red_flags= takes a list of red-flag functions, got {type(red_flags).__name__} "
            f"{red_flags!r}"
        )
    flags = tuple(red_flags)
    for i, flag in enumerate(flags):
        if not callable(flag):
            raise ConfigurationError(
                f"red_flags[{i}] is {type(flag).__name__} {flag!r}, not a function; a red flag "
                "is called with each sample (e.g. maker_graph.red_flags.max_output_tokens(750))"
            )
    return flags


class Voter:
    """A compiled voting configuration: sampler, parser, key, red flags and policy.

    Build it once and call `vote` per step; it holds no per-step state, so one
    voter may decide many steps concurrently.
    """

    def __init__(
        self,
        sampler: Sampler | Any,
        *,
        parser: Parser | None = None,
        key: KeyFunction | None = None,
        red_flags: Sequence[RedFlag] | RedFlag = (),
        policy: VotePolicy | None = None,
        escalate: EscalationHandler | None = None,
    ) -> None:
        self.sampler: Sampler = as_sampler(sampler)
        self.parser: Parser = parser or default_parser
        self.key: KeyFunction = key or default_key
        self.red_flags = _red_flag_tuple(red_flags)
        # A non-callable parser or key would not fail here but turn every sample into a
        # parse error, and the step into a NoConsensusError after its whole budget.
        for role, takes, fn in (
            ("parser", "the reply text", self.parser),
            ("key", "the parsed answer", self.key),
        ):
            if not callable(fn):
                raise ConfigurationError(
                    f"{role}= takes a function of {takes}, got {type(fn).__name__} {fn!r}"
                )
        self.policy = policy or VotePolicy()
        self.escalate = escalate
        if self.policy.on_no_consensus == "escalate" and escalate is None:
            raise ConfigurationError(
                "on_no_consensus='escalate' needs an escalation handler (escalate=...)"
            )
        # A sampler that can answer without waiting (a simulated model with no latency and
        # no failures) may offer `sample_now(step_input, index) -> RawSample`. Calling it
        # directly saves the Task per sample that `gather` costs: a third of a fast step.
        now = getattr(self.sampler, "sample_now", None)
        self._sample_now: Callable[[Any, int], RawSample] | None = now if callable(now) else None
        # Levels of variation (hotter, next model) a stuck step may ask the sampler for.
        self._variation_levels = variation_levels(self.sampler)
        self._async_flags = has_async(self.red_flags)
        self._async_parser = inspect.iscoroutinefunction(self.parser)
        # A key that waits on I/O (an embedding model) is awaited, never run on the loop.
        self._async_key = has_async_key(self.key)
        self._async_escalate = escalate is not None and inspect.iscoroutinefunction(escalate)

    def with_sampler(self, sampler: Sampler | Any, *, escalate: EscalationHandler | None) -> Voter:
        """The same vote (parser, key, red flags, policy) over another sampler, with the
        escalation given (pass `self.escalate` to keep it).

        For a wrapper that counts or watches this voter's samples: a new voter rather
        than a copy, because a voter picks its sampler's fast paths when it is built.
        """
        return Voter(
            sampler,
            parser=self.parser,
            key=self.key,
            red_flags=self.red_flags,
            policy=self.policy,
            escalate=escalate,
        )

    # ------------------------------------------------------------------ one sample

    async def check(self, raw: RawSample, index: int, round: int = 1) -> Sample:
        """Parse, key and red-flag one raw sample, exactly as `vote` does for each sample.

        For callers that draw samples themselves (the LangGraph voting sub-graph draws
        each sample in its own branch).

        Example:
            >>> import asyncio
            >>> voter = Voter(lambda q: "4", parser=int)
            >>> asyncio.run(voter.check(RawSample("4", "4"), 0)).value
            4
        """
        if self._async_flags or self._async_parser or self._async_key:
            return await check_raw_async(raw, index, round, self.parser, self.key, self.red_flags)
        return check_raw(raw, index, round, {}, self.parser, self.key, self.red_flags)

    # ------------------------------------------------------------------ one step

    async def vote(
        self,
        step_input: Any,
        *,
        step: Any = None,
        semaphore: asyncio.Semaphore | None = None,
        on_sample: Callable[[Sample], Any] | None = None,
        failures: dict[str, int] | None = None,
    ) -> StepResult:
        """Decide one step.

        Args:
            step_input: what the sampler gets for every sample of this step.
            step: an identifier recorded in the result and in errors.
            semaphore: a limit shared with other steps; defaults to the policy's own.
            on_sample: called with each checked sample as it is tallied (progress events).
            failures: where this step's failed provider calls are counted by kind (default:
                a new dict); the caller's dict keeps them if the vote is cancelled midway.

        Raises:
            NoConsensusError: the budget ran out and the policy says raise.
            SamplerError: a provider kept failing after every retry.
        """
        policy = self.policy
        k = policy.k
        budget = policy.budget
        if semaphore is None and policy.max_concurrency is not None:
            semaphore = asyncio.Semaphore(policy.max_concurrency)
        started = time.perf_counter()
        counts: dict[Hashable, int] = {}
        values: dict[Hashable, Any] = {}
        flags: dict[str, int] = {}
        failures = {} if failures is None else failures
        kept: list[Sample] = []
        cache: dict[str, tuple[Any, Any, str | None]] = {}
        drawn = valid = rounds = tokens_in = tokens_out = tokens_cached = 0
        sampler, retry = self.sampler, policy.retry
        slow_check = self._async_flags or self._async_parser or self._async_key
        parser, key_of, red_flags = self.parser, self.key, self.red_flags
        sample_now = self._sample_now if semaphore is None else None
        # Loss of hope: under raise/escalate a step stops once even k straight votes for
        # the leader could not decide it. Under plurality every further sample still
        # informs the fallback's choice, so the budget is drawn to the end.
        stop_hopeless = policy.on_no_consensus != "plurality"
        levels = self._variation_levels
        level = variations = 0
        stopped: str | None = None
        variation: Any = _NO_VARIATION
        repeats: set[tuple[Any, Any, str]] = set()
        stuck = False
        # Samples drawn ahead (spares of an `n` request), indices drawn, drawn + 1, ...
        ahead: list[RawSample] = []
        spares = policy.spare_samples if batches(sampler) else 0
        spares_unused = 0
        # One task per sample, so a red-flagged one is replaced at once (see `EagerDraws`);
        # pointless for an instant sampler, and requests of `n` have spares instead.
        eager: EagerDraws | None = None
        if policy.eager_replacement and self._sample_now is None and not batches(sampler):

            async def check_one(raw: RawSample, index: int, rnd: int) -> Sample:
                if slow_check:
                    return await check_raw_async(raw, index, rnd, parser, key_of, red_flags)
                return check_raw(raw, index, rnd, cache, parser, key_of, red_flags)

            eager = EagerDraws(
                sampler,
                step_input,
                check_one,
                retry=retry,
                failures=failures,
                semaphore=semaphore,
                k=k,
                budget=budget,
                stop_hopeless=stop_hopeless,
                levels=levels,
            )
        thrown: tuple[int, list[RawSample]] = (0, [])  # eager replacements thrown away

        try:
            while True:
                need = samples_needed(counts, k)
                if need == 0:
                    break
                left = budget - drawn
                n = min(need, left)
                if n <= 0:
                    break
                if need > left and stop_hopeless:
                    stopped = "hopeless"
                    break
                rounds += 1
                raws: list[Any] = []  # n >= 1 here: empty means "not drawn yet"
                checked: list[Sample] | None = None
                if eager is not None:
                    checked = await eager.round(drawn, n, rounds, level, variation, repeats)
                    raws = [sample.raw for sample in checked]
                elif ahead:  # spares an earlier request of this step drew ahead
                    raws, ahead = ahead[:n], ahead[n:]
                if len(raws) < n and (raws or spares):
                    # One request for the rest of the round and the next spares, which run
                    # ahead only as far as the step's budget.
                    with variation:
                        fresh, ahead = await draw_round(
                            sampler,
                            step_input,
                            drawn + len(raws),
                            n - len(raws),
                            retry,
                            failures,
                            semaphore,
                            spares=min(spares, budget - drawn - n),
                        )
                    raws = [*raws, *fresh]
                if not raws and sample_now is not None:
                    try:
                        raws = [sample_now(step_input, drawn + i) for i in range(n)]
                    except Exception:  # noqa: BLE001 - redo the round the usual way, with retries
                        raws = []
                if raws:
                    pass  # drawn ahead, by one request with spares, or at once by `sample_now`
                elif n == 1:
                    with variation:
                        raws = [
                            await draw(
                                sampler,
                                step_input,
                                drawn,
                                retry=retry,
                                failures=failures,
                                semaphore=semaphore,
                            )
                        ]
                else:
                    with variation:
                        raws, _ = await draw_round(
                            sampler, step_input, drawn, n, retry, failures, semaphore
                        )
                for i, raw in enumerate(raws):
                    if checked is not None:
                        sample = checked[i]
                    elif slow_check:
                        sample = await check_raw_async(
                            raw, drawn + i, rounds, parser, key_of, red_flags
                        )
                    else:
                        sample = check_raw(raw, drawn + i, rounds, cache, parser, key_of, red_flags)
                    if raw.input_tokens:
                        tokens_in += raw.input_tokens
                        if raw.cached_input_tokens:
                            tokens_cached += raw.cached_input_tokens
                    if raw.output_tokens:
                        tokens_out += raw.output_tokens
                    if sample.red_flag is None:
                        valid += 1
                        key_ = sample.key
                        if key_ in counts:
                            counts[key_] += 1
                        else:
                            counts[key_] = 1
                            values[key_] = sample.value
                    else:
                        flags[sample.red_flag] = flags.get(sample.red_flag, 0) + 1
                        if levels and raw.temperature is not None:
                            # The same flagged text at the same temperature and model: the
                            # model answers this step deterministically; redrawing it as is
                            # would spend the budget on copies.
                            signature = (raw.temperature, raw.model, raw.text)
                            if signature in repeats:
                                stuck = True
                            else:
                                repeats.add(signature)
                    if policy.keep_samples:
                        kept.append(sample)
                    if on_sample is not None:
                        on_sample(sample)
                drawn += n
                if stuck:
                    stuck = False
                    if level >= levels:
                        stopped = "stuck"  # hottest and rotated already: give up early
                        break
                    level += 1
                    variations += 1
                    variation = use_variation(level)
                    # Spares drawn at the old temperature or model would repeat the answer.
                    if ahead:
                        spares_unused += len(ahead)
                        tokens_in, tokens_out, tokens_cached = add_tokens(
                            ahead, tokens_in, tokens_out, tokens_cached
                        )
                        drawn += len(ahead)  # billed: they stay counted against the budget
                        ahead = []

        finally:
            if eager is not None:
                thrown = await eager.close()
        if ahead:  # drawn ahead, never needed
            spares_unused += len(ahead)
            tokens_in, tokens_out, tokens_cached = add_tokens(
                ahead, tokens_in, tokens_out, tokens_cached
            )
        unmetered = 0
        if thrown[0] or thrown[1]:
            # Billed, never voted, never in the step's budget (see `EagerDraws`); those
            # cancelled before their reply came back bill tokens nobody reported.
            spares_unused += thrown[0]
            unmetered = thrown[0] - len(thrown[1])
            tokens_in, tokens_out, tokens_cached = add_tokens(
                thrown[1], tokens_in, tokens_out, tokens_cached
            )
        result = StepResult(
            winner=None,
            winner_key=None,
            tally=counts,
            decided_by="vote",
            k=k,
            samples_drawn=drawn - spares_unused + len(ahead) + thrown[0],
            valid_votes=valid,
            red_flags=flags,
            rounds=rounds,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            provider_failures=failures,
            samples=kept,
            step=step,
            stopped=stopped,
            variations=variations,
            spares_unused=spares_unused,
            cached_input_tokens=tokens_cached,
            unmetered_samples=unmetered,
        )
        leader, first, second = top_two(counts)
        if counts and first - second >= k:
            # `counts` is not empty, so `leader` is a real key (even if the answer is None).
            result.winner_key, result.winner = leader, values[leader]
        else:
            await self._no_consensus(result, values)
        result.wall_seconds = time.perf_counter() - started
        return result

    async def _no_consensus(self, result: StepResult, values: dict[Hashable, Any]) -> None:
        action = self.policy.on_no_consensus
        if action == "plurality" and result.tally:
            key_ = max(result.tally, key=result.tally.__getitem__)  # first seen wins ties
            result.winner_key, result.winner = key_, values[key_]
            result.decided_by = "plurality"
            return
        if action == "escalate" and self.escalate is not None:
            result.decided_by = "escalation"
            answer = self.escalate(result)
            if inspect.isawaitable(answer):
                answer = await answer
            result.winner = answer
            try:
                result.winner_key = await apply_key(self.key, answer)
            except Exception:  # noqa: BLE001 - an unkeyable human answer is still the answer
                result.winner_key = None
            return
        raise NoConsensusError(
            result.tally,
            result.samples_drawn,
            self.policy.budget,
            red_flags=result.red_flags,
            step=result.step,
            k=self.policy.k,
            stopped=result.stopped,
            provider_failures=result.provider_failures,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cached_input_tokens=result.cached_input_tokens,
            spares_unused=result.spares_unused,
            unmetered_samples=result.unmetered_samples,
        )


_NO_VARIATION = contextlib.nullcontext()
"""The draws of a step that is not stuck run as configured (reusable, costs nothing)."""


async def vote_step(
    step: Sampler | Any,
    step_input: Any,
    *,
    k: int = 3,
    parser: Parser | None = None,
    key: KeyFunction | None = None,
    red_flags: Sequence[RedFlag] = (),
    max_samples: int | None = None,
    on_no_consensus: NoConsensusAction = "raise",
    escalate: EscalationHandler | None = None,
    policy: VotePolicy | None = None,
    step_id: Any = None,
) -> StepResult:
    """Decide one step by first-to-ahead-by-k voting.

    Args:
        step: a `Sampler`, chat model, Runnable or function of the step input.
        step_input: the step's input, given to every sample.
        k: the margin (ignored when `policy` is given).
        parser: raw output -> answer; raising red-flags the sample.
        key: answer -> vote key (default: `canonical_key`).
        red_flags: checks that discard samples.
        max_samples: the step's sample budget (ignored when `policy` is given).
        on_no_consensus: `"raise"`, `"plurality"` or `"escalate"` (ignored with `policy`).
        escalate: the escalation handler.
        policy: a full `VotePolicy`.
        step_id: an identifier recorded in the result and in errors.

    Returns:
        The `StepResult`.

    Example:
        >>> import asyncio
        >>> asyncio.run(vote_step(lambda q: "yes", "ok?", k=3)).winner
        'yes'
    """
    if policy is None:
        policy = VotePolicy(k=k, max_samples=max_samples, on_no_consensus=on_no_consensus)
    voter = Voter(
        step, parser=parser, key=key, red_flags=red_flags, policy=policy, escalate=escalate
    )
    return await voter.vote(step_input, step=step_id)


def vote_step_sync(step: Sampler | Any, step_input: Any, **options: Any) -> StepResult:
    """Synchronous `vote_step`; cannot be called from inside a running event loop."""
    return run_to_end(vote_step(step, step_input, **options), "vote_step_sync")
