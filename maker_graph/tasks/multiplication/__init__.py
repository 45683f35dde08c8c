"""Long multiplication, solved by recursive decomposition and checked against Python ints.

There is no step rule to follow here, unlike Towers of Hanoi: agents find the
decomposition themselves. A problem is `"A × B"`. A decomposer either solves it
directly (both factors have at most `leaf_digits` digits) or splits the longer
factor `X = H·10^m + L` into `"H × Y"` and `"L × Y"` with the composition
`"#1 * 10^m + #2"`; discriminators vote among the distinct proposals; solvers
multiply the leaves; composers shift and add. Every answer is checked exactly.

This module supplies what the generic machinery needs for this task:

- `canonical_split`: proposals equal as arithmetic collide (reordered parts,
  commuted factors, `x`/`*`/`×`, leading zeros, `10**3` for `10^3`);
- `check_split`, `check_product`: strict red flags (a subproblem that is not
  `digits × digits` or not smaller, a composition that is not a sum of `#i` or
  `#i * 10^e` using every part once, an answer that is not digits or has more
  digits than the product can have). They check *shape*, not arithmetic: a
  plausible split with the wrong shift passes and is left to the discriminators,
  as it would be on a task whose splits cannot be verified by a program;
- oracles and wrong answers for each role, so `simulated_models` gives
  simulated agents (fast `SimulatedSampler`s or real `SimulatedChatModel`s) with
  a configurable `ErrorModel` per role, and the whole tree runs offline;
- `Multiplier`: build the graph once, multiply many pairs.

How the simulated agents err (per call, each role its own `ErrorModel`):
decomposer errors are half a plausible wrong split (the right parts, shift off
by one: one correlated rival that passes every red flag) and half an invalid
split that the red flag catches (a part left out of the composition, or a part
no smaller than the problem); discriminator errors pick another candidate;
solver and composer errors are arithmetic slips (one digit off), spread over
`rivals` different wrong results.

Example:
    >>> m = Multiplier(multiplication_roles(simulated_models(RoleErrors.uniform(0.0))))
    >>> result = m.multiply_sync(1234, 5678)
    >>> result.answer, result.correct
    (7006652, True)
"""

from __future__ import annotations

from .notation import (
    ROLES,
    canonical_split,
    check_product,
    check_split,
    evaluate_composition,
    parse_composition,
    parse_problem,
    problem_text,
    product_key,
)
from .roles import guidance, multiplication_roles
from .runner import Multiplier, ProductResult, RoleAudit, audit
from .simulated import (
    DigitErrorScaling,
    RoleErrors,
    simulated_models,
    true_choice,
    true_composition,
    true_product,
    true_split,
    wrong_choice,
    wrong_composition,
    wrong_product,
    wrong_split,
)

__all__ = [
    "ROLES",
    "DigitErrorScaling",
    "Multiplier",
    "ProductResult",
    "RoleAudit",
    "RoleErrors",
    "audit",
    "canonical_split",
    "check_product",
    "check_split",
    "evaluate_composition",
    "guidance",
    "multiplication_roles",
    "parse_composition",
    "parse_problem",
    "problem_text",
    "simulated_models",
    "true_split",
    # oracles and rival answers of the simulated agents
    "product_key",
    "true_choice",
    "true_composition",
    "true_product",
    "wrong_choice",
    "wrong_composition",
    "wrong_product",
    "wrong_split",
]
