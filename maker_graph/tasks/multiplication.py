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

import functools
import hashlib
import json
import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from langchain_core.messages import BaseMessage
from pydantic import BaseModel

from ..errors import ConfigurationError
from ..records import RawSample
from ..recursive.graph import create_recursive_graph
from ..recursive.policy import RecursionPolicy
from ..recursive.prompts import input_from_messages
from ..recursive.record import TreeRecorder
from ..recursive.roles import Role, Roles
from ..recursive.schemas import (
    Answer,
    Choice,
    ComposeInput,
    DecomposeInput,
    Decomposition,
    DiscriminateInput,
    SolveInput,
)
from ..testing import ErrorModel, SimulatedChatModel, SimulatedSampler
from ..vote import VotePolicy

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
        terms.append((index, int(m.group(2) or 0)))
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


def _digits(text: str) -> int:
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
        tuple(sorted(
            (e, *sorted((int(factors[i][0]), int(factors[i][1])))) for i, e in terms
        )),
    )


def check_split(step_input: Any, proposal: Any) -> str | None:
    """Red flag of a proposal's shape: parts `digits × digits`, each smaller, a strict sum.

    Example:
        >>> check_split(DecomposeInput(problem="123 × 45"),
        ...             Decomposition(subproblems=["12 × 45", "3 × 45"], composition="#1"))
        'every subproblem must appear exactly once in the composition'
    """
    if proposal.solve_directly:
        return None
    a, b = parse_problem(step_input.problem)
    size = _digits(a) + _digits(b)
    for i, part in enumerate(proposal.subproblems, 1):
        try:
            x, y = parse_problem(part)
        except ValueError as exc:
            return f"subproblem #{i}: {exc}"
        if _digits(x) + _digits(y) >= size:
            return f"subproblem #{i} ({part}) is not smaller than the problem"
    try:
        parse_composition(proposal.composition, len(proposal.subproblems))
    except ValueError as exc:
        return str(exc)
    return None


def check_product(step_input: Any, answer: Any) -> str | None:
    """Red flag of a solver's or composer's answer: digits only, no more than the product has.

    Example:
        >>> check_product(SolveInput(problem="12 × 34"), Answer(answer="40 8"))
        'the answer must be digits only'
    """
    text = answer.answer.strip()
    if not text.isdigit():
        return "the answer must be digits only"
    a, b = parse_problem(step_input.problem)
    if _digits(text) > _digits(a) + _digits(b):
        return f"{_digits(text)} digits, but the product has at most {_digits(a) + _digits(b)}"
    return None


def product_key(answer: Answer) -> Hashable:
    """The vote key of an answer: its integer value (leading zeros and spaces ignored)."""
    return int(answer.answer.strip())


def guidance(leaf_digits: int = 3) -> dict[str, str]:
    """The task know-how added to each role's default prompt.

    Example:
        >>> "10^m" in guidance()["decomposer"]
        True
    """
    return {
        "decomposer": (
            "Problems are products 'A × B' of non-negative integers. Solve directly when "
            f"both factors have at most {leaf_digits} digits. Otherwise take the longer "
            "factor X (the first if they are equally long), let L be its last m = "
            "len(X) // 2 digits and H the digits before them, so X = H * 10^m + L. The "
            "subproblems are 'H × Y' and 'L × Y' (Y the other factor) and the composition "
            "is '#1 * 10^m + #2' with m written as a number. Write subproblems as "
            "'digits × digits' and compositions as a sum of '#i' or '#i * 10^e' terms."
        ),
        "discriminator": (
            "A candidate is right when, with every subproblem answered exactly, its "
            "composition equals the product asked for: check the digits of each part "
            "and each power of ten. Solving directly is right only for factors of at most "
            f"{leaf_digits} digits."
        ),
        "solver": "Give the exact product as digits only, without separators.",
        "composer": (
            "Compute the composition exactly: '#i * 10^e' appends e zeros to answer #i; "
            "then add the terms. Give digits only, without separators."
        ),
    }


