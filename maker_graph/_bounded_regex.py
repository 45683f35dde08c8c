"""User-supplied regular expressions run against model output with a time bound.

Python's `re` has no timeout, and patterns that look harmless backtrack for
seconds or hours on a reply that almost matches: `^(a|a)+$` doubles per
character, `\\s*\\s*\\s*\\s*x` is quartic (110 s on 300 spaces). A static check
(`_bounded.nested_quantifier`) refuses the common nested shape at spec load, but
it cannot catch every slow pattern, so every pattern a user supplies (spec regex
parsers, the `matches` red flag) is run here instead: with the `regex` module
(already installed for tiktoken) and a per-call timeout, on text no longer than
the parse cap. A timeout raises `RegexTimeout`, a `ValueError`, so a parser that
hits it red-flags the sample like any other unreadable reply.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import regex

from ._bounded import MAX_PARSE_CHARS, check_length

__all__ = ["REGEX_TIMEOUT", "BoundedPattern", "RegexTimeout", "compile_bounded"]

REGEX_TIMEOUT = 0.5
"""Seconds one search (or one whole scan for all matches) of a user pattern may take."""

# `regex` numbers some flags differently from `re` (ASCII is 256 in re, 128 in regex).
_FLAGS = ("IGNORECASE", "MULTILINE", "DOTALL", "VERBOSE", "ASCII", "UNICODE", "LOCALE")


class RegexTimeout(ValueError):
    """A user pattern ran past its time bound on one text."""


def _regex_flags(flags: int) -> int:
    out = regex.VERSION0  # the `re`-compatible dialect: same meaning as the spec check
    for name in _FLAGS:
        if flags & int(getattr(re, name)):
            out |= int(getattr(regex, name))
    return int(out)


class BoundedPattern:
    """A compiled user pattern whose searches stop after `timeout` seconds.

    Example:
        >>> p = compile_bounded(r"answer: (\\d+)")
        >>> p.search("the answer: 42").group(1)
        '42'
        >>> try:
        ...     compile_bounded(r"^(a|a)+$", timeout=0.05).search("a" * 40 + "!")
        ... except RegexTimeout as exc:
        ...     print("refused")
        refused
    """

    def __init__(
        self,
        pattern: str,
        flags: int = 0,
        *,
        timeout: float = REGEX_TIMEOUT,
        max_chars: int = MAX_PARSE_CHARS,
    ) -> None:
        self.pattern = pattern
        self.flags = flags
        self.timeout = timeout
        self.max_chars = max_chars
        # re.compile first: its errors are the ones users already see, and the
        # pattern must mean what `re` says it means.
        re.compile(pattern, flags)
        try:
            self._compiled: Any = regex.compile(pattern, _regex_flags(flags))
        except regex.error as exc:  # a corner where the dialects differ: say so as `re` would
            raise re.error(f"{exc} (in the bounded regex engine)", pattern) from None

    def _guard(self, text: str) -> str:
        return check_length(text, self.max_chars)

    def _timed_out(self) -> RegexTimeout:
        return RegexTimeout(
            f"pattern {self.pattern!r} took over {self.timeout:g} s on a reply "
            "(it backtracks on this text); refused"
        )

    def search(self, text: str) -> Any:
        """The first match in `text`, or None; raises RegexTimeout or (too long) ValueError."""
        try:
            return self._compiled.search(self._guard(text), timeout=self.timeout)
        except TimeoutError:
            raise self._timed_out() from None

    def findall_matches(self, text: str) -> list[Any]:
        """Every match in `text`; the timeout bounds the whole scan, not each match."""
        try:
            found: Iterator[Any] = self._compiled.finditer(self._guard(text), timeout=self.timeout)
            return list(found)
        except TimeoutError:
            raise self._timed_out() from None

    def __repr__(self) -> str:
        return f"BoundedPattern({self.pattern!r})"


def compile_bounded(
    pattern: str, flags: int = 0, *, timeout: float = REGEX_TIMEOUT
) -> BoundedPattern:
    """Compile a user pattern for bounded matching (raises `re.error` like `re.compile`)."""
    return BoundedPattern(pattern, flags, timeout=timeout)
