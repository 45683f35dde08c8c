"""Samplers: where one raw answer for one step comes from.

A `Sampler` is "given the step's input and the sample index, produce one raw
answer" (`RawSample`). Adapters cover a LangChain chat model (with a prompt
builder, a temperature schedule and optional model rotation), any `Runnable`,
and a plain sync or async function. Provider failures are retried here with
backoff (`draw`) and never reach the vote as answers.

Example:
    >>> from maker_graph.sampling import as_sampler
    >>> sampler = as_sampler(lambda question: "42")
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime
import email.utils
import inspect
import json
import math
import random
import sys
from collections.abc import (
    Awaitable,
    Callable,
    Hashable,
    Mapping,
    MutableMapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ._util import is_async_callable
from .errors import ConfigurationError, SamplerError
from .records import RawSample

__all__ = [
    "ChatModelSampler",
    "ForwardsBatching",
    "FunctionSampler",
    "PromptBuilder",
    "ProviderRetry",
    "RunnableSampler",
    "Sampler",
    "TemperatureSchedule",
    "as_sampler",
    "classify_failure",
    "DEFAULT_SAMPLES_PER_REQUEST",
    "REHEAT_TEMPERATURES",
    "draw",
    "draw_many",
    "is_chat_model",
    "message_text",
    "raw_from_message",
    "retry_after",
    "use_variation",
    "variation_levels",
]


@runtime_checkable
class Sampler(Protocol):
    """Produces one raw answer for a step input; `index` is the sample's index in its step.

    Implementations must be safe to call concurrently and should be deterministic
    in `(step_input, index)` where they can (the simulated models are).
    """

    async def sample(self, step_input: Any, index: int) -> RawSample: ...


class ForwardsBatching:
    """Mixin for a sampler that wraps another one (its `inner`): offers the inner
    sampler's several-samples-per-request hooks as its own, so that wrapping never
    turns batching (`n`, see `ChatModelSampler.sample_many`) off.

    The wrapper still defines its own `sample_many` (what it does around the batch).
    """

    __slots__ = ()
    inner: Any

    @property
    def batch_limit(self) -> int:
        limit = getattr(self.inner, "batch_limit", 1)
        return limit if isinstance(limit, int) else 1

    def batch_key(self, index: int) -> Hashable | None:
        key = getattr(self.inner, "batch_key", None)
        return None if key is None else key(index)  # type: ignore[no-any-return]


@dataclass(frozen=True, kw_only=True)
class TemperatureSchedule:
    """Temperature per sample index: greedy first, then a little diversity.

    The first sample of a step is the model's best guess; later samples need some
    randomness or they repeat the first one's mistakes exactly.
    """

    first: float | None = 0.0
    """Temperature of sample 0 (None: leave the model's own setting)."""
    rest: float | None = 0.1
    """Temperature of every later sample (None: leave the model's own setting)."""

    def __call__(self, index: int) -> float | None:
        return self.first if index == 0 else self.rest


@dataclass(frozen=True, kw_only=True)
class ProviderRetry:
    """How provider failures are retried before a sample is given up on.

    Failures (exceptions, timeouts, rate limits) are never votes: the same sample
    index is drawn again after a backoff.

    This is the one retry layer: models built by `maker_graph.providers` have client
    retries off (`max_retries=0`), so one sample makes at most `max_attempts` provider
    calls (6 by default), each bounded by `timeout` (120 s by default), and every
    failure is counted. A model built elsewhere with client retries of its own makes
    up to `max_attempts * (1 + max_retries)` HTTP calls per sample. Authentication
    and permission errors (HTTP 401/403) are never retried: they raise
    `ConfigurationError` at once.
    """

    max_attempts: int = 6
    """Attempts per sample, the first included."""
    initial_delay: float = 0.05
    """Seconds before the first retry."""
    backoff: float = 2.0
    """Multiplier of the delay after each failure."""
    max_delay: float = 10.0
    """Upper bound of one delay (a rate limit's retry-after hint may exceed it, up to 60 s)."""
    jitter: float = 0.25
    """Random fraction added to each delay so parallel retries do not stampede."""
    timeout: float | None = 120.0
    """Seconds one provider call may take in total (connect, wait and every byte of the
    reply) before it is cancelled and counted as a `"timeout"` failure, then retried
    (None: no limit)."""
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    """Exception types that are retried; others propagate at once."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.timeout is not None and not 0 < self.timeout < math.inf:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {self.timeout}")

    def delay(self, attempt: int, exc: BaseException | None = None) -> float:
        hint = retry_after(exc) if exc is not None else None
        if hint is not None:
            return hint  # retry_after() already clamps it to [0, MAX_RETRY_AFTER]
        base = min(self.max_delay, self.initial_delay * self.backoff ** (attempt - 1))
        return base * (1 + self.jitter * random.random())


def __getattr__(name: str) -> Any:
    # The old name, kept for code written against it; it read as LangGraph's node retry.
    if name == "RetryPolicy":
        import warnings

        warnings.warn(
            "maker_graph RetryPolicy is now ProviderRetry (LangGraph's RetryPolicy retries "
            "whole nodes; this one retries a sample's provider calls)",
            DeprecationWarning,
            stacklevel=2,
        )
        return ProviderRetry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


MAX_RETRY_AFTER = 60.0
"""Longest wait a provider's retry-after hint can impose, in seconds."""


def _hint_seconds(value: Any, scale: float = 1.0) -> float | None:
    """A finite, non-negative hint in seconds clamped to `MAX_RETRY_AFTER`, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = float(value) * scale
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text) * scale
        except ValueError:
            if scale != 1.0:
                return None
            try:  # an HTTP-date, e.g. "Wed, 21 Oct 2015 07:28:00 GMT"
                when = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=datetime.timezone.utc)
            seconds = (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
            seconds = max(seconds, 0.0)
    else:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER)


def retry_after(exc: BaseException) -> float | None:
    """A rate-limit error's retry-after hint in seconds, if it carries a usable one.

    Read from a `retry_after`/`retry_after_seconds` attribute or the response's
    `retry-after-ms` / `retry-after` header (seconds or an HTTP-date). NaN, infinite
    and negative hints are ignored (the policy's own backoff applies); a hint longer
    than `MAX_RETRY_AFTER` (60 s) is cut to it.

    Example:
        >>> class Limited(Exception):
        ...     retry_after = float("nan")
        >>> retry_after(Limited()) is None
        True
    """
    for attr in ("retry_after", "retry_after_seconds"):
        value = getattr(exc, attr, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return _hint_seconds(value)
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is not None:
        try:
            ms = headers.get("retry-after-ms")
            plain = headers.get("retry-after")
        except Exception:
            return None
        if ms is not None:
            hint = _hint_seconds(ms, 0.001)
            if hint is not None:
                return hint
        if plain is not None:
            return _hint_seconds(plain)
    return None


def _status(exc: BaseException) -> Any:
    return getattr(exc, "status_code", None) or getattr(
        getattr(exc, "response", None), "status_code", None
    )


def _auth_failure(exc: BaseException) -> str | None:
    """Why `exc` is an authentication/permission error (never worth a retry), else None."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    status = _status(exc)
    if "AuthenticationError" in names or status == 401:
        return "authentication failed (HTTP 401): check the API key"
    if "PermissionDeniedError" in names or status == 403:
        return "permission denied (HTTP 403): the key may not use this model or endpoint"
    return None


def _retryable(exc: BaseException) -> bool:
    """Provider failures are retried; a setup error or LangGraph control flow never is.

    A `ConfigurationError` would fail the same way every time, and LangGraph's
    `GraphInterrupt`/`ParentCommand` (subclasses of `GraphBubbleUp`) are how `interrupt()`
    and `Command` travel up the stack: retrying them would swallow the pause. The
    class is matched by name so this layer does not import LangGraph.
    """
    if isinstance(exc, (ConfigurationError, asyncio.CancelledError)):
        return False
    return not any(cls.__name__ == "GraphBubbleUp" for cls in type(exc).__mro__)


def classify_failure(exc: BaseException) -> str:
    """Sort a provider failure into `"timeout"`, `"rate_limit"` or `"exception"`."""
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "timeout"
    name = type(exc).__name__.lower()
    if "timeout" in name:
        return "timeout"
    status = _status(exc)
    if "ratelimit" in name or status == 429:
        return "rate_limit"
    return "exception"


async def draw(
    sampler: Sampler,
    step_input: Any,
    index: int,
    *,
    retry: ProviderRetry,
    failures: MutableMapping[str, int],
    semaphore: asyncio.Semaphore | None = None,
) -> RawSample:
    """Draw one sample, retrying provider failures; each failure is counted in `failures`.

    Raises:
        SamplerError: every attempt failed.
    """
    raw: RawSample = await _with_retries(
        lambda: sampler.sample(step_input, index),
        f"sample {index}",
        retry=retry,
        failures=failures,
        semaphore=semaphore,
    )
    return raw


async def draw_many(
    sampler: Any,
    step_input: Any,
    indices: Sequence[int],
    *,
    retry: ProviderRetry,
    failures: MutableMapping[str, int],
    semaphore: asyncio.Semaphore | None = None,
) -> list[RawSample]:
    """Draw the samples `indices` in one provider request (`sampler.sample_many`), with retries.

    The request is one call: it holds one concurrency slot, one timeout and one
    retry budget. It may return fewer samples than asked (a server that ignores `n`);
    the caller draws the rest the ordinary way.

    Raises:
        SamplerError: every attempt failed.
    """
    label = f"samples {indices[0]}..{indices[-1]}"
    raws: list[RawSample] = await _with_retries(
        lambda: sampler.sample_many(step_input, list(indices)),
        label,
        retry=retry,
        failures=failures,
        semaphore=semaphore,
    )
    return raws[: len(indices)]


async def _with_retries(
    make_call: Callable[[], Awaitable[Any]],
    label: str,
    *,
    retry: ProviderRetry,
    failures: MutableMapping[str, int],
    semaphore: asyncio.Semaphore | None,
) -> Any:
    last: BaseException | None = None
    for attempt in range(1, retry.max_attempts + 1):
        try:
            if semaphore is None:
                return await _attempt(make_call, retry.timeout)
            async with semaphore:
                return await _attempt(make_call, retry.timeout)
        except retry.retry_on as exc:
            if not _retryable(exc):
                raise
            cause = _auth_failure(exc)
            if cause is not None:
                failures["exception"] = failures.get("exception", 0) + 1
                raise ConfigurationError(
                    f"{label}: the provider refused the call, {cause} "
                    f"({type(exc).__name__}: {exc}); not retried"
                ) from exc
            kind = classify_failure(exc)
            failures[kind] = failures.get(kind, 0) + 1
            last = exc
            if attempt < retry.max_attempts:
                await asyncio.sleep(retry.delay(attempt, exc))
    raise SamplerError(
        f"{label} failed {retry.max_attempts} times; last error: {last!r}. "
        "Check the provider, or raise ProviderRetry.max_attempts.",
        failures,
        last,
    )


async def _attempt(make_call: Callable[[], Awaitable[Any]], timeout: float | None) -> Any:
    # The call is created only once its concurrency slot is held: a draw cancelled while
    # it waits for the slot leaves no never-awaited coroutine behind.
    call = make_call()
    if timeout is None:
        return await call
    return await asyncio.wait_for(call, timeout)


# --------------------------------------------------------------------------- variation


REHEAT_TEMPERATURES = (0.5, 1.0)
"""Temperatures of variation levels 1 and 2: a step whose red-flagged answer comes back
identical at one temperature is redrawn hotter (and from the next model of a rotation)."""

_VARIATION: contextvars.ContextVar[int] = contextvars.ContextVar("maker_variation", default=0)


class _Variation:
    """A reusable, re-entrant context manager that sets the variation level."""

    __slots__ = ("level", "tokens")

    def __init__(self, level: int) -> None:
        self.level = level
        self.tokens: list[contextvars.Token[int]] = []

    def __enter__(self) -> None:
        self.tokens.append(_VARIATION.set(self.level))

    def __exit__(self, *exc: object) -> None:
        _VARIATION.reset(self.tokens.pop())


def use_variation(level: int) -> contextlib.AbstractContextManager[None]:
    """Draw samples started inside this block at variation `level` (0: as configured).

    The vote raises the level of a step whose sampler is stuck: a red-flagged answer
    that came back identical at the same temperature would come back again. A
    `ChatModelSampler` then samples at `REHEAT_TEMPERATURES[level - 1]` (or its own
    temperature if hotter) and from the model `level` places on in its rotation.
    The level is a context variable, so it reaches the sampler through any wrapper
    and holds for the draws of one step only.

    Example:
        >>> with use_variation(1):
        ...     pass
    """
    if not isinstance(level, int) or level < 0:
        raise ConfigurationError(f"variation level must be an integer >= 0, got {level!r}")
    return _Variation(level)


def variation_levels(sampler: Any) -> int:
    """How many levels of variation `sampler` (or the sampler it wraps) offers; 0: none.

    Wrappers are followed through their `inner` attribute.

    Example:
        >>> variation_levels(as_sampler(lambda q: "4"))
        0
    """
    seen = 0
    while sampler is not None and seen < 32:
        levels = getattr(sampler, "variation_levels", None)
        if isinstance(levels, int):
            return levels
        sampler, seen = getattr(sampler, "inner", None), seen + 1
    return 0


# --------------------------------------------------------------------------- adapters


def message_text(message: Any) -> str:
    """The text of a chat message (string content, text blocks, or tool-call arguments)."""
    content = getattr(message, "content", message)
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "".join(
            part if isinstance(part, str) else str(part.get("text", ""))
            for part in content
            if isinstance(part, (str, dict))
        )
    else:
        text = str(content)
    tool_calls = getattr(message, "tool_calls", None)
    if not text and tool_calls:
        # The tool name is half of the action: refund(A1) and cancel(A1) must not read alike.
        text = json.dumps(
            [{"name": c.get("name"), "args": c.get("args", {})} for c in tool_calls],
            sort_keys=True,
        )
    return text


def raw_from_message(message: Any, temperature: float | None = None) -> RawSample:
    """Wrap a chat model's `AIMessage` with its usage, finish reason and model name."""
    usage = getattr(message, "usage_metadata", None) or {}
    meta = getattr(message, "response_metadata", None) or {}
    return RawSample(
        output=message,
        text=message_text(message),
        input_tokens=usage.get("input_tokens"),
        output_tokens=usage.get("output_tokens"),
        finish_reason=meta.get("finish_reason") or meta.get("stop_reason"),
        model=meta.get("model_name") or meta.get("model"),
        temperature=temperature,
        cached_input_tokens=_cache_read(usage),
    )


def _cache_read(usage: Mapping[str, Any]) -> int | None:
    """Prompt tokens a provider read from its cache (LangChain's `cache_read`), if said."""
    details = usage.get("input_token_details")
    read = details.get("cache_read") if isinstance(details, Mapping) else None
    return read if isinstance(read, int) and read >= 0 else None


def _raw_from_any(value: Any) -> RawSample:
    if isinstance(value, RawSample):
        return value
    if hasattr(value, "content") and hasattr(value, "response_metadata"):
        return raw_from_message(value)
    text = value if isinstance(value, str) else repr(value)
    return RawSample(output=value, text=text)


def _accepts_index(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


class FunctionSampler:
    """Adapts `fn(step_input)` or `fn(step_input, index)`, sync or async.

    A sync function runs in a worker thread so it never blocks the event loop
    (pass `in_thread=False` for cheap pure functions).
    """

    def __init__(self, fn: Callable[..., Any], *, in_thread: bool = True) -> None:
        self.fn = fn
        self.with_index = _accepts_index(fn)
        self.is_async = is_async_callable(fn)
        self.in_thread = in_thread

    async def sample(self, step_input: Any, index: int) -> RawSample:
        args = (step_input, index) if self.with_index else (step_input,)
        if self.is_async:
            value = await self.fn(*args)
        elif self.in_thread:
            value = await asyncio.to_thread(self.fn, *args)
        else:
            value = self.fn(*args)
        if inspect.isawaitable(value):
            value = await value
        return _raw_from_any(value)


class RunnableSampler:
    """Adapts any LangChain `Runnable`: `ainvoke(step_input)` per sample."""

    def __init__(self, runnable: Any, *, config: Mapping[str, Any] | None = None) -> None:
        self.runnable = runnable
        self.config = dict(config or {})

    async def sample(self, step_input: Any, index: int) -> RawSample:
        config = _sample_config(self.config, index)
        return _raw_from_any(await self.runnable.ainvoke(step_input, config=config))


PromptBuilder = Callable[[Any], Any]
"""Builds a chat model's input (messages, a string, or a PromptValue) from the step input.

A builder with a parameter named `index` is also given the sample's index in its step
(`builder(step_input, index=i)`), so it can word sample i differently."""


def _takes_index(builder: Any) -> bool:
    """True when `builder` (not a Runnable) declares a parameter named `index`."""
    if hasattr(builder, "ainvoke"):
        return False
    try:
        param = inspect.signature(builder).parameters.get("index")
    except (TypeError, ValueError):
        return False
    return param is not None and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)


def _prompt_list(prompt: Any) -> list[Any]:
    """The prompt builders of a sampler: one, or a list of paraphrases (sample i: i mod n)."""
    if not isinstance(prompt, (list, tuple)):
        return [prompt]
    if not prompt:
        raise ConfigurationError("prompt=[...] (paraphrases) needs at least one prompt")
    for i, builder in enumerate(prompt):
        if builder is None or not (callable(builder) or hasattr(builder, "ainvoke")):
            raise ConfigurationError(
                f"prompt=[...]: entry {i} is a {type(builder).__name__}; each paraphrase is a "
                "function of the step input or a ChatPromptTemplate (any Runnable)"
            )
    return list(prompt)


class ChatModelSampler:
    """Samples a LangChain chat model (or a rotation of several) with a temperature schedule.

    Args:
        models: one `BaseChatModel` or several; sample `i` uses `models[i % len(models)]`,
            so different models answer the same step and their errors decorrelate.
        prompt: builds the model input from the step input: a function, a
            `ChatPromptTemplate` (any Runnable, invoked with the step input), or None to
            pass the step input through unchanged. A function with a parameter named
            `index` also receives the sample index. A list of them is prompt rotation
            (paraphrases): sample `i` uses `prompt[i % len(prompt)]`, so a model stuck on
            one wording of a step is asked another; a stuck step's redraw (see
            `use_variation`) moves on to the next wording as it does to the next model.
            Samples of different wordings never share one `n` request.
        temperature: the schedule per sample index (default: 0 first, then 0.1).
        max_tokens: caps each answer's output tokens, so a runaway sample costs little.
        structured: a schema for `with_structured_output`; the sample's output is then
            the parsed object (and its text its JSON).
        samples_per_request: most samples drawn in one provider request, where the model
            accepts OpenAI's `n` (`ChatOpenAI` and its subclasses, not streaming, not
            structured): the samples of a round that share a temperature and a model
            are one request, so the prompt is billed once. None: up to
            `DEFAULT_SAMPLES_PER_REQUEST`; 1: one request per sample.

    Example:
        >>> from maker_graph.testing import SimulatedChatModel
        >>> sampler = ChatModelSampler(SimulatedChatModel(oracle=lambda msgs: "yes"))
    """

    def __init__(
        self,
        models: Any | Sequence[Any],
        prompt: PromptBuilder | Callable[..., Any] | Sequence[Any] | Any | None = None,
        *,
        temperature: TemperatureSchedule | Callable[[int], float | None] | None = None,
        max_tokens: int | None = None,
        structured: Any = None,
        samples_per_request: int | None = None,
    ) -> None:
        self.models = list(models) if isinstance(models, (list, tuple)) else [models]
        if not self.models:
            raise ConfigurationError("ChatModelSampler needs at least one model")
        if samples_per_request is not None and (
            not isinstance(samples_per_request, int) or samples_per_request < 1
        ):
            raise ConfigurationError(
                f"samples_per_request must be an integer >= 1, got {samples_per_request!r}"
            )
        wanted = samples_per_request or DEFAULT_SAMPLES_PER_REQUEST
        # Per model slot: (the model that takes `n`, the kwargs bound around it), or None.
        self._n_models = [
            None if structured is not None or wanted == 1 else _accepts_n(m) for m in self.models
        ]
        self.batch_limit = wanted if any(m is not None for m in self._n_models) else 1
        """Most samples one request may carry (1: this sampler never batches)."""
        self.prompt = prompt
        self._prompts = _prompt_list(prompt)
        # Per prompt slot: whether the builder wants the sample index (then no two
        # samples are known to share an input, and none are batched).
        self._prompt_indexed = [_takes_index(p) for p in self._prompts]
        self.temperature = temperature if temperature is not None else TemperatureSchedule()
        self.max_tokens = max_tokens
        self.structured = structured
        # Bound runnables per (model, temperature), built once: binding per call is costly.
        self._bound: dict[tuple[int, float | None], Any] = {}

    variation_levels = len(REHEAT_TEMPERATURES)
    """Levels of variation a stuck step may ask for (see `use_variation`)."""

    def _slot_temperature(self, index: int) -> tuple[int, float | None]:
        """The model slot and temperature of sample `index` at the current variation."""
        level = _VARIATION.get()
        temp = self.temperature(index)
        if level <= 0:
            return index % len(self.models), temp
        # Varied: hotter than the schedule, and the next model of a rotation.
        floor = REHEAT_TEMPERATURES[min(level, len(REHEAT_TEMPERATURES)) - 1]
        return (index + level) % len(self.models), max(temp or 0.0, floor)

    def _prompt_slot(self, index: int) -> int:
        """Which prompt (paraphrase) sample `index` uses at the current variation."""
        level = max(_VARIATION.get(), 0)
        return (index + level) % len(self._prompts)

    def _runnable(self, index: int) -> tuple[Any, float | None]:
        slot, temp = self._slot_temperature(index)
        cache_key = (slot, temp)
        bound = self._bound.get(cache_key)
        if bound is None:
            model = self.models[slot]
            kwargs: dict[str, Any] = {}
            if temp is not None:
                kwargs["temperature"] = temp
            if self.max_tokens is not None:
                kwargs["max_tokens"] = self.max_tokens
            bound = model.bind(**kwargs) if kwargs else model  # type: ignore[union-attr]
            if self.structured is not None:
                bound = _structured(model, self.structured, kwargs)
            self._bound[cache_key] = bound
        return bound, temp

    async def _input(self, step_input: Any, index: int) -> Any:
        slot = self._prompt_slot(index)
        builder = self._prompts[slot]
        if builder is None:
            return step_input
        if hasattr(builder, "ainvoke"):
            return await builder.ainvoke(step_input)
        value = (
            builder(step_input, index=index) if self._prompt_indexed[slot] else builder(step_input)
        )
        return await value if inspect.isawaitable(value) else value

    async def sample(self, step_input: Any, index: int) -> RawSample:
        runnable, temp = self._runnable(index)
        model_input = await self._input(step_input, index)
        out = await runnable.ainvoke(model_input, config=_sample_config({}, index))
        if self.structured is not None:
            raw = (
                raw_from_message(out["raw"], temp)
                if out.get("raw") is not None
                else RawSample(None)
            )
            parsed = out.get("parsed")
            if out.get("parsing_error") is not None or parsed is None:
                raw.output = _StructuredFailure(out.get("parsing_error"), raw.text)
            else:
                raw.output = parsed
            return raw
        return raw_from_message(out, temp)

    # ------------------------------------------------------------------ n per request

    def batch_key(self, index: int) -> Hashable | None:
        """Samples with equal keys may share one request (same model, temperature and
        prompt); None when sample `index` cannot be batched."""
        if self.batch_limit == 1:
            return None
        slot, temp = self._slot_temperature(index)
        if self._n_models[slot] is None:
            return None
        prompt_slot = self._prompt_slot(index)
        if self._prompt_indexed[prompt_slot]:
            return None  # its input depends on the index: one request per sample
        return (slot, temp, prompt_slot)

    async def sample_many(self, step_input: Any, indices: Sequence[int]) -> list[RawSample]:
        """Samples `indices` (one `batch_key`) from one request with `n=len(indices)`.

        Returns as many samples as the server sent choices (never more than asked,
        maybe fewer). The request's usage is split so that the samples add up to
        what was billed: its prompt tokens go to the first sample (the others were
        billed no prompt), its completion tokens are shared in proportion to each
        choice's own token count (exact when the server counts as tiktoken does).
        """
        first = indices[0]
        slot, temp = self._slot_temperature(first)
        accepted = self._n_models[slot]
        if accepted is None or len(indices) == 1 or self._prompt_indexed[self._prompt_slot(first)]:
            return [await self.sample(step_input, i) for i in indices]
        model, bound_kwargs = accepted
        kwargs: dict[str, Any] = dict(bound_kwargs)
        if temp is not None:
            kwargs["temperature"] = temp
        if self.max_tokens is not None:
            kwargs["max_tokens"] = self.max_tokens
        messages = _to_messages(await self._input(step_input, first))
        from langchain_core.runnables.config import ensure_config

        config = ensure_config(_sample_config({}, first))  # type: ignore[arg-type]  # inherits the caller's callbacks
        config["metadata"]["maker_sample_indices"] = list(indices)
        result = await model.agenerate(
            [messages],
            callbacks=config.get("callbacks"),
            tags=config.get("tags"),
            metadata=config.get("metadata"),
            n=len(indices),
            stream=False,  # n > 1 is refused by streaming, and usage comes whole
            **kwargs,
        )
        generations = result.generations[0][: len(indices)]
        llm_output = result.llm_output or {}
        return _split_usage([g.message for g in generations], temp, llm_output.get("model_name"))


DEFAULT_SAMPLES_PER_REQUEST = 8
"""Most samples one request carries by default where the model accepts `n`.

A round draws at most k samples (then k minus the leader's margin), so with k <= 8
every round of one temperature is one request.
"""


def _accepts_n(model: Any) -> tuple[Any, dict[str, Any]] | None:
    """(the chat model, the kwargs bound around it) when it takes OpenAI's `n`, else None.

    `ChatOpenAI` (and Azure's, any `BaseChatOpenAI`) sends `n` to the chat-completions
    API and returns one generation per choice. Not when it streams (`n > 1` is refused
    there), uses the Responses API (no `n`), or fixes `n` itself.
    """
    kwargs: dict[str, Any] = {}
    try:
        from langchain_core.runnables import RunnableBinding
    except ImportError:  # pragma: no cover - langchain-core is a dependency
        return None
    while isinstance(model, RunnableBinding):
        if model.config:  # per-call config of its own: keep the ordinary path
            return None
        kwargs = {**model.kwargs, **kwargs}
        model = model.bound
    if "langchain_openai" not in sys.modules:
        return None  # a ChatOpenAI exists only once its module is loaded; importing costs
    try:
        from langchain_openai.chat_models.base import BaseChatOpenAI
    except ImportError:  # pragma: no cover - loaded above
        return None
    if not isinstance(model, BaseChatOpenAI):
        return None
    if getattr(model, "streaming", False) or getattr(model, "use_responses_api", None):
        return None
    if getattr(model, "n", None) not in (None, 1) or "n" in kwargs or "stream" in kwargs:
        return None
    return model, kwargs


def _to_messages(model_input: Any) -> list[Any]:
    """The message list of a chat model input (a string, a PromptValue or messages)."""
    from langchain_core.messages import HumanMessage, convert_to_messages

    if hasattr(model_input, "to_messages"):
        return list(model_input.to_messages())
    if isinstance(model_input, str):
        return [HumanMessage(model_input)]
    return list(convert_to_messages(model_input))


def _apportion(total: int, weights: Sequence[int]) -> list[int]:
    """`total` split in proportion to `weights` (largest remainders), summing to `total`.

    Example:
        >>> _apportion(10, [1, 1, 1]), _apportion(7, [4, 3])
        ([4, 3, 3], [4, 3])
    """
    n = len(weights)
    weight_sum = sum(weights)
    if weight_sum <= 0:
        weights, weight_sum = [1] * n, n
    shares = [total * w // weight_sum for w in weights]
    order = sorted(range(n), key=lambda i: (-(total * weights[i] % weight_sum), i))
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares


def _split_usage(
    messages: Sequence[Any], temperature: float | None, model: str | None
) -> list[RawSample]:
    """One `RawSample` per choice of one request, its billed usage split between them.

    Every choice's message carries the request's whole usage; each gets its share
    instead (in `usage_metadata` too), so summing samples gives what was billed.
    """
    from .tokens import count_tokens_cached

    raws = [raw_from_message(m, temperature) for m in messages]
    usage = getattr(messages[0], "usage_metadata", None) if messages else None
    if usage:
        total_in = int(usage.get("input_tokens") or 0)
        total_out = int(usage.get("output_tokens") or 0)
        # count_tokens_cached estimates (never encodes) a text over MAX_COUNT_CHARS.
        shares = _apportion(total_out, [count_tokens_cached(r.text) for r in raws])
        for i, (message, raw) in enumerate(zip(messages, raws, strict=True)):
            prompt = total_in if i == 0 else 0
            raw.input_tokens, raw.output_tokens = prompt, shares[i]
            if i:  # the prompt, cached part included, is the first choice's
                raw.cached_input_tokens = None
            split: dict[str, Any] = {
                "input_tokens": prompt,
                "output_tokens": shares[i],
                "total_tokens": prompt + shares[i],
            }
            if i == 0 and usage.get("input_token_details"):
                split["input_token_details"] = usage["input_token_details"]
            message.usage_metadata = split
    else:
        for raw in raws[1:]:
            raw.input_tokens = 0  # the prompt was sent (and billed) once
    for raw in raws:
        raw.model = raw.model or model
    return raws


@dataclass(frozen=True)
class _StructuredFailure:
    """A structured-output answer that did not validate; the default parser flags it."""

    error: Any
    text: str = field(default="")


def _structured(model: Any, schema: Any, kwargs: Mapping[str, Any]) -> Any:
    target = model.bind(**kwargs) if kwargs else model
    try:
        return target.with_structured_output(schema, include_raw=True)
    except (AttributeError, NotImplementedError):
        return model.with_structured_output(schema, include_raw=True)


def _sample_config(base: Mapping[str, Any], index: int) -> dict[str, Any]:
    # The sample index travels in run metadata: simulated models key their
    # randomness on it, and traces show which sample of a step a call was.
    config = dict(base)
    config["metadata"] = {**dict(base.get("metadata", {})), "maker_sample_index": index}
    return config


def as_sampler(step: Any, **chat_options: Any) -> Sampler:
    """Turn a chat model, Runnable, function or Sampler into a `Sampler`.

    `chat_options` go to `ChatModelSampler` when `step` is a chat model.
    """
    if isinstance(step, Sampler) and not is_chat_model(step):
        return step
    if is_chat_model(step) or (
        isinstance(step, (list, tuple)) and step and all(is_chat_model(m) for m in step)
    ):
        return ChatModelSampler(step, **chat_options)
    if chat_options:
        raise ConfigurationError(
            f"options {sorted(chat_options)} only apply to chat models, not {type(step).__name__}"
        )
    if hasattr(step, "ainvoke"):
        return RunnableSampler(step)
    if callable(step):
        return FunctionSampler(step)
    raise ConfigurationError(
        f"cannot sample from {type(step).__name__}: pass a chat model, a Runnable, "
        "a function of the step input, or a Sampler"
    )


def is_chat_model(obj: Any) -> bool:
    """True for a chat model in any form: a `BaseChatModel`, one bound by `bind_tools`,
    `bind` or `with_config`, or an `init_chat_model` model; every surface asks this."""
    try:
        from langchain_core.language_models import BaseChatModel
        from langchain_core.runnables import RunnableBinding
    except ImportError:  # pragma: no cover - langchain-core is a dependency
        return False
    # `bind_tools(...)`, `bind(...)` and `with_config(...)` wrap the model in bindings.
    while isinstance(obj, RunnableBinding):
        obj = obj.bound
    # `init_chat_model` without a fixed model returns a configurable wrapper.
    return isinstance(obj, BaseChatModel) or type(obj).__name__ == "_ConfigurableModel"