def multiplication_roles(
    models: Any | Mapping[str, Any],
    *,
    k: int = 3,
    max_samples: int | None = None,
    on_no_consensus: str = "raise",
    leaf_digits: int = 3,
) -> Roles:
    """The four roles for multiplication: models plus this task's checks, keys and prompts.

    Args:
        models: one model for every role, or a mapping role name -> model (chat
            models, samplers or functions; see `Role.model`).
        k: the margin of every vote.
        max_samples: the per-vote sample budget (None: `VotePolicy`'s default).
        on_no_consensus: `"raise"` or `"plurality"`.
        leaf_digits: factors this short are solved directly (mentioned in prompts).

    Example:
        >>> roles = multiplication_roles(simulated_models(RoleErrors.uniform(0.05)), k=2)
        >>> roles.solver.policy.k
        2
    """
    if isinstance(models, Mapping):
        missing = [r for r in ROLES if r not in models]
        if missing:
            raise ConfigurationError(f"no model for role(s) {missing}; give all of {ROLES}")
        per_role = dict(models)
    else:
        per_role = dict.fromkeys(ROLES, models)
    policy = VotePolicy(k=k, max_samples=max_samples, on_no_consensus=on_no_consensus)  # type: ignore[arg-type]
    return Roles(
        decomposer=Role(model=per_role["decomposer"], check=check_split, policy=policy),
        discriminator=Role(model=per_role["discriminator"], policy=policy),
        solver=Role(model=per_role["solver"], check=check_product, key=product_key,
                    policy=policy),
        composer=Role(model=per_role["composer"], check=check_product, key=product_key,
                      policy=policy),
        canonical=canonical_split,
        guidance=guidance(leaf_digits),
    )


# --------------------------------------------------------------------------- oracles


def true_split(problem: str, leaf_digits: int = 3) -> Decomposition:
    """The decomposition the simulated decomposer believes in (halve the longer factor).

    Example:
        >>> true_split("123456 × 78").subproblems, true_split("123456 × 78").composition
        (['123 × 78', '456 × 78'], '#1 * 10^3 + #2')
    """
    a, b = (f.lstrip("0") or "0" for f in parse_problem(problem))
    if max(len(a), len(b)) <= leaf_digits:
        return Decomposition(solve_directly=True)
    first = len(a) >= len(b)
    x, y = (a, b) if first else (b, a)
    m = len(x) // 2
    high, low = x[:-m], x[-m:].lstrip("0") or "0"
    parts = [f"{high} × {y}", f"{low} × {y}"] if first else [f"{y} × {high}", f"{y} × {low}"]
    return Decomposition(subproblems=parts, composition=f"#1 * 10^{m} + #2")


