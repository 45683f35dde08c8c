"""Render a recorded decomposition tree: as indented text for terminals, as Mermaid for docs.

Example:
    >>> from maker_graph.recursive.record import load_events
    >>> tree = load_events([
    ...     {"event": "tree", "tree": "t", "problem": "2 × 3"},
    ...     {"event": "node", "tree": "t", "node": "0", "depth": 0, "problem": "2 × 3"},
    ...     {"event": "answer", "tree": "t", "node": "0", "role": "solver", "answer": "6",
    ...      "vote": {"tally": [["6", 3]], "samples_drawn": 3, "red_flags": {}}},
    ...     {"event": "done", "tree": "t", "answer": "6", "ok": True}])[0]
    >>> print(render_text(tree).splitlines()[1])
    0  2 × 3 = 6  [3 samples]
    >>> render_mermaid(tree).splitlines()[0]
    'flowchart TD'
"""

from __future__ import annotations

from typing import Any

from .record import NodeView, TreeView

__all__ = ["describe_decomposition", "render_mermaid", "render_text"]


def describe_decomposition(decomposition: dict[str, Any] | None) -> str:
    """One line for a decomposition: `solve directly`, or its composition and parts."""
    if not decomposition:
        return "?"
    if decomposition.get("solve_directly"):
        return "solve directly"
    parts = ", ".join(f"#{i} = {p}" for i, p in enumerate(decomposition.get("subproblems", []), 1))
    return f"{decomposition.get('composition', '')}  where {parts}"


def _tally(vote: dict[str, Any] | None, label: Any = None) -> str:
    if not vote:
        return ""
    pairs = vote.get("tally") or []
    shown = ", ".join(f"{label(k) if label else _short(k)}: {n}" for k, n in pairs)
    return "{" + shown + "}"


