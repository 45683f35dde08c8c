"""How a node of a decomposition tree fails, and how that failure travels as data.

A failing tree node must not cancel its siblings (they may be mid-call), so a
role's error is caught in its branch, stored in the graph state as a plain
`Failure` dict, and raised again, whole, once the superstep has finished. Every
message starts with the node's id and role, so the user knows where to look.

Example:
    >>> err = NodeBudgetExhaustedError(node="0.1", role="composer", problem="12 × 345",
    ...                                limit=20, spent=20)
    >>> str(err).split(":")[0]
    'node 0.1 (composer, 12 × 345)'
"""

from __future__ import annotations

from typing import Any

# typing_extensions, not typing: LangGraph's server reads key docs and schemas from it on
# Python < 3.12.
from typing_extensions import TypedDict

from .._util import clip
from ..errors import BudgetExhaustedError, MakerRuntimeError, NoConsensusError, SamplerError

__all__ = ["Failure", "NodeBudgetExhaustedError", "failure_from_error", "raise_failure"]

NODE_BUDGET_FLAG = "RecursionPolicy.max_samples_per_node (CLI: --max-samples-per-node)"


class NodeBudgetExhaustedError(BudgetExhaustedError):
    """A tree node spent its sample budget (all roles together) before it was decided.

    Attributes:
        node: the node's id (`"0"` is the root, `"0.1"` its second child).
        role: the role that was voting when the budget ran out.
        problem: the node's problem.
        tally: the votes of that role's vote when it stopped.
        red_flags: its red-flagged samples by reason.
    """

    def __init__(
        self,
        *,
        node: str,
        role: str,
        problem: str,
        limit: int,
        spent: int,
        tally: dict[str, int] | None = None,
        red_flags: dict[str, int] | None = None,
    ) -> None:
        self.node = node
        self.role = role
        self.problem = problem
        self.tally = dict(tally or {})
        self.budget = "samples per node"
        self.limit = limit
        self.spent = spent
        self.flag = NODE_BUDGET_FLAG
        self.steps_done = None
        self.red_flags = dict(red_flags or {})
        top = sorted(self.tally.items(), key=lambda kv: -kv[1])[:3]
        shown = ", ".join(f"{key}: {n}" for key, n in top) or "no valid votes"
        flags = f"; red flags {self.red_flags}" if self.red_flags else ""
        MakerRuntimeError.__init__(
            self,
            f"node {node} ({role}, {clip(problem)}): its sample budget is spent "
            f"({spent} of {limit} samples; last vote {shown}{flags}). "
            f"Raise {NODE_BUDGET_FLAG}.",
        )


class Failure(TypedDict, total=False):
    """A node's failure as graph-state data (JSON-serialisable)."""

    node: str
    role: str
    problem: str
    kind: str  # "node_budget" | "no_consensus" | "sampler" | "tree_budget" | "error"
    message: str
    tally: dict[str, int]
    red_flags: dict[str, int]
    samples_drawn: int
    max_samples: int
    limit: int
    spent: int
    k: int


def _str_tally(tally: dict[Any, int]) -> dict[str, int]:
    return {k if isinstance(k, str) else repr(k): n for k, n in tally.items()}


def failure_from_error(exc: BaseException, *, node: str, role: str, problem: str) -> Failure:
    """Turn a role's exception into a `Failure` record."""
    base: Failure = {"node": node, "role": role, "problem": problem, "message": str(exc)}
    if isinstance(exc, NodeBudgetExhaustedError):
        return {
            **base,
            "kind": "node_budget",
            "tally": exc.tally,
            "red_flags": exc.red_flags,
            "limit": int(exc.limit),
            "spent": int(exc.spent),
        }
    if isinstance(exc, NoConsensusError):
        return {
            **base,
            "kind": "no_consensus",
            "tally": _str_tally(exc.tally),
            "red_flags": exc.red_flags,
            "samples_drawn": exc.samples_drawn,
            "max_samples": exc.max_samples,
            "k": exc.k or 0,
        }
    if isinstance(exc, BudgetExhaustedError):
        return {**base, "kind": "tree_budget", "limit": int(exc.limit), "spent": int(exc.spent)}
    if isinstance(exc, SamplerError):
        return {**base, "kind": "sampler"}
    return {**base, "kind": "error", "message": f"{type(exc).__name__}: {exc}"}


def raise_failure(failures: list[Failure]) -> None:
    """Raise the first failure (in node order) as its error; mention how many others there were."""
    if not failures:
        return
    first = sorted(failures, key=lambda f: _node_order(f.get("node", "")))[0]
    others = len(failures) - 1
    also = f" ({others} other node(s) failed too; see the tree record)" if others else ""
    kind = first.get("kind")
    node, role, problem = first.get("node", "?"), first.get("role", "?"), first.get("problem", "")
    if kind == "node_budget":
        err: MakerRuntimeError = NodeBudgetExhaustedError(
            node=node,
            role=role,
            problem=problem,
            limit=first.get("limit", 0),
            spent=first.get("spent", 0),
            tally=first.get("tally"),
            red_flags=first.get("red_flags"),
        )
    elif kind == "no_consensus":
        err = NoConsensusError(
            first.get("tally", {}),
            first.get("samples_drawn", 0),
            first.get("max_samples", 0),
            red_flags=first.get("red_flags"),
            step=f"node {node} ({role}, {clip(problem)})",
            k=first.get("k") or None,
        )
    elif kind == "tree_budget":
        err = BudgetExhaustedError(
            "tree nodes",
            first.get("limit", 0),
            first.get("spent", 0),
            "RecursionPolicy.max_nodes (CLI: --max-nodes)",
        )
    elif kind == "sampler":
        err = SamplerError(first.get("message", ""), {}, None)
    else:
        err = MakerRuntimeError(f"node {node} ({role}): {first.get('message', '')}")
    if also:
        err.args = (f"{err.args[0]}{also}",) + err.args[1:]
    raise err


def _node_order(node: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in node.split("."))
    except ValueError:
        return (1 << 30,)
