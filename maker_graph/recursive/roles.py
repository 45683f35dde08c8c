"""The four agent roles of recursive decomposition, each voting through `Voter`.

- `Decomposer.propose`: draws proposals until it holds `candidates` valid ones
  (a red-flagged proposal is redrawn), then merges equivalent proposals.
- `Discriminator.choose`: first-to-ahead-by-k vote over candidate
  decompositions; a vote is keyed by the *canonical form* of the chosen
  candidate, so votes for equivalent candidates collide.
- `Solver.solve`: a voted, red-flagged answer to a leaf problem.
- `Composer.compose`: a voted answer combining the sub-answers.

A `Role` says how one role samples (any chat model, Runnable, function or
`Sampler`), prompts, parses, checks and votes; every part has a working
default with structured (pydantic) output. These classes are plain asyncio;
`maker_graph.recursive.nodes` wraps them as LangGraph nodes and
`maker_graph.recursive.graph` drives a whole tree with them.

Example:
    >>> import asyncio
    >>> solver = Solver(Role(model=lambda inp: '{"answer": "408"}'))
    >>> asyncio.run(solver.solve("12 × 34")).winner.answer
    '408'
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._util import clip
from ..errors import ConfigurationError, NoConsensusError
from ..records import StepResult
from ..voting import KeyFunction
from ._role_runner import Canonical, NodeAllowance, Role, RoleRunner
from ._role_runner import is_chat_rotation as _is_chat_model  # noqa: F401 - tests read it here
from .parsers import answer_key, canonical_decomposition, check_decomposition
from .prompts import composer_prompt, decomposer_prompt, discriminator_prompt, solver_prompt
from .schemas import (
    Answer,
    Choice,
    ComposeInput,
    DecomposeInput,
    Decomposition,
    DiscriminateInput,
    Part,
    SolveInput,
)

__all__ = [
    "Candidate",
    "Composer",
    "Decomposer",
    "Discriminator",
    "NodeAllowance",
    "Proposals",
    "Role",
    "Roles",
    "Solver",
]

# --------------------------------------------------------------------------- decomposer


@dataclass(frozen=True, slots=True)
class Candidate:
    """One distinct proposal and who proposed it.

    Attributes:
        decomposition: the proposal (as the first proposer wrote it).
        key: its canonical vote key.
        proposers: the sample indices of every proposal equivalent to it.
    """

    decomposition: Decomposition
    key: Hashable
    proposers: tuple[int, ...]


@dataclass(slots=True)
class Proposals:
    """What a decomposer produced for one problem.

    Attributes:
        candidates: the distinct valid proposals, in the order first proposed.
        result: the draw behind them (every sample, red flags by reason, tokens).
    """

    candidates: list[Candidate]
    result: StepResult

    @property
    def unanimous(self) -> bool:
        """True when every valid proposal was equivalent: nothing left to choose."""
        return len(self.candidates) == 1


class Decomposer(RoleRunner[Decomposition]):
    """Proposes decompositions of a problem: solve directly, or split into subproblems.

    Every valid proposal counts towards `candidates`; red-flagged ones (bad
    shape, no progress, an unused sub-answer, a task check) are redrawn, within
    the role's per-vote sample budget.

    Args:
        role: how to sample, prompt, parse and check.
        candidates: valid proposals to collect per problem.
        max_fanout: most subproblems one split may have.
        canonical: proposal -> key; equivalent proposals must get equal keys.
        guidance: task know-how appended to the default prompt.

    Example:
        >>> import asyncio, json
        >>> split = json.dumps({"subproblems": ["a", "b"], "composition": "#1 + #2"})
        >>> d = Decomposer(Role(model=lambda inp: split), candidates=2)
        >>> len(asyncio.run(d.propose("a and b")).candidates)
        1
    """

    name = "decomposer"
    schema = Decomposition
    flag_reason = "invalid_split"

    def __init__(
        self,
        role: Role,
        *,
        candidates: int = 3,
        max_fanout: int = 4,
        canonical: Canonical = canonical_decomposition,
        guidance: str = "",
    ) -> None:
        if candidates < 1:
            raise ConfigurationError(f"candidates must be >= 1, got {candidates}")
        if max_fanout < 2:
            raise ConfigurationError(f"max_fanout must be >= 2, got {max_fanout}")
        super().__init__(role, decomposer_prompt(guidance, max_fanout=max_fanout))
        self.candidates = candidates
        self.max_fanout = max_fanout
        self.canonical = canonical

    def _builtin(self, step_input: DecomposeInput, proposal: Any) -> str | None:
        if not isinstance(proposal, Decomposition):
            return f"expected a Decomposition, got {type(proposal).__name__}"
        return check_decomposition(step_input.problem, proposal, max_fanout=self.max_fanout)

    def _final_check(self, step_input: Any, proposal: Any) -> str | None:
        try:
            self.canonical(proposal)
        except Exception as exc:  # noqa: BLE001 - a proposal that cannot be keyed cannot vote
            return f"cannot be put in canonical form: {type(exc).__name__}: {exc}"
        return None

    async def propose(
        self, problem: str, *, node: str | None = None, budget: NodeAllowance | None = None
    ) -> Proposals:
        """Collect `candidates` valid proposals and merge the equivalent ones.

        Raises:
            NoConsensusError: the per-vote sample budget ran out first.
            NodeBudgetExhaustedError: the node's budget ran out first.
        """
        # Every valid proposal votes for the same key, so the draw ends exactly when
        # `candidates` valid proposals are in; red-flagged ones are redrawn as in any vote.
        result = await self._vote(
            DecomposeInput(problem=problem),
            key=lambda _proposal: "proposal",
            builtin=self._builtin,
            node=node,
            problem=problem,
            budget=budget,
            k=self.candidates,
            keep_samples=True,
        )
        groups: dict[Hashable, tuple[Decomposition, list[int]]] = {}
        for sample in result.samples:
            if sample.valid:
                key = self.canonical(sample.value)
                if key in groups:
                    groups[key][1].append(sample.index)
                else:
                    groups[key] = (sample.value, [sample.index])
        if not groups and isinstance(result.winner, Decomposition):
            # An escalation handler (a human, a stronger model) proposed the split itself.
            groups[self.canonical(result.winner)] = (result.winner, [])
        if not groups:
            raise NoConsensusError(
                result.tally,
                result.samples_drawn,
                self.role.policy.budget,
                red_flags=result.red_flags,
                k=self.candidates,
                step=f"node {node} (decomposer, {clip(problem)}): no valid proposal",
            )
        candidates = [Candidate(d, key, tuple(ix)) for key, (d, ix) in groups.items()]
        return Proposals(candidates, result)


# --------------------------------------------------------------------------- discriminator


class Discriminator(RoleRunner[Choice]):
    """Chooses one candidate decomposition by first-to-ahead-by-k voting.

    A vote for candidate `i` is keyed by `canonical(candidates[i])`, not by `i`:
    when two listed candidates are equivalent, votes for either count together.

    Example:
        >>> import asyncio
        >>> c = [Decomposition(solve_directly=True),
        ...      Decomposition(subproblems=["a", "b"], composition="#1+#2")]
        >>> from maker_graph.vote import VotePolicy
        >>> disc = Discriminator(Role(model=lambda inp: '{"choice": 2}', policy=VotePolicy(k=2)))
        >>> decomposition, result = asyncio.run(disc.choose("a and b", c))
        >>> decomposition.subproblems, result.samples_drawn
        (['a', 'b'], 2)
    """

    name = "discriminator"
    schema = Choice
    flag_reason = "invalid_choice"

    def __init__(
        self, role: Role, *, canonical: Canonical = canonical_decomposition, guidance: str = ""
    ) -> None:
        super().__init__(role, discriminator_prompt(guidance))
        self.canonical = canonical

    async def choose(
        self,
        problem: str,
        candidates: Sequence[Decomposition],
        *,
        node: str | None = None,
        budget: NodeAllowance | None = None,
    ) -> tuple[Decomposition, StepResult]:
        """Vote for the best candidate; returns it and the vote.

        Raises:
            ConfigurationError: no candidates.
            NoConsensusError: the per-vote sample budget ran out first.
            NodeBudgetExhaustedError: the node's budget ran out first.
        """
        if not candidates:
            raise ConfigurationError("the discriminator needs at least one candidate")
        keys = [self.canonical(c) for c in candidates]
        first_of: dict[Hashable, Decomposition] = {}
        for key_, cand in zip(keys, candidates, strict=True):
            first_of.setdefault(key_, cand)
        n = len(candidates)

        def key(choice: Choice) -> Hashable:
            if 1 <= choice.choice <= n:
                return keys[choice.choice - 1]
            return ("out of range", choice.choice)

        def in_range(step_input: Any, choice: Any) -> str | None:
            if not isinstance(choice, Choice):
                return f"expected a Choice, got {type(choice).__name__}"
            if not 1 <= choice.choice <= n:
                return f"choice {choice.choice} is not a candidate number (1..{n})"
            return None

        result = await self._vote(
            DiscriminateInput(problem=problem, candidates=list(candidates)),
            key=key,
            builtin=in_range,
            node=node,
            problem=problem,
            budget=budget,
        )
        winner = result.winner
        if isinstance(winner, Choice) and 1 <= winner.choice <= n:
            return first_of[keys[winner.choice - 1]], result
        if isinstance(winner, Decomposition):  # an escalation handler may answer directly
            return winner, result
        raise NoConsensusError(
            result.tally,
            result.samples_drawn,
            self.role.policy.budget,
            red_flags=result.red_flags,
            step=f"node {node} (discriminator)",
            k=result.k,
        )


# --------------------------------------------------------------------------- solver, composer


def _answer_check(step_input: Any, answer: Any) -> str | None:
    if not isinstance(answer, Answer):
        return f"expected an Answer, got {type(answer).__name__}"
    if not answer.answer.strip():
        return "the answer is empty"
    return None


class Solver(RoleRunner[Answer]):
    """Answers a leaf problem by a voted, red-flagged step.

    Example:
        >>> import asyncio
        >>> from maker_graph.vote import VotePolicy
        >>> s = Solver(Role(model=lambda inp: '{"answer": "6"}', policy=VotePolicy(k=2)))
        >>> asyncio.run(s.solve("2 × 3")).winner
        Answer(answer='6')
    """

    name = "solver"
    schema = Answer

    def __init__(self, role: Role, *, guidance: str = "") -> None:
        super().__init__(role, solver_prompt(guidance))
        self.key: KeyFunction = role.key or answer_key  # type: ignore[assignment]

    async def solve(
        self, problem: str, *, node: str | None = None, budget: NodeAllowance | None = None
    ) -> StepResult:
        """Vote an answer for `problem`; the winner is an `Answer`.

        Raises:
            NoConsensusError: the per-vote sample budget ran out first.
            NodeBudgetExhaustedError: the node's budget ran out first.
        """
        return await self._vote(
            SolveInput(problem=problem),
            key=self.key,
            builtin=_answer_check,
            node=node,
            problem=problem,
            budget=budget,
        )


class Composer(RoleRunner[Answer]):
    """Combines sub-answers into a problem's answer by a voted step.

    Example:
        >>> import asyncio
        >>> from maker_graph.vote import VotePolicy
        >>> c = Composer(Role(model=lambda inp: '{"answer": "3"}', policy=VotePolicy(k=1)))
        >>> parts = [Part(problem="1", answer="1"), Part(problem="2", answer="2")]
        >>> asyncio.run(c.compose("1 + 2", "#1 + #2", parts)).winner.answer
        '3'
    """

    name = "composer"
    schema = Answer

    def __init__(self, role: Role, *, guidance: str = "") -> None:
        super().__init__(role, composer_prompt(guidance))
        self.key: KeyFunction = role.key or answer_key  # type: ignore[assignment]

    async def compose(
        self,
        problem: str,
        composition: str,
        parts: Sequence[Part],
        *,
        node: str | None = None,
        budget: NodeAllowance | None = None,
    ) -> StepResult:
        """Vote the answer of `problem` from its solved `parts`; the winner is an `Answer`.

        Raises:
            NoConsensusError: the per-vote sample budget ran out first.
            NodeBudgetExhaustedError: the node's budget ran out first.
        """
        return await self._vote(
            ComposeInput(problem=problem, composition=composition, parts=list(parts)),
            key=self.key,
            builtin=_answer_check,
            node=node,
            problem=problem,
            budget=budget,
        )


# --------------------------------------------------------------------------- the set


@dataclass(frozen=True, kw_only=True)
class Roles:
    """The four roles of a recursive decomposition, and what makes proposals equivalent.

    Example:
        >>> fn = lambda inp: '{"answer": "1"}'
        >>> roles = Roles(decomposer=Role(model=fn), discriminator=Role(model=fn),
        ...               solver=Role(model=fn), composer=Role(model=fn))
    """

    decomposer: Role
    """Proposes splits (or says a problem is small enough to solve directly)."""
    discriminator: Role
    """Votes among the distinct proposals."""
    solver: Role
    """Answers leaf problems."""
    composer: Role
    """Combines sub-answers."""
    canonical: Canonical = canonical_decomposition
    """Proposal -> vote key; equivalent proposals must map to equal keys."""
    guidance: dict[str, str] = field(default_factory=dict)
    """Task know-how added to a role's default prompt, by role name."""

    def build(
        self, *, candidates: int = 3, max_fanout: int = 4
    ) -> tuple[Decomposer, Discriminator, Solver, Composer]:
        """The four role runners."""
        unknown = sorted(set(self.guidance) - {"decomposer", "discriminator", "solver", "composer"})
        if unknown:
            raise ConfigurationError(
                f"guidance for unknown role(s) {unknown}; "
                "use decomposer, discriminator, solver or composer"
            )
        g = self.guidance
        return (
            Decomposer(
                self.decomposer,
                candidates=candidates,
                max_fanout=max_fanout,
                canonical=self.canonical,
                guidance=g.get("decomposer", ""),
            ),
            Discriminator(
                self.discriminator, canonical=self.canonical, guidance=g.get("discriminator", "")
            ),
            Solver(self.solver, guidance=g.get("solver", "")),
            Composer(self.composer, guidance=g.get("composer", "")),
        )
