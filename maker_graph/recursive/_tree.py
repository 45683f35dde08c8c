"""The decomposition tree as the recursive graph keeps it in its state, and its router.

`maker_graph.recursive.graph` re-exports the public names.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

from langgraph.types import Send

# typing_extensions, not typing: LangGraph's server reads key docs and schemas from it on
# Python < 3.12.
from typing_extensions import NotRequired, TypedDict  # noqa: UP035

from ..records import StepResult
from .failures import Failure

ROOT = "0"
"""The root's node id; a child of node `n` is `n.i`."""


class TreeNode(TypedDict, total=False):
    """One node of the decomposition tree as kept in the graph state."""

    id: str
    parent: str | None
    depth: int
    problem: str
    status: str
    """`pending` (needs a decomposer), `proposed` (needs the discriminator), `planned`
    (decomposition chosen), `leaf` (needs the solver), `split` (waits for its children,
    then the composer), `answered`."""
    candidates: list[dict[str, Any]]
    decomposition: dict[str, Any] | None
    chosen_by: str
    """`unanimous`, `vote` or `depth_limit`."""
    children: list[str]
    answer: str | None
    samples: int
    """Samples drawn at this node, all roles together."""
    input_tokens: int
    """Prompt tokens of those samples (as reported by the model, 0 when it reports none)."""
    output_tokens: int
    """Completion tokens of those samples."""


def merge_nodes(
    left: dict[str, TreeNode] | None, right: dict[str, TreeNode] | None
) -> dict[str, TreeNode]:
    """Reducer of the tree: each update's fields overwrite that node's fields.

    Parallel branches each write their own node, so their updates never collide.
    """
    merged: dict[str, TreeNode] = dict(left or {})
    for node_id, update in (right or {}).items():
        merged[node_id] = {**merged.get(node_id, {}), **update}  # type: ignore[typeddict-item]
    return merged


class RecursiveState(TypedDict, total=False):
    """The graph state: the problem, the tree, failures and the final answer."""

    problem: str
    tree_id: str
    nodes: Annotated[dict[str, TreeNode], merge_nodes]
    failures: Annotated[list[Failure], operator.add]
    answer: str | None
    stats: dict[str, Any]
    last_tree_id: str


class RecursiveInput(TypedDict):
    """What the graph takes: the problem, and optionally the tree's id in the record."""

    problem: str
    tree_id: NotRequired[str]


class RecursiveOutput(TypedDict, total=False):
    """What the graph returns."""

    answer: str | None
    tree_id: str
    nodes: dict[str, TreeNode]
    stats: dict[str, Any]


def order(node_id: str) -> tuple[int, ...]:
    """Sort key of node ids: parents before children, siblings in order."""
    return tuple(int(p) for p in node_id.split("."))


def recursion_condition(state: RecursiveState, *, max_depth: int) -> list[Send] | str:
    """Dispatch every ready piece of work, one `Send` per tree node; `finish` when done.

    Example:
        >>> recursion_condition({"nodes": {"0": {"id": "0", "status": "answered",
        ...                                      "answer": "6"}}}, max_depth=2)
        'finish'
    """
    nodes = state.get("nodes") or {}
    if state.get("failures") or not nodes:
        return "finish"
    root = nodes.get(ROOT, {})
    if root.get("answer") is not None:
        return "finish"
    tree_id = state.get("tree_id", "")
    sends: list[Send] = []
    for node_id in sorted(nodes, key=order):
        node = nodes[node_id]
        status = node.get("status")
        if status == "pending":
            target = "solver" if node.get("depth", 0) >= max_depth else "decomposer"
            sends.append(Send(target, {"node": node, "tree_id": tree_id}))
        elif status == "proposed":
            sends.append(Send("discriminator", {"node": node, "tree_id": tree_id}))
        elif status == "leaf":
            sends.append(Send("solver", {"node": node, "tree_id": tree_id}))
        elif status == "split":
            children = [nodes.get(c, {}) for c in node.get("children", [])]
            if all(c.get("answer") is not None for c in children):
                parts = [{"problem": c["problem"], "answer": c["answer"]} for c in children]
                sends.append(Send("composer", {"node": node, "tree_id": tree_id, "parts": parts}))
    # Nothing ready and no answer would mean a stuck tree; finish reports it.
    return sends or "finish"


def new_node(node_id: str, parent: str | None, depth: int, problem: str) -> TreeNode:
    """A tree node that waits for its decomposer (or, at the depth limit, its solver)."""
    return {
        "id": node_id,
        "parent": parent,
        "depth": depth,
        "problem": problem,
        "status": "pending",
        "children": [],
        "answer": None,
        "samples": 0,
    }


def spent(node: TreeNode, vote: StepResult) -> TreeNode:
    """The node's running totals after one more vote."""
    return {
        "samples": int(node.get("samples", 0)) + vote.samples_drawn,
        "input_tokens": int(node.get("input_tokens", 0)) + vote.input_tokens,
        "output_tokens": int(node.get("output_tokens", 0)) + vote.output_tokens,
    }


def tree_stats(nodes: dict[str, TreeNode]) -> dict[str, Any]:
    """The tree's totals returned as the graph's `stats`."""
    samples = sum(int(n.get("samples", 0)) for n in nodes.values())
    tokens_in = sum(int(n.get("input_tokens", 0)) for n in nodes.values())
    tokens_out = sum(int(n.get("output_tokens", 0)) for n in nodes.values())
    depth = max((int(n.get("depth", 0)) for n in nodes.values()), default=0)
    leaves = sum(1 for n in nodes.values() if not n.get("children"))
    votes = sum(1 for n in nodes.values() if n.get("chosen_by") == "vote")
    return {
        "nodes": len(nodes),
        "leaves": leaves,
        "depth": depth,
        "samples": samples,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "discriminator_votes": votes,
    }
