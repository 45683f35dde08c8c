"""Red flags: checks that throw a sample away before it can vote.

A red flag is a plain callable, sync or async, that takes a `Sample` and
returns a `Verdict` (or `None`/`False` to pass, `True` or a reason string to
flag). Red-flagged samples are kept and counted for analysis but never vote;
the engine draws another sample in their place. A parse failure is always a
red flag (reason `"parse_error"`); the built-ins below add the others.

Example:
    >>> from maker_graph.red_flags import max_output_tokens, truncated
    >>> flags = [max_output_tokens(750), truncated()]
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from ._bounded import MAX_PARSE_CHARS
from ._bounded_regex import compile_bounded
from ._util import is_async_callable
from .records import RawSample, Sample

__all__ = [
    "MAX_SAMPLE_CHARS",
    "PARSE_ERROR",
    "TOO_LARGE",
    "RedFlag",
    "Verdict",
    "check_sample",
    "check_sample_async",
    "has_async",
    "matches",
    "max_output_tokens",
    "oversized",
    "predicate",
    "truncated",
]

PARSE_ERROR = "parse_error"
"""Reason recorded for a sample whose parser raised."""

TOO_LARGE = "too_large"
"""Reason recorded for a sample longer than `MAX_SAMPLE_CHARS`."""

MAX_SAMPLE_CHARS = MAX_PARSE_CHARS
"""The most characters of one sample anything reads (1,000,000, the parsers' own cap).

A longer reply is red-flagged (`"too_large"`) before it is parsed, keyed or
tokenized, whatever usage the provider reported: a 50 MB answer billed as 10
tokens must not vote, and tokenizing it would take a minute and gigabytes.
"""


def _output_chars(output: Any) -> int:
    """Characters of a raw output's text, in O(parts) time (string lengths are stored)."""
    if isinstance(output, str):
        return len(output)
    content = getattr(output, "content", None)
    total = 0
    if isinstance(content, str):
        total = len(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                total += len(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                total += len(part["text"])
    extra = getattr(output, "additional_kwargs", None)
    calls = extra.get("tool_calls") if isinstance(extra, dict) else None
    if isinstance(calls, list):
        for call in calls:
            fn = call.get("function") if isinstance(call, dict) else None
            arguments = fn.get("arguments") if isinstance(fn, dict) else None
            if isinstance(arguments, str):
                total += len(arguments)
    return total


def oversized(raw: RawSample, limit: int = MAX_SAMPLE_CHARS) -> Verdict | None:
    """A `"too_large"` verdict when the sample's text or output exceeds `limit` characters.

    Constant time in the reply's length: it reads string lengths, never the text.
    The vote runs it before the parser, the key and every other check.

    Example:
        >>> oversized(RawSample("x" * 2_000_001, "x" * 2_000_001)).reason
        'too_large'
        >>> oversized(RawSample("ok", "ok")) is None
        True
    """
    chars = max(len(raw.text), _output_chars(raw.output))
    if chars > limit:
        return Verdict.flag(TOO_LARGE, f"reply of {chars} characters > limit {limit}")
    return None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The result of one red-flag check.

    Attributes:
        flagged: True to discard the sample.
        reason: a short machine-friendly reason, e.g. `"too_long"`.
        detail: a human-readable explanation.
    """

    flagged: bool
    reason: str = ""
    detail: str = ""

    @classmethod
    def ok(cls) -> Verdict:
        return _OK

    @classmethod
    def flag(cls, reason: str, detail: str = "") -> Verdict:
        return cls(True, reason, detail)


_OK = Verdict(False)

VerdictLike: TypeAlias = Verdict | bool | str | None
# Typed loosely on purpose: checks are plain functions, lambdas or callable objects, sync or async.
RedFlag: TypeAlias = Callable[[Sample], Any]
"""A red-flag check: `(sample) -> Verdict | bool | str | None`, or a coroutine of one."""


def _name(check: Callable[..., Any]) -> str:
    return getattr(check, "reason", None) or getattr(check, "__name__", None) or "red_flag"


def _normalise(check: Callable[..., Any], result: VerdictLike) -> Verdict | None:
    if result is None or result is False:
        return None
    if result is True:
        return Verdict.flag(_name(check))
    if isinstance(result, str):
        return Verdict.flag(result)
    if isinstance(result, Verdict):
        return result if result.flagged else None
    raise TypeError(
        f"red flag {_name(check)!r} returned {result!r}; return a Verdict, bool, str or None"
    )


def has_async(flags: Sequence[RedFlag]) -> bool:
    """True when any check is a coroutine function (the engine then awaits them)."""
    return any(is_async_callable(f) for f in flags)


def check_sample(sample: Sample, flags: Sequence[RedFlag]) -> Verdict | None:
    """Run synchronous checks in order; the first flag wins. None when the sample passes.

    A check that raises flags the sample (reason `"red_flag_error"`): a broken
    check must never let a doubtful sample vote, nor crash the step.
    """
    for check in flags:
        try:
            verdict = _normalise(check, check(sample))  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - a failing check is itself a flag
            return Verdict.flag("red_flag_error", f"{_name(check)} raised {exc!r}")
        if verdict is not None:
            return verdict
    return None


async def check_sample_async(sample: Sample, flags: Sequence[RedFlag]) -> Verdict | None:
    """Like `check_sample`, awaiting checks that are coroutines."""
    for check in flags:
        try:
            result = check(sample)
            if inspect.isawaitable(result):
                result = await result
            verdict = _normalise(check, result)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001
            return Verdict.flag("red_flag_error", f"{_name(check)} raised {exc!r}")
        if verdict is not None:
            return verdict
    return None


class max_output_tokens:  # noqa: N801 - used like a function: max_output_tokens(750)
    """Flag answers longer than `limit` output tokens.

    Uses the provider's reported completion tokens when present, otherwise counts
    the text with tiktoken (`encoding`), never characters: long answers are where
    models go wrong together, and characters misjudge that badly across languages.
    """

    reason = "too_long"

    def __init__(self, limit: int, encoding: str = "o200k_base") -> None:
        if limit < 1:
            raise ValueError(f"max_output_tokens limit must be >= 1, got {limit}")
        self.limit = limit
        self.encoding = encoding

    def tokens(self, sample: Sample) -> int:
        reported = sample.raw.output_tokens
        if reported is not None:
            return reported
        # count_tokens estimates texts over MAX_SAMPLE_CHARS instead of encoding them.
        from .tokens import count_tokens

        return count_tokens(sample.raw.text, self.encoding)

    def __call__(self, sample: Sample) -> Verdict | None:
        n = self.tokens(sample)
        if n > self.limit:
            return Verdict.flag(self.reason, f"{n} output tokens > limit {self.limit}")
        return None

    def __repr__(self) -> str:
        return f"max_output_tokens({self.limit})"


class truncated:  # noqa: N801
    """Flag answers the provider cut off (`finish_reason == "length"`)."""

    reason = "truncated"

    def __call__(self, sample: Sample) -> Verdict | None:
        if sample.raw.finish_reason == "length":
            return Verdict.flag(self.reason, "generation stopped at the token cap")
        return None

    def __repr__(self) -> str:
        return "truncated()"


class predicate:  # noqa: N801
    """Flag samples for which `fn(sample)` is true, with the given reason."""

    def __init__(self, fn: Callable[[Sample], bool], reason: str = "predicate") -> None:
        self.fn = fn
        self.reason = reason

    def __call__(self, sample: Sample) -> Verdict | None:
        return Verdict.flag(self.reason) if self.fn(sample) else None


class matches:  # noqa: N801
    """Flag samples whose text matches a regular expression (e.g. refusals, injections).

    The pattern runs bounded (`_bounded_regex`): a search that backtracks past
    `REGEX_TIMEOUT` seconds, or a text past `MAX_SAMPLE_CHARS`, flags the sample
    too, since a reply the check could not read is not one it passed.
    """

    def __init__(self, pattern: str, reason: str = "matches", flags: int = re.IGNORECASE) -> None:
        self.pattern = compile_bounded(pattern, flags)
        self.reason = reason

    def __call__(self, sample: Sample) -> Verdict | None:
        try:
            m = self.pattern.search(sample.raw.text)
        except ValueError as exc:  # RegexTimeout, or a text past the cap
            return Verdict.flag(self.reason, str(exc))
        return Verdict.flag(self.reason, f"matched {m.group(0)!r}") if m else None
