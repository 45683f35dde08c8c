"""Bounded handling of model replies: linear code-fence stripping, length caps, regex checks.

Model output is hostile input: nothing that reads it may take super-linear time.
Code fences are stripped by hand (a regex with adjacent `\\s*` runs is cubic on
"```" plus thousands of spaces), parsers refuse replies longer than
`MAX_PARSE_CHARS`, and spec-supplied regular expressions are refused at load time
when they nest unbounded quantifiers (`(a+)+`), the shape that backtracks
exponentially.
"""

from __future__ import annotations

import re
from typing import Any

try:  # Python 3.11+
    from re import _parser as _sre  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse as _sre  # type: ignore[no-redef]

__all__ = ["MAX_PARSE_CHARS", "check_length", "nested_quantifier", "unfence"]

MAX_PARSE_CHARS = 1_000_000
"""The longest reply (in characters) a built-in parser reads; longer replies are red-flagged."""

_FENCE = "```"


def check_length(text: str, limit: int = MAX_PARSE_CHARS) -> str:
    """Return `text`, or raise ValueError when it is longer than `limit` characters."""
    if len(text) > limit:
        raise ValueError(f"reply of {len(text)} characters exceeds the parse limit of {limit}")
    return text


def unfence(text: str, tags: tuple[str, ...] = ("json", "JSON")) -> str | None:
    """The stripped body of a reply that is one code fence (```json ... ```), else None.

    Linear time. Same answers as the old pattern
    `^\\s*```(?:json)?\\s*(.*?)\\s*```\\s*$` followed by a strip of the body.
    """
    text = text.strip()
    if len(text) < 2 * len(_FENCE) or not (text.startswith(_FENCE) and text.endswith(_FENCE)):
        return None
    body = text[len(_FENCE) : -len(_FENCE)]
    for tag in tags:
        if body.startswith(tag):
            body = body[len(tag) :]
            break
    return body.strip()


_REPEATS = {_sre.MAX_REPEAT, _sre.MIN_REPEAT}


def _contains_repeat(items: Any) -> str | None:
    """The first repeat (with a maximum above 1) inside a parsed sub-pattern, if any."""
    for op, av in items:
        if op in _REPEATS:
            low, high, sub = av
            if high > 1:
                if high == _sre.MAXREPEAT and low < 2:
                    return "*+"[low]
                return f"{{{low},{'' if high == _sre.MAXREPEAT else high}}}"
            found = _contains_repeat(sub)
        else:
            found = _walk_children(op, av, _contains_repeat)
        if found:
            return found
    return None


def _walk_children(op: Any, av: Any, visit: Any) -> str | None:
    if op is _sre.SUBPATTERN:
        return visit(av[-1])  # type: ignore[no-any-return]
    if op is _sre.BRANCH:
        for branch in av[1]:
            found = visit(branch)
            if found:
                return found  # type: ignore[no-any-return]
        return None
    if op in (_sre.ASSERT, _sre.ASSERT_NOT):
        return visit(av[1])  # type: ignore[no-any-return]
    if op is _sre.GROUPREF_EXISTS:
        for sub in av[1:]:
            if sub is not None:
                found = visit(sub)
                if found:
                    return found  # type: ignore[no-any-return]
    # ATOMIC_GROUP and POSSESSIVE_REPEAT never backtrack into their body: not walked.
    return None


def _nested(items: Any) -> str | None:
    for op, av in items:
        if op in _REPEATS:
            low, high, sub = av
            if high == _sre.MAXREPEAT:
                inner = _contains_repeat(sub)
                if inner:
                    return inner
            found = _nested(sub)
        else:
            found = _walk_children(op, av, _nested)
        if found:
            return found
    return None


def nested_quantifier(pattern: str, flags: int = 0) -> str | None:
    """A description of a quantifier nested in an unbounded one (`(a+)+`), or None.

    Such patterns backtrack exponentially on a reply that almost matches. Possessive
    quantifiers and atomic groups (`(?>...)`, Python 3.11+) do not backtrack and pass.

    Example:
        >>> nested_quantifier(r"^(a+)+$") is not None, nested_quantifier(r"\\d+") is None
        (True, True)
    """
    try:
        parsed = _sre.parse(pattern, flags)
    except re.error:
        return None  # re.compile reports it
    found = _nested(parsed)
    if found is None:
        return None
    return f"a quantifier ({found}) nested inside an unbounded one"