def _die(*parts: Any) -> int:
    """A deterministic pseudo-random integer of `parts` (the same in every process)."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def wrong_split(problem: str, rival: int, leaf_digits: int = 3) -> Decomposition:
    """A wrong proposal: rival 0 is plausible (shift off by one), rival 1 is invalid."""
    a, b = (f.lstrip("0") or "0" for f in parse_problem(problem))
    right = true_split(problem, leaf_digits)
    if right.solve_directly and max(len(a), len(b)) >= 2:
        right = true_split(problem, leaf_digits=max(len(a), len(b)) - 1)
    if rival % 2 == 0 and right.is_split:
        shift = parse_composition(right.composition, 2)[0][1]
        return Decomposition(subproblems=right.subproblems,
                             composition=f"#1 * 10^{shift + 1} + #2")
    # An invalid split: the red flag must catch it.
    if right.is_split and _die(problem, rival) % 2 == 0:
        shift = parse_composition(right.composition, 2)[0][1]
        return Decomposition(subproblems=right.subproblems, composition=f"#1 * 10^{shift}")
    return Decomposition(subproblems=[problem_text(a, b), "0 × 0"], composition="#1 + #2")


def true_choice(step_input: DiscriminateInput, leaf_digits: int = 3) -> Choice:
    """The candidate a perfect discriminator picks: the believed split, else any exact one."""
    want = canonical_split(true_split(step_input.problem, leaf_digits))
    keys = []
    for cand in step_input.candidates:
        try:
            keys.append(canonical_split(cand))
        except ValueError:
            keys.append(None)
    if want in keys:
        return Choice(choice=keys.index(want) + 1)
    a, b = parse_problem(step_input.problem)
    for i, cand in enumerate(step_input.candidates):
        if cand.is_split and _exact(cand, int(a) * int(b)):
            return Choice(choice=i + 1)
    return Choice(choice=1)


def _exact(proposal: Decomposition, product: int) -> bool:
    try:
        answers = [int(x) * int(y) for x, y in map(parse_problem, proposal.subproblems)]
        return evaluate_composition(proposal.composition, answers) == product
    except ValueError:
        return False


def wrong_choice(step_input: DiscriminateInput, rival: int, leaf_digits: int = 3) -> Choice:
    """Another candidate than the right one (out of range when there is no other)."""
    right = true_choice(step_input, leaf_digits).choice
    others = [i for i in range(1, len(step_input.candidates) + 1) if i != right]
    return Choice(choice=others[rival % len(others)] if others else right + 1)


def _slip(value: int, rival: int, bound_digits: int, salt: str) -> int:
    """A plausible arithmetic slip: one digit of `value` off, distinct per rival."""
    digits = len(str(value))
    pos = _die(salt) % digits
    delta = (rival + 1) * int(10**pos)
    wrong = value + delta
    if len(str(wrong)) > bound_digits or _die(salt, rival) % 2:
        wrong = value - delta if value >= delta else value + rival + 1
    return wrong


def true_product(step_input: SolveInput) -> Answer:
    """The simulated solver's correct answer: the exact product of the leaf problem."""
    a, b = parse_problem(step_input.problem)
    return Answer(answer=str(int(a) * int(b)))


def wrong_product(step_input: SolveInput, rival: int) -> Answer:
    """A plausible wrong product (a one-digit slip), distinct per `rival`."""
    a, b = parse_problem(step_input.problem)
    bound = _digits(a) + _digits(b)
    return Answer(answer=str(_slip(int(a) * int(b), rival, bound, step_input.problem)))


def true_composition(step_input: ComposeInput) -> Answer:
    """The simulated composer's correct answer: the composition evaluated on the parts."""
    answers = [int(p.answer) for p in step_input.parts]
    return Answer(answer=str(evaluate_composition(step_input.composition, answers)))


def wrong_composition(step_input: ComposeInput, rival: int) -> Answer:
    """A plausible wrong composition result (a one-digit slip), distinct per `rival`."""
    a, b = parse_problem(step_input.problem)
    right = int(true_composition(step_input).answer)
    bound = max(_digits(a) + _digits(b), len(str(right)))
    salt = step_input.problem + "|" + ",".join(p.answer for p in step_input.parts)
    return Answer(answer=str(_slip(right, rival, bound, salt)))


# --------------------------------------------------------------------------- simulated agents


@dataclass(frozen=True, kw_only=True)
class RoleErrors:
    """How each simulated role errs, per call.

    Example:
        >>> RoleErrors.uniform(0.05, seed=3).solver.error_rate
        0.05
    """

    decomposer: ErrorModel = field(default_factory=lambda: ErrorModel(error_rate=0.05, rivals=2))
    """Rival 0: a plausible wrong split that passes the red flags; rival 1: an invalid one."""
    discriminator: ErrorModel = field(default_factory=lambda: ErrorModel(error_rate=0.05))
    """A wrong vote picks another candidate."""
    solver: ErrorModel = field(default_factory=lambda: ErrorModel(error_rate=0.05, rivals=3))
    """Wrong products: one-digit slips, spread over `rivals` values."""
    composer: ErrorModel = field(default_factory=lambda: ErrorModel(error_rate=0.05, rivals=3))
    """Wrong sums: one-digit slips, spread over `rivals` values."""

    @classmethod
    def uniform(cls, error_rate: float, *, seed: int = 0, rivals: int = 3) -> RoleErrors:
        """The same per-call error rate for every role (seeds differ per role)."""
        return cls(
            decomposer=ErrorModel(error_rate=error_rate, rivals=2, seed=seed),
            discriminator=ErrorModel(error_rate=error_rate, seed=seed + 1),
            solver=ErrorModel(error_rate=error_rate, rivals=rivals, seed=seed + 2),
            composer=ErrorModel(error_rate=error_rate, rivals=rivals, seed=seed + 3),
        )

    def of(self, role: str) -> ErrorModel:
        model: ErrorModel = getattr(self, role)
        return model


