"""`Multiplier` (build the recursive graph once, multiply many pairs) and `audit`
(where in the trees each role erred).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import ConfigurationError
from ...recursive.graph import create_recursive_graph
from ...recursive.policy import RecursionPolicy
from ...recursive.record import TreeRecorder
from ...recursive.roles import Roles
from ...recursive.schemas import (
    Answer,
    Choice,
    Decomposition,
    DiscriminateInput,
)
from .notation import ROLES, canonical_split, evaluate_composition, parse_problem, problem_text
from .simulated import true_choice, true_split

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
        >>> from maker_graph.tasks.multiplication import (
        ...     RoleErrors, multiplication_roles, simulated_models)
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
            a=a,
            b=b,
            answer=answer,
            correct=answer == a * b,
            tree_id=str(out.get("tree_id", "")),
            stats=dict(out.get("stats") or {}),
            nodes=dict(out.get("nodes") or {}),
        )

    def multiply_sync(self, a: int, b: int, *, tree_id: str | None = None) -> ProductResult:
        """Synchronous `multiply` (runs on maker_graph's long-lived background loop)."""
        from ..._sync import run_sync

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
        >>> from maker_graph.tasks.multiplication import (
        ...     Multiplier, RoleErrors, multiplication_roles, simulated_models)
        >>> rec = MemoryTreeRecorder()
        >>> m = Multiplier(multiplication_roles(simulated_models(RoleErrors.uniform(0.0))),
        ...                recorder=rec)
        >>> _ = m.multiply_sync(123456, 654321)
        >>> audit(load_events(rec.events))["solver"].votes
        4
    """
    from ...recursive.parsers import structured_parser

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
                    keys.append(
                        canonical_split(Decomposition.model_validate(cand["decomposition"]))
                    )
                if keys and right_split not in keys:
                    out["decomposer"].wrong_votes += 1
            choice = node.choice or {}
            if choice.get("chosen_by") == "vote" and node.proposals:
                cands = [
                    Decomposition.model_validate(c["decomposition"])
                    for c in node.proposals.get("candidates", [])
                ]
                right = true_choice(DiscriminateInput(problem=node.problem, candidates=cands))
                right_key = canonical_split(cands[right.choice - 1])

                def wrong_choice_text(
                    text: str, c: list[Decomposition] = cands, want: Hashable = right_key
                ) -> bool:
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
                    truth = evaluate_composition(
                        plan.get("composition", ""), [int(x or 0) for x in kids]
                    )
                out[role].add_vote(
                    node.answer_event.get("vote") or {},
                    functools.partial(_differs, answer_value, truth),
                )
                if int(node.answer or -1) != truth:
                    out[role].wrong_votes += 1
    return out
