"""Default parsers, checks and vote keys of the four roles.

- `structured_parser(schema)` reads a role's answer into its pydantic model from
  whatever the sampler returned: the parsed object of `with_structured_output`,
  a tool call, JSON text in a message or a plain string. Anything else raises,
  which red-flags the sample.
- `check_decomposition` is the structural check every proposal must pass
  (answer shape, fan-out, progress, every sub-answer used); a task adds its own.
- `canonical_decomposition` is the default vote key of a decomposition, so
  proposals that differ only in spacing or letter case count as one; a task
  with a notion of equivalence (commuted factors, reordered parts) supplies a
  finer one.

Example:
    >>> from maker_graph.recursive.schemas import Answer
    >>> structured_parser(Answer)('{"answer": "42"}')
    Answer(answer='42')
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from pydantic import BaseModel

from .._bounded import check_length, unfence
from ..vote import default_parser
from .schemas import Answer, Decomposition

__all__ = [
    "Check",
    "answer_key",
    "canonical_decomposition",
    "check_decomposition",
    "normalise_text",
    "placeholders",
    "structured_parser",
]

M = TypeVar("M", bound=BaseModel)

Check = Callable[[Any, Any], "str | None"]
"""A check that needs the role's input: `(step_input, parsed_answer) -> reason | None`.

A returned reason red-flags the sample (its `red_flag_detail`); raising does too.
"""

_PLACEHOLDER = re.compile(r"#(\d+)")


def structured_parser(schema: type[M]) -> Callable[[Any], M]:
    """A parser that turns any sampler output into `schema`, or raises.

    Example:
        >>> from maker_graph.recursive.schemas import Choice
        >>> structured_parser(Choice)({"choice": 2}).choice
        2
    """

    def parse(output: Any) -> M:
        if isinstance(output, schema):
            return output
        is_message = hasattr(output, "content") and hasattr(output, "response_metadata")
        if is_message:
            tool_calls = getattr(output, "tool_calls", None)
            if tool_calls:
                return schema.model_validate(tool_calls[0].get("args", {}))
        elif isinstance(output, BaseModel):
            return schema.model_validate(output.model_dump())
        if isinstance(output, dict):
            return schema.model_validate(output)
        text = default_parser(output)  # raises on a structured answer that did not validate
        if not isinstance(text, str):
            raise TypeError(f"expected {schema.__name__} or JSON text, got {type(text).__name__}")
        fenced = unfence(check_length(text), ("json",))
        if fenced is not None:
            text = fenced
        return schema.model_validate_json(text)

    parse.__name__ = f"parse_{schema.__name__.lower()}"
    return parse


def normalise_text(text: str) -> str:
    """Collapse runs of whitespace and lower the case: the default notion of 'same text'."""
    return " ".join(text.split()).lower()


def placeholders(composition: str) -> list[int]:
    """The sub-answer numbers a composition refers to (`#2` -> 2), in order of appearance."""
    return [int(n) for n in _PLACEHOLDER.findall(composition)]


def check_decomposition(problem: str, proposal: Decomposition, *, max_fanout: int) -> str | None:
    """The structural check every proposal passes before it may be a candidate.

    Returns a reason when the proposal is not usable: a direct solve that still
    lists subproblems, a split into fewer than 2 or more than `max_fanout` parts,
    an empty part, a part equal to the problem itself (no progress, and an
    endless recursion), or a composition that skips a part or names one that
    does not exist.

    Example:
        >>> check_decomposition("p", Decomposition(subproblems=["p", "q"], composition="#1+#2"),
        ...                     max_fanout=4)
        'subproblem #1 is the problem itself'
    """
    if proposal.solve_directly:
        if proposal.subproblems:
            return "solve_directly is true but subproblems are listed"
        return None
    parts = proposal.subproblems
    if not 2 <= len(parts) <= max_fanout:
        return f"a split needs 2 to {max_fanout} subproblems, got {len(parts)}"
    whole = normalise_text(problem)
    for i, part in enumerate(parts, 1):
        if not part.strip():
            return f"subproblem #{i} is empty"
        if normalise_text(part) == whole:
            return f"subproblem #{i} is the problem itself"
    used = set(placeholders(proposal.composition))
    missing = [i for i in range(1, len(parts) + 1) if i not in used]
    if missing:
        return f"the composition does not use {', '.join(f'#{i}' for i in missing)}"
    extra = sorted(i for i in used if not 1 <= i <= len(parts))
    if extra:
        return f"the composition names {', '.join(f'#{i}' for i in extra)}, which do not exist"
    return None


def canonical_decomposition(proposal: Decomposition) -> Hashable:
    """The default vote key of a proposal: equal up to spacing and letter case.

    Example:
        >>> a = Decomposition(subproblems=["A  b", "c"], composition="#1 + #2")
        >>> b = Decomposition(subproblems=["a b", "C"], composition="#1+#2".replace("+", " + "))
        >>> canonical_decomposition(a) == canonical_decomposition(b)
        True
    """
    if proposal.solve_directly:
        return ("solve",)
    return (
        "split",
        tuple(normalise_text(p) for p in proposal.subproblems),
        normalise_text(proposal.composition),
    )


def answer_key(answer: Answer) -> Hashable:
    """The default vote key of an answer: its text with whitespace collapsed."""
    return " ".join(answer.answer.split())


def decomposition_json(proposal: Decomposition) -> str:
    """Compact JSON of a proposal (for records)."""
    return json.dumps(proposal.model_dump(mode="json"), ensure_ascii=False, sort_keys=True)
