"""`create_recursive_graph`: a tree of sub-problems, expanded and composed as a LangGraph graph.

The graph has one hub and the four roles around it::

    START -> start -> expand --(recursion_condition: Sends)--> decomposer | discriminator
                                                               | solver | composer | finish
             decomposer, discriminator, solver, composer -> expand;  finish -> END

`start` plants the root (and clears any tree an earlier problem left on the
same checkpointed thread); `expand` turns chosen decompositions into child nodes. Its router,
`recursion_condition`, then dispatches *every* piece of work that is ready, one
`Send` per tree node, all in one superstep: decomposers for new nodes,
discriminators for nodes with several distinct proposals, solvers for leaves
(and for nodes at the depth limit), composers for nodes whose children are all
answered. Independent sub-problems of a level therefore run in parallel, and
answers are composed bottom up as soon as they can be.

A role that fails (its vote ran out of samples, the node's budget is spent, a
provider kept failing) does not raise inside its branch, which would cancel its
siblings mid-call: it returns a `Failure`, and `finish` raises it once the
superstep is over, naming the node (`NodeBudgetExhaustedError`,
`NoConsensusError`, ...). The tree lives in the graph state (small: one entry
per node); every sample and tally goes to the tree record instead. Streamed with
`stream_mode="custom"`, the nodes write `maker.tree.*` progress events
(`maker_graph.recursive.events`).

Example:
    >>> import asyncio, json
    >>> from maker_graph.recursive import Role, Roles
    >>> def decompose(inp):  # "a+b+c" -> ["a", "b+c"], "#1 + #2"; a single term is a leaf
    ...     terms = inp.problem.split("+")
    ...     if len(terms) == 1:
    ...         return json.dumps({"solve_directly": True})
    ...     return json.dumps({"subproblems": [terms[0], "+".join(terms[1:])],
    ...                        "composition": "#1 + #2"})
    >>> solve = lambda inp: json.dumps({"answer": str(len(inp.problem))})
    >>> compose = lambda inp: json.dumps({"answer": str(sum(int(p.answer) for p in inp.parts))})
    >>> choose = lambda inp: json.dumps({"choice": 1})
    >>> roles = Roles(decomposer=Role(model=decompose), discriminator=Role(model=choose),
    ...               solver=Role(model=solve), composer=Role(model=compose))
    >>> graph = create_recursive_graph(roles).compile()
    >>> asyncio.run(graph.ainvoke({"problem": "ab+cde+f"}))["answer"]
    '6'
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, StateGraph
from langgraph.types import Overwrite, Send

# typing_extensions, not typing: LangGraph's server reads key docs and schemas from it on
# Python < 3.12.
from typing_extensions import NotRequired, TypedDict

from .._sync import run_sync
from ..errors import BudgetExhaustedError, MakerRuntimeError
from ..graph.events import emit
from ..records import StepResult
from .events import composed_event, failed_event, proposed_event, solved_event
from .failures import Failure, failure_from_error, raise_failure
from .policy import RecursionPolicy
from .record import TreeRecorder, stamp
from .roles import NodeAllowance, Roles
from .schemas import Decomposition, Part

__all__ = [
    "RecursiveInput",
    "RecursiveOutput",
    "RecursiveState",
    "TreeNode",
    "create_recursive_graph",
    "merge_nodes",
    "recursion_condition",
]

ROOT = "0"


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


def _order(node_id: str) -> tuple[int, ...]:
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
    for node_id in sorted(nodes, key=_order):
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


Payload = dict[str, Any]
NodeFn = Callable[[Payload], Coroutine[Any, Any, dict[str, Any]]]


def _sync(afunc: NodeFn) -> Callable[[Payload], dict[str, Any]]:
    def run(payload: Payload) -> dict[str, Any]:
        # One long-lived loop for sync callers: async provider clients stay valid.
        return run_sync(afunc(payload))

    return run


def _node(name: str, afunc: NodeFn) -> RunnableLambda[Payload, dict[str, Any]]:
    # Both shells around one async core: `invoke` and `ainvoke` both work.
    return RunnableLambda(_sync(afunc), afunc=afunc, name=name)


def create_recursive_graph(
    roles: Roles,
    *,
    policy: RecursionPolicy | None = None,
    recorder: TreeRecorder | None = None,
) -> StateGraph[RecursiveState, None, RecursiveInput, RecursiveOutput]:
    """Build the recursive decomposition graph (uncompiled: you choose the checkpointer).

    Args:
        roles: the decomposer, discriminator, solver and composer, and the canonical
            form that makes equivalent proposals one candidate.
        policy: depth limit, candidates per node, fan-out, node count and per-node budgets.
        recorder: receives the tree's events (e.g. `JsonlTreeRecorder(run_dir)`).

    Returns:
        A `StateGraph` taking `{"problem": ...}` and returning the answer, the tree
        (`nodes`) and `stats`. Its nodes are async; `invoke` runs them on maker_graph's
        long-lived background loop, `ainvoke` on yours.

    Raises:
        ConfigurationError: a role or the policy cannot work.

    Example:
        >>> import json
        >>> from maker_graph.recursive import Role, Roles
        >>> leaf = lambda inp: json.dumps({"solve_directly": True})
        >>> ans = lambda inp: json.dumps({"answer": "x"})
        >>> roles = Roles(decomposer=Role(model=leaf), discriminator=Role(model=leaf),
        ...               solver=Role(model=ans), composer=Role(model=ans))
        >>> create_recursive_graph(roles).compile().invoke({"problem": "p"})["answer"]
        'x'
    """
    policy = policy or RecursionPolicy()
    decomposer, discriminator, solver, composer = roles.build(
        candidates=policy.candidates, max_fanout=policy.max_fanout
    )

    def record(event: dict[str, Any]) -> None:
        if recorder is not None:
            recorder.write(stamp(event))

    def allowance(node: TreeNode) -> NodeAllowance | None:
        if policy.max_samples_per_node is None:
            return None
        return NodeAllowance(policy.max_samples_per_node, int(node.get("samples", 0)))

    def failed(exc: MakerRuntimeError, tree_id: str, node: TreeNode, role: str) -> dict[str, Any]:
        failure = failure_from_error(
            exc, node=node.get("id", "?"), role=role, problem=node.get("problem", "")
        )
        record({"event": "failure", "tree": tree_id, **failure})
        emit(failed_event(tree_id, failure))
        return {"failures": [failure]}

    # ------------------------------------------------------------------ hub

    async def start(state: RecursiveState) -> dict[str, Any]:
        # A new problem on a thread that already solved one must not see the old tree:
        # accumulating reducers persist across invocations, so reset them explicitly.
        given = state.get("tree_id")
        tree_id = given if given and given != state.get("last_tree_id") else uuid.uuid4().hex[:12]
        problem = state["problem"]
        record(
            {"event": "tree", "tree": tree_id, "problem": problem, "policy": _policy_dict(policy)}
        )
        record(
            {
                "event": "node",
                "tree": tree_id,
                "node": ROOT,
                "parent": None,
                "depth": 0,
                "problem": problem,
            }
        )
        root: TreeNode = {
            "id": ROOT,
            "parent": None,
            "depth": 0,
            "problem": problem,
            "status": "pending",
            "children": [],
            "answer": None,
            "samples": 0,
        }
        return {
            "tree_id": tree_id,
            "last_tree_id": tree_id,
            "nodes": Overwrite({ROOT: root}),
            "failures": Overwrite([]),
            "answer": None,
            "stats": {},
        }

    async def expand(state: RecursiveState) -> dict[str, Any]:
        nodes = state.get("nodes") or {}
        tree_id = state.get("tree_id", "")
        updates: dict[str, TreeNode] = {}
        count = len(nodes)
        failures: list[Failure] = []
        for node_id in sorted(nodes, key=_order):
            node = nodes[node_id]
            if node.get("status") != "planned":
                continue
            plan = Decomposition.model_validate(node.get("decomposition") or {})
            if plan.solve_directly:
                updates[node_id] = {"status": "leaf"}
                continue
            if count + len(plan.subproblems) > policy.max_nodes:
                exc = BudgetExhaustedError(
                    "tree nodes",
                    policy.max_nodes,
                    count + len(plan.subproblems),
                    "RecursionPolicy.max_nodes (CLI: --max-nodes)",
                )
                failures.append(
                    failure_from_error(
                        exc, node=node_id, role="expand", problem=node.get("problem", "")
                    )
                )
                record({"event": "failure", "tree": tree_id, **failures[-1]})
                emit(failed_event(tree_id, failures[-1]))
                break
            children = []
            for i, sub in enumerate(plan.subproblems):
                child_id = f"{node_id}.{i}"
                children.append(child_id)
                depth = int(node.get("depth", 0)) + 1
                updates[child_id] = {
                    "id": child_id,
                    "parent": node_id,
                    "depth": depth,
                    "problem": sub,
                    "status": "pending",
                    "children": [],
                    "answer": None,
                    "samples": 0,
                }
                record(
                    {
                        "event": "node",
                        "tree": tree_id,
                        "node": child_id,
                        "parent": node_id,
                        "depth": depth,
                        "problem": sub,
                    }
                )
            count += len(children)
            updates[node_id] = {"status": "split", "children": children}
        out: dict[str, Any] = {"nodes": updates}
        if failures:
            out["failures"] = failures
        return out

    # ------------------------------------------------------------------ roles

    async def decompose(payload: Payload) -> dict[str, Any]:
        node: TreeNode = payload["node"]
        tree_id, node_id = payload["tree_id"], node["id"]
        try:
            proposals = await decomposer.propose(
                node["problem"], node=node_id, budget=allowance(node)
            )
        except MakerRuntimeError as exc:
            return failed(exc, tree_id, node, "decomposer")
        draw = proposals.result
        candidates = [c.decomposition.model_dump(mode="json") for c in proposals.candidates]
        record(
            {
                "event": "proposals",
                "tree": tree_id,
                "node": node_id,
                "candidates": [
                    {"decomposition": d, "key": _json_key(c.key), "proposers": list(c.proposers)}
                    for d, c in zip(candidates, proposals.candidates, strict=True)
                ],
                "draw": draw.to_dict(with_samples=True),
            }
        )
        update: TreeNode = {"candidates": candidates, **_spent(node, draw)}
        if proposals.unanimous and not policy.always_discriminate:
            update["status"] = "planned"
            update["decomposition"] = candidates[0]
            update["chosen_by"] = "unanimous"
            record(
                {
                    "event": "choice",
                    "tree": tree_id,
                    "node": node_id,
                    "decomposition": candidates[0],
                    "chosen_by": "unanimous",
                    "vote": None,
                }
            )
            emit(
                proposed_event(
                    tree_id,
                    node_id,
                    depth=int(node.get("depth", 0)),
                    decomposition=candidates[0],
                    chosen_by="unanimous",
                    candidates=1,
                    samples=int(update.get("samples", 0)),
                )
            )
        else:
            update["status"] = "proposed"
        return {"nodes": {node_id: update}}

    async def discriminate(payload: Payload) -> dict[str, Any]:
        node: TreeNode = payload["node"]
        tree_id, node_id = payload["tree_id"], node["id"]
        candidates = [Decomposition.model_validate(c) for c in node.get("candidates", [])]
        try:
            chosen, vote = await discriminator.choose(
                node["problem"], candidates, node=node_id, budget=allowance(node)
            )
        except MakerRuntimeError as exc:
            return failed(exc, tree_id, node, "discriminator")
        decomposition = chosen.model_dump(mode="json")
        record(
            {
                "event": "choice",
                "tree": tree_id,
                "node": node_id,
                "decomposition": decomposition,
                "chosen_by": "vote",
                "vote": vote.to_dict(with_samples=True),
            }
        )
        spent = _spent(node, vote)
        emit(
            proposed_event(
                tree_id,
                node_id,
                depth=int(node.get("depth", 0)),
                decomposition=decomposition,
                chosen_by="vote",
                candidates=len(candidates),
                samples=int(spent.get("samples", 0)),
            )
        )
        return {
            "nodes": {
                node_id: {
                    "status": "planned",
                    "decomposition": decomposition,
                    "chosen_by": "vote",
                    **spent,
                }
            }
        }

    async def solve(payload: Payload) -> dict[str, Any]:
        node: TreeNode = payload["node"]
        tree_id, node_id = payload["tree_id"], node["id"]
        at_limit = node.get("status") == "pending"
        depth = int(node.get("depth", 0))
        if at_limit:
            direct = {"solve_directly": True, "subproblems": [], "composition": ""}
            record(
                {
                    "event": "choice",
                    "tree": tree_id,
                    "node": node_id,
                    "decomposition": direct,
                    "chosen_by": "depth_limit",
                    "vote": None,
                }
            )
            emit(
                proposed_event(
                    tree_id,
                    node_id,
                    depth=depth,
                    decomposition=direct,
                    chosen_by="depth_limit",
                    candidates=0,
                    samples=int(node.get("samples", 0)),
                )
            )
        try:
            vote = await solver.solve(node["problem"], node=node_id, budget=allowance(node))
        except MakerRuntimeError as exc:
            return failed(exc, tree_id, node, "solver")
        answer = _answer_text(vote.winner)
        record(
            {
                "event": "answer",
                "tree": tree_id,
                "node": node_id,
                "role": "solver",
                "answer": answer,
                "vote": vote.to_dict(with_samples=True),
            }
        )
        emit(solved_event(tree_id, node_id, depth=depth, answer=answer, samples=vote.samples_drawn))
        update: TreeNode = {"status": "answered", "answer": answer, **_spent(node, vote)}
        if at_limit:
            update["chosen_by"] = "depth_limit"
        return {"nodes": {node_id: update}}

    async def compose(payload: Payload) -> dict[str, Any]:
        node: TreeNode = payload["node"]
        tree_id, node_id = payload["tree_id"], node["id"]
        plan = Decomposition.model_validate(node.get("decomposition") or {})
        parts = [Part.model_validate(p) for p in payload["parts"]]
        try:
            vote = await composer.compose(
                node["problem"], plan.composition, parts, node=node_id, budget=allowance(node)
            )
        except MakerRuntimeError as exc:
            return failed(exc, tree_id, node, "composer")
        answer = _answer_text(vote.winner)
        record(
            {
                "event": "answer",
                "tree": tree_id,
                "node": node_id,
                "role": "composer",
                "answer": answer,
                "vote": vote.to_dict(with_samples=True),
            }
        )
        emit(
            composed_event(
                tree_id,
                node_id,
                depth=int(node.get("depth", 0)),
                answer=answer,
                parts=len(parts),
                samples=vote.samples_drawn,
            )
        )
        return {
            "nodes": {
                node_id: {
                    "status": "answered",
                    "answer": answer,
                    **_spent(node, vote),
                }
            }
        }

    async def finish(state: RecursiveState) -> dict[str, Any]:
        nodes = state.get("nodes") or {}
        tree_id = state.get("tree_id", "")
        failures = list(state.get("failures") or [])
        root = nodes.get(ROOT, {})
        if not failures and root.get("answer") is None:
            stuck = [n for n in sorted(nodes, key=_order) if nodes[n].get("answer") is None]
            failures.append(
                {
                    "node": stuck[0] if stuck else ROOT,
                    "role": "expand",
                    "problem": nodes.get(stuck[0], {}).get("problem", "") if stuck else "",
                    "kind": "error",
                    "message": "the tree has no work left but the root is unanswered",
                }
            )
            emit(failed_event(tree_id, failures[-1]))
        stats = _stats(nodes)
        record(
            {
                "event": "done",
                "tree": tree_id,
                "answer": root.get("answer"),
                "ok": not failures,
                "stats": stats,
            }
        )
        if failures:
            raise_failure(failures)
        return {"answer": root.get("answer"), "stats": stats}

    builder: StateGraph[RecursiveState, None, RecursiveInput, RecursiveOutput] = StateGraph(
        RecursiveState, input_schema=RecursiveInput, output_schema=RecursiveOutput
    )
    builder.add_node("start", _node("start", start))  # type: ignore[arg-type,type-var]
    builder.add_node("expand", _node("expand", expand))  # type: ignore[arg-type,type-var]
    builder.add_node("decomposer", _node("decomposer", decompose))  # type: ignore[arg-type,type-var]
    builder.add_node("discriminator", _node("discriminator", discriminate))  # type: ignore[arg-type,type-var]
    builder.add_node("solver", _node("solver", solve))  # type: ignore[arg-type,type-var]
    builder.add_node("composer", _node("composer", compose))  # type: ignore[arg-type,type-var]
    builder.add_node("finish", _node("finish", finish))  # type: ignore[arg-type,type-var]
    builder.add_edge(START, "start")
    builder.add_edge("start", "expand")

    def route(state: RecursiveState) -> list[Send] | str:
        return recursion_condition(state, max_depth=policy.max_depth)

    route.__name__ = "recursion_condition"
    builder.add_conditional_edges(
        "expand", route, ["decomposer", "discriminator", "solver", "composer", "finish"]
    )
    for role in ("decomposer", "discriminator", "solver", "composer"):
        builder.add_edge(role, "expand")
    builder.add_edge("finish", END)
    return builder


def _answer_text(winner: Any) -> str:
    text = getattr(winner, "answer", winner)
    return str(text).strip()


def _json_key(key: Any) -> Any:
    """A vote key in the JSON form `StepResult.to_dict` gives tally keys (tuples as lists)."""
    if isinstance(key, (list, tuple)):
        return [_json_key(k) for k in key]
    if key is None or isinstance(key, (str, int, float, bool)):
        return key
    return repr(key)


def _policy_dict(policy: RecursionPolicy) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(policy)


def _spent(node: TreeNode, vote: StepResult) -> TreeNode:
    """The node's running totals after one more vote."""
    return {
        "samples": int(node.get("samples", 0)) + vote.samples_drawn,
        "input_tokens": int(node.get("input_tokens", 0)) + vote.input_tokens,
        "output_tokens": int(node.get("output_tokens", 0)) + vote.output_tokens,
    }


def _stats(nodes: dict[str, TreeNode]) -> dict[str, Any]:
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
