"""What every role shares: `Role` (how it samples, parses, checks and votes), its
runner's budgeted vote, and a tree node's sample allowance.

`maker_graph.recursive.roles` re-exports the public names.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from langchain_core.messages import BaseMessage
from pydantic import BaseModel

from .._util import clip
from ..errors import ConfigurationError, NoConsensusError, SamplerError
from ..records import StepResult
from ..red_flags import RedFlag, Verdict
from ..sampling import ChatModelSampler, Sampler, TemperatureSchedule, as_sampler, is_chat_model
from ..vote import EscalationHandler, VotePolicy, Voter
from ..voting import KeyFunction
from .failures import NodeBudgetExhaustedError
from .parsers import Check, structured_parser
from .schemas import Decomposition

Out = TypeVar("Out", bound=BaseModel)
Canonical = Callable[[Decomposition], Hashable]
"""Maps a proposal to its vote key: equivalent proposals must map to equal keys."""


@dataclass(frozen=True, kw_only=True)
class Role:
    """How one role samples, prompts, parses, checks and votes.

    Example:
        >>> from maker_graph.testing import SimulatedChatModel
        >>> role = Role(model=SimulatedChatModel(oracle=lambda m: '{"answer": "1"}'),
        ...             policy=VotePolicy(k=2))
    """

    model: Any
    """A chat model (or a list of them, rotated per sample to decorrelate errors), a
    `Sampler`, a Runnable or a function. Chat models get the role's prompt; anything
    else is called with the role's input model (e.g. `SolveInput`)."""
    prompt: Callable[[Any], list[BaseMessage]] | None = None
    """Builds a chat model's messages from the role's input (default: the role's prompt)."""
    parser: Callable[[Any], Any] | None = None
    """Raw output -> the role's output model; raising red-flags the sample
    (default: `structured_parser` of the role's schema)."""
    check: Check | None = None
    """Extra check with the role's input at hand: `(step_input, answer) -> reason | None`;
    a reason red-flags the sample. Runs after the role's built-in checks."""
    red_flags: Sequence[RedFlag] = ()
    """Checks that need only the sample (length, truncation, patterns)."""
    key: KeyFunction | None = None
    """Answer -> vote key (solver and composer; default: the answer text, spaces collapsed)."""
    policy: VotePolicy = field(default_factory=VotePolicy)
    """Margin k, per-vote sample budget and what happens when it is spent."""
    escalate: EscalationHandler | None = None
    """Called when the policy says `on_no_consensus="escalate"`."""
    structured: bool = True
    """Ask chat models for structured output; False parses JSON from the message text."""
    temperature: TemperatureSchedule | Callable[[int], float | None] | None = None
    """Temperature per sample index for chat models (default: 0 first, then 0.1)."""
    max_tokens: int | None = None
    """Output-token cap per chat-model call."""


def is_chat_rotation(obj: Any) -> bool:
    """True for a chat model or a non-empty list of them (a rotation)."""
    # A rotation is a list of chat models; each may be bound (`bind_tools`, ...).
    if isinstance(obj, (list, tuple)):
        return bool(obj) and all(is_chat_model(m) for m in obj)
    return is_chat_model(obj)


class RoleRunner(Generic[Out]):
    """The shared core of a role: its sampler, parser and a budgeted vote."""

    name = "role"
    schema: type[BaseModel] = BaseModel
    flag_reason = "invalid_answer"

    def __init__(self, role: Role, default_prompt: Callable[[Any], list[BaseMessage]]) -> None:
        if not isinstance(role, Role):
            raise ConfigurationError(
                f"{self.name} needs a Role(model=...), got {type(role).__name__}"
            )
        self.role = role
        if is_chat_rotation(role.model):
            self.sampler: Sampler = ChatModelSampler(
                role.model,
                prompt=role.prompt or default_prompt,
                temperature=role.temperature,
                max_tokens=role.max_tokens,
                structured=self.schema if role.structured else None,
            )
        else:
            self.sampler = as_sampler(role.model)
        self.parser: Callable[[Any], Any] = role.parser or structured_parser(self.schema)

    def _final_check(self, step_input: Any, value: Any) -> str | None:
        """Runs after the role's own check (the decomposer keys the proposal here)."""
        return None

    def _checks(self, step_input: Any, builtin: Check | None) -> list[RedFlag]:
        checks = [c for c in (builtin, self.role.check, self._final_check) if c is not None]
        reason = self.flag_reason

        def check_in_context(sample: Any) -> Verdict | None:
            for check in checks:
                try:
                    detail = check(step_input, sample.value)
                except Exception as exc:  # noqa: BLE001 - a check that cannot judge flags
                    detail = f"{type(exc).__name__}: {exc}"
                if detail:
                    return Verdict.flag(reason, str(detail))
            return None

        check_in_context.reason = reason  # type: ignore[attr-defined]
        return [check_in_context, *self.role.red_flags] if checks else list(self.role.red_flags)

    async def _vote(
        self,
        step_input: Any,
        *,
        key: KeyFunction,
        builtin: Check | None,
        node: str | None,
        problem: str,
        budget: NodeAllowance | None,
        k: int | None = None,
        keep_samples: bool | None = None,
    ) -> StepResult:
        """One vote, capped by what the tree node has left of its budget (None: no cap)."""
        policy = self.role.policy
        changes: dict[str, Any] = {}
        if k is not None:
            changes["k"] = k
            if policy.max_samples is not None and policy.max_samples < k:
                changes["max_samples"] = k
        if keep_samples is not None:
            changes["keep_samples"] = keep_samples
        if changes:
            policy = replace(policy, **changes)
        node_capped = budget is not None and budget.remaining < policy.budget
        if budget is not None and node_capped:
            if budget.remaining < policy.k:
                raise NodeBudgetExhaustedError(
                    node=node or "?",
                    role=self.name,
                    problem=problem,
                    limit=budget.limit,
                    spent=budget.spent,
                )
            # on_no_consensus is kept: a capped vote still raises, falls back or escalates.
            policy = replace(policy, max_samples=budget.remaining)
        voter = Voter(
            self.sampler,
            parser=self.parser,
            key=key,
            red_flags=self._checks(step_input, builtin),
            policy=policy,
            escalate=self.role.escalate,
        )
        where = f"node {node} ({self.name}, {clip(problem)})" if node is not None else self.name
        try:
            return await voter.vote(step_input, step=where)
        except NoConsensusError as exc:
            if budget is not None and node_capped:
                raise NodeBudgetExhaustedError(
                    node=node or "?",
                    role=self.name,
                    problem=problem,
                    limit=budget.limit,
                    spent=budget.spent + exc.samples_drawn,
                    tally={str(k_): n for k_, n in exc.tally.items()},
                    red_flags=exc.red_flags,
                ) from exc
            raise
        except SamplerError as exc:
            raise SamplerError(f"{where}: {exc}", exc.failures, exc.last) from exc


@dataclass(frozen=True, slots=True)
class NodeAllowance:
    """A tree node's sample budget: its limit and what its roles have spent so far.

    Example:
        >>> NodeAllowance(limit=40, spent=12).remaining
        28
    """

    limit: int
    spent: int = 0

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.spent)