@dataclass(frozen=True, kw_only=True)
class DigitErrorScaling:
    """Per-call error that grows with the digit work of the call: `1 - (1 - eps) ** work`.

    A solver multiplying an `n`-digit by an `m`-digit factor does `n * m` digit
    products; a composer adds its shifted sub-answers, `work` = their total
    digits; decomposers and discriminators do constant work. Used to compare one
    big call with the decomposed tree on equal terms.

    Example:
        >>> round(DigitErrorScaling(per_digit_product=0.005).solver("10 × 10"), 4)
        0.0199
    """

    per_digit_product: float = 0.005
    """Chance of a slip per pair of digits multiplied."""
    per_digit_sum: float = 0.001
    """Chance of a slip per digit added."""
    decomposer: float = 0.02
    """Error of a decomposer call."""
    discriminator: float = 0.02
    """Error of a discriminator call."""

    def solver(self, problem: str) -> float:
        a, b = parse_problem(problem)
        return 1.0 - (1.0 - self.per_digit_product) ** (_digits(a) * _digits(b))

    def composer(self, parts: list[str]) -> float:
        work = sum(len(p) for p in parts)
        return 1.0 - (1.0 - self.per_digit_sum) ** work

    def rate(self, role: str, step_input: Any) -> float:
        if role == "solver":
            return self.solver(step_input.problem)
        if role == "composer":
            return self.composer([p.answer for p in step_input.parts])
        return float(getattr(self, role))


_ORACLES: dict[str, tuple[type[BaseModel], Callable[..., BaseModel], Callable[..., BaseModel]]] = {
    "decomposer": (DecomposeInput, lambda i, d: true_split(i.problem, d),
                   lambda i, r, d: wrong_split(i.problem, r, d)),
    "discriminator": (DiscriminateInput, true_choice, wrong_choice),
    "solver": (SolveInput, lambda i, d: true_product(i), lambda i, r, d: wrong_product(i, r)),
    "composer": (ComposeInput, lambda i, d: true_composition(i),
                 lambda i, r, d: wrong_composition(i, r)),
}


def _json(model: BaseModel) -> str:
    return json.dumps(model.model_dump(mode="json"), ensure_ascii=False)


class _ScaledSampler:
    """A `SimulatedSampler` whose error rate depends on the step input."""

    def __init__(self, make: Callable[[float], SimulatedSampler], rate: Callable[[Any], float]):
        self.make = make
        self.rate = rate
        self._by_rate: dict[float, SimulatedSampler] = {}

    async def sample(self, step_input: Any, index: int) -> RawSample:
        rate = round(min(max(self.rate(step_input), 0.0), 1.0), 5)
        sampler = self._by_rate.get(rate)
        if sampler is None:
            sampler = self._by_rate[rate] = self.make(rate)
        return await sampler.sample(step_input, index)


