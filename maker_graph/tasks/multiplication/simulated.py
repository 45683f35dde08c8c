"""Simulated multiplication agents: each role's oracle, its rival wrong answers,
and `simulated_models`, which wires them to an `ErrorModel` per role so the whole
tree runs offline.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from langchain_core.messages import BaseMessage
from pydantic import BaseModel

from ...errors import ConfigurationError
from ...records import RawSample
from ...recursive.prompts import input_from_messages
from ...recursive.schemas import (
    Answer,
    Choice,
    ComposeInput,
    DecomposeInput,
    Decomposition,
    DiscriminateInput,
    SolveInput,
)
from ...testing import ErrorModel, SimulatedChatModel, SimulatedSampler
from .notation import (
    ROLES,
    canonical_split,
    digit_count,
    evaluate_composition,
    parse_composition,
    parse_problem,
    problem_text,
)
from .roles import guidance

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
        return Decomposition(subproblems=right.subproblems, composition=f"#1 * 10^{shift + 1} + #2")
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
    bound = digit_count(a) + digit_count(b)
    return Answer(answer=str(_slip(int(a) * int(b), rival, bound, step_input.problem)))


def true_composition(step_input: ComposeInput) -> Answer:
    """The simulated composer's correct answer: the composition evaluated on the parts."""
    answers = [int(p.answer) for p in step_input.parts]
    return Answer(answer=str(evaluate_composition(step_input.composition, answers)))


def wrong_composition(step_input: ComposeInput, rival: int) -> Answer:
    """A plausible wrong composition result (a one-digit slip), distinct per `rival`."""
    a, b = parse_problem(step_input.problem)
    right = int(true_composition(step_input).answer)
    bound = max(digit_count(a) + digit_count(b), len(str(right)))
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
        return 1.0 - (1.0 - self.per_digit_product) ** (digit_count(a) * digit_count(b))

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
    "decomposer": (
        DecomposeInput,
        lambda i, d: true_split(i.problem, d),
        lambda i, r, d: wrong_split(i.problem, r, d),
    ),
    "discriminator": (DiscriminateInput, true_choice, wrong_choice),
    "solver": (SolveInput, lambda i, d: true_product(i), lambda i, r, d: wrong_product(i, r)),
    "composer": (
        ComposeInput,
        lambda i, d: true_composition(i),
        lambda i, r, d: wrong_composition(i, r),
    ),
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
    from ...recursive.prompts import (
        composer_prompt,
        decomposer_prompt,
        discriminator_prompt,
        solver_prompt,
    )
    from ...tokens import count_tokens

    builders: dict[str, Callable[[str], Callable[[Any], list[BaseMessage]]]] = {
        "decomposer": decomposer_prompt,
        "discriminator": discriminator_prompt,
        "solver": solver_prompt,
        "composer": composer_prompt,
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
