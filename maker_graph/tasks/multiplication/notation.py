"""How multiplication problems, splits and answers are written, read and checked.

Problems are `"A × B"`; a split is two subproblems and a composition such as
`"#1 * 10^3 + #2"`. `canonical_split` makes arithmetically equal proposals one
vote; `check_split` and `check_product` are the strict shape red flags.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Any

from ...recursive.schemas import (
    Answer,
    Decomposition,
)

ROLES = ("decomposer", "discriminator", "solver", "composer")
"""The role names, in the order they act on a node."""

_PROBLEM = re.compile(r"^\s*(\d+)\s*[×xX*·]\s*(\d+)\s*$")
_TERM = re.compile(r"^#(\d+)(?:\s*[*×xX·]\s*10\s*(?:\^|\*\*)\s*(\d+))?$")


# --------------------------------------------------------------------------- notation


def problem_text(a: int | str, b: int | str) -> str:
    """The problem `"A × B"`.

    Example:
        >>> problem_text(12, 345)
        '12 × 345'
    """
    return f"{a} × {b}"


def parse_problem(text: str) -> tuple[str, str]:
    """The two factors of `"A × B"` as digit strings (as written, leading zeros kept).

    Raises:
        ValueError: not a product of two non-negative integers.

    Example:
        >>> parse_problem("012 x 34")
        ('012', '34')
    """
    m = _PROBLEM.match(text)
    if m is None:
        raise ValueError(f"not a product of two integers: {text!r}")
    return m.group(1), m.group(2)


MAX_EXPONENT = 10_000
"""Largest power of ten a composition may use (a red flag past it)."""


def parse_composition(text: str, parts: int) -> list[tuple[int, int]]:
    """A composition `"#1 * 10^3 + #2"` as `(part index from 0, power of ten)` terms.

    Strict: a sum of terms `#i` or `#i * 10^e` (also `×`, `x`, `10**e`), every part
    exactly once.

    Raises:
        ValueError: anything else.

    Example:
        >>> parse_composition("#1 * 10^3 + #2", 2)
        [(0, 3), (1, 0)]
    """
    terms = []
    for raw in text.split("+"):
        m = _TERM.match(raw.strip())
        if m is None:
            raise ValueError(f"term {raw.strip()!r} is not '#i' or '#i * 10^e'")
        index = int(m.group(1)) - 1
        if not 0 <= index < parts:
            raise ValueError(f"#{index + 1} names no subproblem (there are {parts})")
        exponent = int(m.group(2) or 0)
        if exponent > MAX_EXPONENT:
            # 10**e with a huge e is a model's mistake that would cost seconds and memory
            # to evaluate; no product this task builds has anywhere near that many digits.
            raise ValueError(f"power of ten {exponent} is past {MAX_EXPONENT}")
        terms.append((index, exponent))
    used = sorted(i for i, _ in terms)
    if used != list(range(parts)):
        raise ValueError("every subproblem must appear exactly once in the composition")
    return terms


def evaluate_composition(text: str, answers: list[int]) -> int:
    """The value of a composition for the given sub-answers.

    Example:
        >>> evaluate_composition("#1 * 10^2 + #2", [12, 34])
        1234
    """
    return sum(answers[i] * 10**e for i, e in parse_composition(text, len(answers)))


def digit_count(text: str) -> int:
    return len(text.lstrip("0") or "0")


def canonical_split(proposal: Decomposition) -> Hashable:
    """The vote key of a proposal: equal for splits that are the same arithmetic.

    Example:
        >>> a = Decomposition(subproblems=["12 × 34", "5 × 34"], composition="#1 * 10^1 + #2")
        >>> b = Decomposition(subproblems=["34 * 05", "034 x 12"],
        ...                   composition="#2*10**1 + #1")
        >>> canonical_split(a) == canonical_split(b)
        True
    """
    if proposal.solve_directly:
        return ("solve",)
    factors = [parse_problem(p) for p in proposal.subproblems]
    terms = parse_composition(proposal.composition, len(factors))
    return (
        "split",
        tuple(sorted((e, *sorted((int(factors[i][0]), int(factors[i][1])))) for i, e in terms)),
    )


def check_split(step_input: Any, proposal: Any) -> str | None:
    """Red flag of a proposal's shape: parts `digits × digits`, each smaller, a strict sum.

    Example:
        >>> from maker_graph.recursive.schemas import DecomposeInput, Decomposition
        >>> check_split(DecomposeInput(problem="123 × 45"),
        ...             Decomposition(subproblems=["12 × 45", "3 × 45"], composition="#1"))
        'every subproblem must appear exactly once in the composition'
    """
    if proposal.solve_directly:
        return None
    a, b = parse_problem(step_input.problem)
    size = digit_count(a) + digit_count(b)
    for i, part in enumerate(proposal.subproblems, 1):
        try:
            x, y = parse_problem(part)
        except ValueError as exc:
            return f"subproblem #{i}: {exc}"
        if digit_count(x) + digit_count(y) >= size:
            return f"subproblem #{i} ({part}) is not smaller than the problem"
    try:
        parse_composition(proposal.composition, len(proposal.subproblems))
    except ValueError as exc:
        return str(exc)
    return None


def check_product(step_input: Any, answer: Any) -> str | None:
    """Red flag of a solver's or composer's answer: digits only, no more than the product has.

    Example:
        >>> from maker_graph.recursive.schemas import Answer, SolveInput
        >>> check_product(SolveInput(problem="12 × 34"), Answer(answer="40 8"))
        'the answer must be digits only'
    """
    text = answer.answer.strip()
    if not text.isdigit():
        return "the answer must be digits only"
    a, b = parse_problem(step_input.problem)
    bound = digit_count(a) + digit_count(b)
    if digit_count(text) > bound:
        return f"{digit_count(text)} digits, but the product has at most {bound}"
    return None


def product_key(answer: Answer) -> Hashable:
    """The vote key of an answer: its integer value (leading zeros and spaces ignored)."""
    return int(answer.answer.strip())