def simulated_models(
    errors: RoleErrors | None = None,
    *,
    kind: str = "sampler",
    leaf_digits: int = 3,
    scaling: DigitErrorScaling | None = None,
    input_tokens: bool = False,
) -> dict[str, Any]:
    """Simulated agents for the four roles, right or wrong as `errors` says.

    Args:
        errors: the error model of each role (default: `RoleErrors()`, 5 % each).
        kind: `"sampler"` (fast `SimulatedSampler`s, answers as JSON text) or `"chat"`
            (`SimulatedChatModel`s: real LangChain chat models with structured output).
        leaf_digits: factors this short are solved directly by the simulated decomposer.
        scaling: make each call's error rate grow with its digit work (samplers only);
            replaces the error rates of `errors`, keeping their other settings.
        input_tokens: report the prompt's token count per call (for cost figures).

    Example:
        >>> sorted(simulated_models(RoleErrors.uniform(0.01)))
        ['composer', 'decomposer', 'discriminator', 'solver']
    """
    errors = errors or RoleErrors()
    if kind not in ("sampler", "chat"):
        raise ConfigurationError(f"kind must be 'sampler' or 'chat', got {kind!r}")
    if scaling is not None and kind != "sampler":
        raise ConfigurationError("scaling is only supported with kind='sampler'")
    models: dict[str, Any] = {}
    for role in ROLES:
        schema, right, wrong = _ORACLES[role]
        model = errors.of(role)
        if kind == "chat":
            models[role] = SimulatedChatModel(
                oracle=_chat_oracle(schema, right, leaf_digits),
                wrong=_chat_wrong(schema, wrong, leaf_digits),
                errors=model,
                model_name=f"simulated-{role}",
            )
            continue

        maker = _SamplerMaker(role, model, leaf_digits, input_tokens)
        if scaling is None:
            models[role] = maker(model.error_rate)
        else:
            models[role] = _ScaledSampler(maker, _RoleRate(scaling, role))
    return models


class _SamplerMaker:
    """Builds the `SimulatedSampler` of one role at a given error rate."""

    def __init__(self, role: str, model: ErrorModel, leaf_digits: int, tokens: bool) -> None:
        self.role, self.model, self.leaf_digits = role, model, leaf_digits
        self.right, self.wrong = _ORACLES[role][1], _ORACLES[role][2]
        self.tokens = _prompt_tokens(role, leaf_digits) if tokens else None

    def answer(self, step_input: Any) -> str:
        return _json(self.right(step_input, self.leaf_digits))

    def wrong_answer(self, step_input: Any, rival: int) -> str:
        return _json(self.wrong(step_input, rival, self.leaf_digits))

    def __call__(self, rate: float) -> SimulatedSampler:
        return SimulatedSampler(
            self.answer,
            wrong=self.wrong_answer,
            errors=replace(self.model, error_rate=rate),
            input_tokens=self.tokens or 0,
            model_name=f"simulated-{self.role}",
        )


class _RoleRate:
    def __init__(self, scaling: DigitErrorScaling, role: str) -> None:
        self.scaling, self.role = scaling, role

    def __call__(self, step_input: Any) -> float:
        return self.scaling.rate(self.role, step_input)


def _chat_oracle(
    schema: type[BaseModel], right: Callable[..., BaseModel], leaf_digits: int
) -> Callable[[list[BaseMessage]], str]:
    def oracle(messages: list[BaseMessage]) -> str:
        return _json(right(input_from_messages(messages, schema), leaf_digits))

    return oracle


def _chat_wrong(
    schema: type[BaseModel], wrong: Callable[..., BaseModel], leaf_digits: int
) -> Callable[[list[BaseMessage], int], str]:
    def make_wrong(messages: list[BaseMessage], rival: int) -> str:
        return _json(wrong(input_from_messages(messages, schema), rival, leaf_digits))

    return make_wrong


def _prompt_tokens(role: str, leaf_digits: int) -> Callable[[Any], int]:
    from ..recursive.prompts import (
        composer_prompt,
        decomposer_prompt,
        discriminator_prompt,
        solver_prompt,
    )
    from ..tokens import count_tokens

    builders: dict[str, Callable[[str], Callable[[Any], list[BaseMessage]]]] = {
        "decomposer": decomposer_prompt, "discriminator": discriminator_prompt,
        "solver": solver_prompt, "composer": composer_prompt,
    }
    build = builders[role](guidance(leaf_digits)[role])
    cache: dict[str, int] = {}

    def tokens(step_input: Any) -> int:
        key = step_input.model_dump_json()
        n = cache.get(key)
        if n is None:
            n = cache[key] = sum(count_tokens(str(m.content)) for m in build(step_input))
        return n

    return tokens


