"""Provider retries: the policy, the retry-after hint, and the loop that applies them.

A failed provider call (an exception, a timeout, a rate limit) is never a vote: the
same call is made again after a backoff, and each failure is counted by kind.
`maker_graph.sampling` re-exports the public names; `draw` and `draw_many` there
are the loop applied to one sample and to one several-sample request.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import math
import random
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError, SamplerError


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
                when = when.replace(tzinfo=datetime.UTC)
            seconds = (when - datetime.datetime.now(datetime.UTC)).total_seconds()
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


async def with_retries(
    make_call: Callable[[], Awaitable[Any]],
    label: str,
    *,
    retry: ProviderRetry,
    failures: MutableMapping[str, int],
    semaphore: asyncio.Semaphore | None,
) -> Any:
    """Await `make_call()` until it succeeds, retrying provider failures as `retry` says.

    Raises:
        SamplerError: every attempt failed.
    """
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
