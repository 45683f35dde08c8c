"""Progress events `create_recursive_graph` writes to LangGraph's `custom` stream.

Every event is a plain JSON-serialisable dict with an `"event"` name, the tree's
id (`"tree"`) and the tree node's id (`"node"`: `"0"` is the root, `"0.1"` its
second child), so it can be shown, logged or sent to a browser as it is:

- `maker.tree.proposed`: a node's decomposition is chosen (`depth`, `parts`: number
  of subproblems, 0 for "solve directly"; `solve_directly`, `chosen_by`: `unanimous`,
  `vote` or `depth_limit`; `candidates`: distinct proposals; `samples`: the node's
  samples so far).
- `maker.tree.solved`: the solver answered a leaf (`depth`, `answer`, `samples`: the
  vote's samples).
- `maker.tree.composed`: the composer answered an inner node (`depth`, `answer`,
  `parts`, `samples`: the vote's samples).
- `maker.tree.failed`: a node failed (`role`, `reason`: the failure's kind, e.g.
  `node_budget`, `message`).

They are written from inside the graph's nodes with `langgraph.config.get_stream_writer`
(`maker_graph.graph._node.emit`): a no-op unless the graph is streamed with
`stream_mode="custom"`. A parent graph that embeds the recursive graph as a
sub-graph sees them with `stream_mode="custom", subgraphs=True`.

Example:
    >>> solved_event("t1", "0.1", depth=1, answer="42", samples=3)["event"]
    'maker.tree.solved'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "TREE_EVENT_NAMES",
    "composed_event",
    "failed_event",
    "proposed_event",
    "solved_event",
]

TREE_EVENT_NAMES = (
    "maker.tree.proposed",
    "maker.tree.solved",
    "maker.tree.composed",
    "maker.tree.failed",
)


def proposed_event(
    tree: str,
    node: str,
    *,
    depth: int,
    decomposition: dict[str, Any],
    chosen_by: str,
    candidates: int,
    samples: int,
) -> dict[str, Any]:
    parts = list(decomposition.get("subproblems") or [])
    solve_directly = bool(decomposition.get("solve_directly"))
    return {
        "event": "maker.tree.proposed",
        "tree": tree,
        "node": node,
        "depth": depth,
        "parts": 0 if solve_directly else len(parts),
        "solve_directly": solve_directly,
        "chosen_by": chosen_by,
        "candidates": candidates,
        "samples": samples,
    }


def solved_event(tree: str, node: str, *, depth: int, answer: str, samples: int) -> dict[str, Any]:
    return {
        "event": "maker.tree.solved",
        "tree": tree,
        "node": node,
        "depth": depth,
        "answer": answer,
        "samples": samples,
    }


def composed_event(
    tree: str, node: str, *, depth: int, answer: str, parts: int, samples: int
) -> dict[str, Any]:
    return {
        "event": "maker.tree.composed",
        "tree": tree,
        "node": node,
        "depth": depth,
        "answer": answer,
        "parts": parts,
        "samples": samples,
    }


def failed_event(tree: str, failure: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "event": "maker.tree.failed",
        "tree": tree,
        "node": str(failure.get("node", "?")),
        "role": str(failure.get("role", "")),
        "reason": str(failure.get("kind", "error")),
        "message": str(failure.get("message", "")),
    }