# --------------------------------------------------------------------------- running


@dataclass(frozen=True, slots=True)
class ProductResult:
    """One product computed by the tree, checked against Python's integers.

    Attributes:
        a: the first factor.
        b: the second factor.
        answer: the tree's answer as an int (None when it was not a number).
        correct: whether it equals `a * b` exactly.
        tree_id: the tree's id in the record.
        stats: nodes, leaves, depth, samples and discriminator votes of the tree.
        nodes: the tree as kept in the graph state.
    """

    a: int
    b: int
    answer: int | None
    correct: bool
    tree_id: str
    stats: dict[str, Any]
    nodes: dict[str, Any]

    @property
    def samples(self) -> int:
        return int(self.stats.get("samples", 0))


class Multiplier:
    """Multiplies pairs of integers with a recursive decomposition graph built once.

    Args:
        roles: the four roles (see `multiplication_roles`).
        policy: depth, candidates, fan-out and budgets (default: depth 8, 3 candidates,
            fan-out 4).
        recorder: receives every tree's events.

    Example:
        >>> m = Multiplier(multiplication_roles(simulated_models(RoleErrors.uniform(0.05))))
        >>> m.multiply_sync(123456, 654321).correct
        True
    """

    def __init__(
        self,
        roles: Roles,
        *,
        policy: RecursionPolicy | None = None,
        recorder: TreeRecorder | None = None,
    ) -> None:
        self.policy = policy or RecursionPolicy(max_depth=8)
        self.graph = create_recursive_graph(roles, policy=self.policy, recorder=recorder).compile()

    async def multiply(self, a: int, b: int, *, tree_id: str | None = None) -> ProductResult:
        """Compute `a * b` through the tree and check it exactly.

        Raises:
            ConfigurationError: a factor is negative.
            MakerRuntimeError: a node failed (its budget ran out, a vote had no consensus).
        """
        if a < 0 or b < 0:
            raise ConfigurationError(f"factors must be non-negative integers, got {a} and {b}")
        inputs: dict[str, Any] = {"problem": problem_text(a, b)}
        if tree_id is not None:
            inputs["tree_id"] = tree_id
        config: Any = {"recursion_limit": 10_000}
        out: dict[str, Any] = await self.graph.ainvoke(inputs, config)  # type: ignore[call-overload]
        text = str(out.get("answer") or "").strip()
        answer = int(text) if text.isdigit() else None
        return ProductResult(
            a=a, b=b, answer=answer, correct=answer == a * b,
            tree_id=str(out.get("tree_id", "")), stats=dict(out.get("stats") or {}),
            nodes=dict(out.get("nodes") or {}),
        )

    def multiply_sync(self, a: int, b: int, *, tree_id: str | None = None) -> ProductResult:
        """Synchronous `multiply` (runs on maker_graph's long-lived background loop)."""
        from .._sync import run_sync

        return run_sync(self.multiply(a, b, tree_id=tree_id))


# --------------------------------------------------------------------------- auditing


