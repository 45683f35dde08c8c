"""Checking one sample: a raw reply parsed, keyed and red-flagged into a `Sample`.

The vote calls these for every sample it tallies; `Voter.check` offers them to
callers that draw samples themselves. A reply that fails to parse or key is a
red flag (`PARSE_ERROR`), never a crash.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from ._chat_replies import message_text
from .records import RawSample, Sample
from .red_flags import (
    PARSE_ERROR,
    RedFlag,
    Verdict,
    check_sample,
    check_sample_async,
    oversized,
)

__all__ = ["apply_key", "check_raw", "check_raw_async", "has_async_key"]

KEPT_CHARS = 1_000
"""Characters of a too-large reply kept for the record (the rest is dropped at once)."""

Parsed = tuple[Any, Any, str | None]
"""One reply's parse: (value, key, error); value and key are None when error is set."""

ParseCache = dict[str, Parsed]
"""A step's parses by reply text."""


def has_async_key(key: Callable[[Any], Hashable]) -> bool:
    """Whether a vote key offers an async form, `akey(value)`, the vote should await.

    A key whose work waits on I/O (`EmbeddingClusterKey` calls an embedding model)
    offers `async akey(value)` next to its synchronous `__call__`; both give the same
    key for the same value.
    """
    return callable(getattr(key, "akey", None))


async def apply_key(key: Callable[[Any], Hashable], value: Any) -> Hashable:
    """The vote key of `value`: the key's async form awaited when it has one, else `key(value)`."""
    akey = getattr(key, "akey", None)
    if callable(akey):
        return await akey(value)  # type: ignore[no-any-return]
    return key(value)


def _too_large(raw: RawSample, index: int, rnd: int) -> Sample | None:
    """A `"too_large"` red-flagged sample, before anything reads the text; else None.

    The reply is cut to its first `KEPT_CHARS` characters (output included) so a
    kept sample does not hold megabytes; its reported token counts stay as billed.
    """
    verdict = oversized(raw)
    if verdict is None:
        return None
    raw.text = raw.text[:KEPT_CHARS] if raw.text else message_text(raw.output)[:KEPT_CHARS]
    raw.output = raw.text
    return _flag(Sample(index, raw, None, None, None, round=rnd), verdict)


def _parse_error(exc: Exception) -> str:
    """The error text a parse or key failure is recorded with."""
    return f"{type(exc).__name__}: {exc}"


def _parsed(raw: RawSample, index: int, rnd: int, parsed: Parsed) -> Sample:
    """The sample of a parsed (or failed) reply: a parse or key failure is `PARSE_ERROR`."""
    value, key_, error = parsed
    sample = Sample(index, raw, value, key_, error, round=rnd)
    if error is not None:
        sample.red_flag, sample.red_flag_detail = PARSE_ERROR, error
    return sample


def _flag(sample: Sample, verdict: Verdict | None) -> Sample:
    """`sample` with a red flag's verdict recorded on it (unchanged when it passed)."""
    if verdict is not None:
        sample.red_flag, sample.red_flag_detail = verdict.reason, verdict.detail
    return sample


def check_raw(
    raw: RawSample,
    index: int,
    rnd: int,
    cache: ParseCache,
    parser: Callable[[Any], Any],
    key: Callable[[Any], Hashable],
    red_flags: Sequence[RedFlag],
) -> Sample:
    """Sample `index` of round `rnd`, with a sync parser and sync red flags."""
    huge = _too_large(raw, index, rnd)
    if huge is not None:
        return huge
    output = raw.output
    # Within a step identical answers parse identically: parse each text once.
    cached: Parsed | None = cache.get(output) if type(output) is str else None
    if cached is None:
        try:
            value = parser(output)
            cached = (value, key(value), None)
        except Exception as exc:  # noqa: BLE001 - a bad answer is a red flag, not a crash
            cached = (None, None, _parse_error(exc))
        if type(output) is str:
            cache[output] = cached
    sample = _parsed(raw, index, rnd, cached)
    if sample.red_flag is None and red_flags:
        _flag(sample, check_sample(sample, red_flags))
    return sample


async def check_raw_async(
    raw: RawSample,
    index: int,
    rnd: int,
    parser: Callable[[Any], Any],
    key: Callable[[Any], Hashable],
    red_flags: Sequence[RedFlag],
) -> Sample:
    """`check_raw` for an async parser, an async key or async red flags (nothing cached).

    A key with an async form (`has_async_key`) is awaited, so its I/O leaves the loop free.
    """
    huge = _too_large(raw, index, rnd)
    if huge is not None:
        return huge
    try:
        value = parser(raw.output)
        if inspect.isawaitable(value):
            value = await value
        parsed: Parsed = (value, await apply_key(key, value), None)
    except Exception as exc:  # noqa: BLE001 - a bad answer is a red flag, not a crash
        parsed = (None, None, _parse_error(exc))
    sample = _parsed(raw, index, rnd, parsed)
    if sample.red_flag is None and red_flags:
        _flag(sample, await check_sample_async(sample, red_flags))
    return sample