def _short(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _flags(vote: dict[str, Any] | None) -> str:
    flags = (vote or {}).get("red_flags") or {}
    return ", ".join(f"{n} {reason}" for reason, n in sorted(flags.items()))


def _candidate_number(node: NodeView) -> Any:
    keys = [c.get("key") for c in (node.proposals or {}).get("candidates", [])]

    def label(key: Any) -> str:
        return f"[{keys.index(key) + 1}]" if key in keys else _short(key)

    return label


def _node_lines(tree: TreeView, node: NodeView) -> list[str]:
    answer = node.answer if node.answer is not None else "?"
    head = f"{node.id}  {node.problem} = {answer}  [{node.samples} samples]"
    if node.failure:
        head += f"  FAILED ({node.failure.get('role')}): {node.failure.get('message', '')}"
    lines = [head]
    proposals, choice = node.proposals, node.choice
    if proposals:
        draw = proposals.get("draw") or {}
        flags = _flags(draw)
        cands = proposals.get("candidates", [])
        lines.append(
            f"decomposer: {draw.get('valid_votes', 0)} valid of {draw.get('samples_drawn', 0)}"
            f" drawn{f' ({flags})' if flags else ''} -> {len(cands)} distinct"
        )
        chosen = choice.get("decomposition") if choice else None
        for i, cand in enumerate(cands, 1):
            mark = "*" if cand.get("decomposition") == chosen else " "
            who = ",".join(map(str, cand.get("proposers", [])))
            lines.append(
                f" {mark} [{i}] {describe_decomposition(cand.get('decomposition'))}"
                f"  (proposers {who})"
            )
    if choice:
        how = choice.get("chosen_by")
        if how == "vote":
            vote = choice.get("vote") or {}
            flags = _flags(vote)
            lines.append(
                f"discriminator: {_tally(vote, _candidate_number(node))} "
                f"({vote.get('samples_drawn', 0)} samples{f'; {flags}' if flags else ''})"
            )
        elif how == "depth_limit":
            lines.append("solved directly: depth limit")
        elif how == "unanimous":
            lines.append("chosen: every proposal agreed")
    if node.answer_event:
        vote = node.answer_event.get("vote") or {}
        flags = _flags(vote)
        lines.append(
            f"{node.answer_event.get('role')}: {node.answer}  {_tally(vote)} "
            f"({vote.get('samples_drawn', 0)} samples{f'; {flags}' if flags else ''})"
        )
    return lines


def render_text(tree: TreeView) -> str:
    """The tree as indented text: each node with its proposals, votes and answer."""
    done = tree.done or {}
    stats = done.get("stats") or {}
    status = "ok" if done.get("ok") else ("FAILED" if tree.done else "unfinished")
    out = [
        f"tree {tree.id}: {tree.problem} = {tree.answer if tree.answer is not None else '?'}"
        f"  [{status}; {stats.get('nodes', len(tree.nodes))} nodes, "
        f"{stats.get('samples', sum(n.samples for n in tree.nodes.values()))} samples]"
    ]

    def emit(node: NodeView, prefix: str, last: bool, top: bool) -> None:
        lines = _node_lines(tree, node)
        branch = "" if top else ("└── " if last else "├── ")
        out.append(prefix + branch + lines[0])
        inner = prefix + ("" if top else ("    " if last else "│   "))
        children = [tree.nodes[c] for c in node.children if c in tree.nodes]
        bar = "│ " if children else "  "
        for line in lines[1:]:
            out.append(inner + bar + line)
        for i, child in enumerate(children):
            emit(child, inner, i == len(children) - 1, False)

    if tree.root is not None:
        emit(tree.root, "", True, True)
    for failure in tree.failures:
        if failure.get("node") not in tree.nodes:
            out.append(f"failure: {failure.get('message', '')}")
    return "\n".join(out)


def _escape(text: str) -> str:
    # '&' first, then '#' (Mermaid's entity marker), then what HTML labels must not hold.
    text = text.replace("&", "&amp;").replace("#", "#35;").replace('"', "#quot;")
    return text.replace("<", "&lt;").replace(">", "&gt;")


def render_mermaid(tree: TreeView, *, max_label: int = 48) -> str:
    """The tree as a Mermaid flowchart: problem, answer and how each node was decided.

    Nodes whose split was chosen by a discriminator vote are drawn with a thick
    border, failed nodes in red; each edge is labelled with the sub-answer's
    name in the parent's composition (`#1`, `#2`, ...).
    """
    lines = ["flowchart TD"]
    styles: dict[str, list[str]] = {"voted": [], "failed": [], "leaf": []}
    for node in tree.walk():
        ident = "n" + node.id.replace(".", "_")
        how = (node.choice or {}).get("chosen_by")
        detail = []
        if node.answer_event:
            vote = node.answer_event.get("vote") or {}
            detail.append(f"{node.answer_event.get('role')} {vote.get('samples_drawn', 0)} samples")
        if how == "vote":
            vote = (node.choice or {}).get("vote") or {}
            n_cands = len((node.proposals or {}).get("candidates", []))
            detail.append(f"vote among {n_cands} splits, {vote.get('samples_drawn', 0)} samples")
        elif how == "depth_limit":
            detail.append("depth limit")
        flags = sum(((node.proposals or {}).get("draw") or {}).get("red_flags", {}).values())
        if flags:
            detail.append(f"{flags} split(s) red-flagged")
        problem = node.problem if len(node.problem) <= max_label else node.problem[:max_label] + "…"
        answer = node.answer if node.answer is not None else "?"
        label = f"{_escape(node.id + ': ' + problem)}<br/>= {_escape(answer)}"
        if detail:
            label += "<br/><small>" + _escape("; ".join(detail)) + "</small>"
        lines.append(f'  {ident}["{label}"]')
        if node.failure:
            styles["failed"].append(ident)
        elif how == "vote":
            styles["voted"].append(ident)
        elif not node.children:
            styles["leaf"].append(ident)
        for i, child in enumerate(node.children, 1):
            lines.append(f'  {ident} -->|"#35;{i}"| n{child.replace(".", "_")}')
    lines.append("  classDef voted stroke-width:3px,stroke:#b36b00")
    lines.append("  classDef failed fill:#fdd,stroke:#c00")
    lines.append("  classDef leaf fill:#eef6ee")
    for cls, members in styles.items():
        if members:
            lines.append(f"  class {','.join(members)} {cls}")
    return "\n".join(lines)