@dataclass
class RoleAudit:
    """Per-sample and per-vote outcomes of one role over recorded trees, checked exactly.

    Attributes:
        votes: votes (or decomposer draws) the role took part in.
        samples: samples drawn, red-flagged ones included.
        red_flagged: samples the red flags discarded.
        wrong_samples: valid samples whose answer was wrong.
        wrong_votes: votes whose winner was wrong (for the decomposer: nodes where
            every valid proposal was wrong).
        samples_per_vote: samples drawn by each vote, for spreads.
    """

    votes: int = 0
    samples: int = 0
    red_flagged: int = 0
    wrong_samples: int = 0
    wrong_votes: int = 0
    samples_per_vote: list[int] = field(default_factory=list)

    @property
    def valid(self) -> int:
        return self.samples - self.red_flagged

    def add_vote(self, vote: Mapping[str, Any], wrong: Callable[[str], bool]) -> None:
        self.votes += 1
        drawn = int(vote.get("samples_drawn", 0))
        self.samples += drawn
        self.samples_per_vote.append(drawn)
        for sample in vote.get("samples", []):
            if sample.get("red_flag"):
                self.red_flagged += 1
            elif wrong(sample.get("text", "")):
                self.wrong_samples += 1


def _differs(read: Callable[[str], Hashable], want: Hashable, text: str) -> bool:
    return read(text) != want


def audit(trees: Any) -> dict[str, RoleAudit]:
    """Check every recorded sample and vote of multiplication trees against exact arithmetic.

    Args:
        trees: `TreeView`s (from `load_trees` or `load_events`) recorded with samples.

    Returns:
        One `RoleAudit` per role.

    Example:
        >>> from maker_graph.recursive import MemoryTreeRecorder, load_events
        >>> rec = MemoryTreeRecorder()
        >>> m = Multiplier(multiplication_roles(simulated_models(RoleErrors.uniform(0.0))),
        ...                recorder=rec)
        >>> _ = m.multiply_sync(123456, 654321)
        >>> audit(load_events(rec.events))["solver"].votes
        4
    """
    from ..recursive.parsers import structured_parser

    parse_split = structured_parser(Decomposition)
    parse_choice = structured_parser(Choice)
    parse_answer = structured_parser(Answer)
    out = {role: RoleAudit() for role in ROLES}

    def answer_value(text: str) -> Hashable:
        return int(parse_answer(text).answer)

    def split_key(text: str) -> Hashable:
        try:
            return canonical_split(parse_split(text))
        except ValueError:
            return None

    for tree in trees:
        for node in tree.nodes.values():
            right_split = canonical_split(true_split(node.problem))
            if node.proposals:
                draw = node.proposals.get("draw") or {}
                wrong_split_text = functools.partial(_differs, split_key, right_split)
                out["decomposer"].add_vote(draw, wrong_split_text)
                keys = []
                for cand in node.proposals.get("candidates", []):
                    keys.append(canonical_split(Decomposition.model_validate(
                        cand["decomposition"])))
                if keys and right_split not in keys:
                    out["decomposer"].wrong_votes += 1
            choice = node.choice or {}
            if choice.get("chosen_by") == "vote" and node.proposals:
                cands = [Decomposition.model_validate(c["decomposition"])
                         for c in node.proposals.get("candidates", [])]
                right = true_choice(DiscriminateInput(problem=node.problem, candidates=cands))
                right_key = canonical_split(cands[right.choice - 1])

                def wrong_choice_text(text: str, c: list[Decomposition] = cands,
                                      want: Hashable = right_key) -> bool:
                    pick = parse_choice(text).choice
                    return not 1 <= pick <= len(c) or canonical_split(c[pick - 1]) != want

                out["discriminator"].add_vote(choice.get("vote") or {}, wrong_choice_text)
                chosen = Decomposition.model_validate(choice.get("decomposition") or {})
                if canonical_split(chosen) != right_key:
                    out["discriminator"].wrong_votes += 1
            if node.answer_event:
                role = str(node.answer_event.get("role"))
                if role == "solver":
                    a, b = parse_problem(node.problem)
                    truth = int(a) * int(b)
                else:
                    plan = node.decomposition or {}
                    kids = [tree.nodes[c].answer for c in node.children]
                    truth = evaluate_composition(plan.get("composition", ""),
                                                 [int(x or 0) for x in kids])
                out[role].add_vote(node.answer_event.get("vote") or {},
                                   functools.partial(_differs, answer_value, truth))
                if int(node.answer or -1) != truth:
                    out[role].wrong_votes += 1
    return out
