"""The recursive graph's node functions: the hub (`start`, `expand`, `finish`) and the roles.

Each role returns its node's update, or a `Failure` instead of raising (see
`maker_graph.recursive.graph`); every step is also written to the tree record.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from langgraph.types import Overwrite

from ..errors import BudgetExhaustedError, MakerRuntimeError
from ..graph.events import emit
from ..records import StepResult
from ._tree import ROOT, RecursiveState, TreeNode, new_node, order, spent, tree_stats
from .events import composed_event, failed_event, proposed_event, solved_event
from .failures import Failure, failure_from_error, raise_failure
from .policy import RecursionPolicy
from .record import TreeRecorder, stamp
from .roles import NodeAllowance, Roles
from .schemas import Decomposition, Part

Payload = dict[str, Any]
"""What `recursion_condition` sends a role: the node, the tree id (and a composer's parts)."""


class TreeSteps:
    """The node functions of one recursive graph, sharing its roles, policy and recorder."""

    def __init__(
        self, roles: Roles, policy: RecursionPolicy, recorder: TreeRecorder | None
    ) -> None:
        self.policy = policy
        self.recorder = recorder
        self.decomposer, self.discriminator, self.solver, self.composer = roles.build(
            candidates=policy.candidates, max_fanout=policy.max_fanout
        )

    def record(self, event: dict[str, Any]) -> None:
        if self.recorder is not None:
            self.recorder.write(stamp(event))

    def allowance(self, node: TreeNode) -> NodeAllowance | None:
        if self.policy.max_samples_per_node is None:
            return None
        return NodeAllowance(self.policy.max_samples_per_node, int(node.get("samples", 0)))

    def failure(
        self, exc: MakerRuntimeError, tree_id: str, node_id: str, role: str, problem: str
    ) -> Failure:
        failure = failure_from_error(exc, node=node_id, role=role, problem=problem)
        self.record({"event": "failure", "tree": tree_id, **failure})
        emit(failed_event(tree_id, failure))
        return failure

    def failed(self, exc: MakerRuntimeError, tree_id: str, node: TreeNode, role: str) -> Payload:
        node_id, problem = node.get("id", "?"), node.get("problem", "")
        return {"failures": [self.failure(exc, tree_id, node_id, role, problem)]}

    def opened(
        self, tree_id: str, node_id: str, parent: str | None, depth: int, problem: str
    ) -> TreeNode:
        """A new pending node, written to the record."""
        event = {"event": "node", "tree": tree_id, "node": node_id, "parent": parent}
        self.record({**event, "depth": depth, "problem": problem})
        return new_node(node_id, parent, depth, problem)

    def chosen(
        self,
        tree_id: str,
        node: TreeNode,
        decomposition: dict[str, Any],
        chosen_by: str,
        *,
        vote: StepResult | None,
        candidates: int,
        samples: int,
    ) -> None:
        """Record and stream the decomposition a node will follow."""
        node_id = node["id"]
        self.record(
            {
                "event": "choice",
                "tree": tree_id,
                "node": node_id,
                "decomposition": decomposition,
                "chosen_by": chosen_by,
                "vote": None if vote is None else vote.to_dict(with_samples=True),
            }
        )
        emit(
            proposed_event(
                tree_id,
                node_id,
                depth=int(node.get("depth", 0)),
                decomposition=decomposition,
                chosen_by=chosen_by,
                candidates=candidates,
                samples=samples,
            )
        )

    def answered(self, tree_id: str, node_id: str, role: str, vote: StepResult) -> str:
        """The voted answer's text, written to the record."""
        answer = str(getattr(vote.winner, "answer", vote.winner)).strip()
        self.record(
            {
                "event": "answer",
                "tree": tree_id,
                "node": node_id,
                "role": role,
                "answer": answer,
                "vote": vote.to_dict(with_samples=True),
            }
        )
        return answer

    # ------------------------------------------------------------------ hub

    async def start(self, state: RecursiveState) -> Payload:
        # A new problem on a thread that already solved one must not see the old tree:
        # accumulating reducers persist across invocations, so reset them explicitly.
        given = state.get("tree_id")
        tree_id = given if given and given != state.get("last_tree_id") else uuid.uuid4().hex[:12]
        problem = state["problem"]
        policy = asdict(self.policy)
        self.record({"event": "tree", "tree": tree_id, "problem": problem, "policy": policy})
        root = self.opened(tree_id, ROOT, None, 0, problem)
        return {
            "tree_id": tree_id,
            "last_tree_id": tree_id,
            "nodes": Overwrite({ROOT: root}),
            "failures": Overwrite([]),
            "answer": None,
            "stats": {},
        }

    async def expand(self, state: RecursiveState) -> Payload:
        nodes = state.get("nodes") or {}
        tree_id = state.get("tree_id", "")
        updates: dict[str, TreeNode] = {}
        count = len(nodes)
        failures: list[Failure] = []
        for node_id in sorted(nodes, key=order):
            node = nodes[node_id]
            if node.get("status") != "planned":
                continue
            plan = Decomposition.model_validate(node.get("decomposition") or {})
            if plan.solve_directly:
                updates[node_id] = {"status": "leaf"}
                continue
            if count + len(plan.subproblems) > self.policy.max_nodes:
                exc = BudgetExhaustedError(
                    "tree nodes",
                    self.policy.max_nodes,
                    count + len(plan.subproblems),
                    "RecursionPolicy.max_nodes (CLI: --max-nodes)",
                )
                problem = node.get("problem", "")
                failures.append(self.failure(exc, tree_id, node_id, "expand", problem))
                break
            depth = int(node.get("depth", 0)) + 1
            children = [f"{node_id}.{i}" for i in range(len(plan.subproblems))]
            for child_id, sub in zip(children, plan.subproblems, strict=True):
                updates[child_id] = self.opened(tree_id, child_id, node_id, depth, sub)
            count += len(children)
            updates[node_id] = {"status": "split", "children": children}
        out: Payload = {"nodes": updates}
        if failures:
            out["failures"] = failures
        return out

    async def finish(self, state: RecursiveState) -> Payload:
        nodes = state.get("nodes") or {}
        tree_id = state.get("tree_id", "")
        failures = list(state.get("failures") or [])
        root = nodes.get(ROOT, {})
        if not failures and root.get("answer") is None:
            stuck = [n for n in sorted(nodes, key=order) if nodes[n].get("answer") is None]
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
        stats = tree_stats(nodes)
        answer = root.get("answer")
        ok = not failures
        self.record({"event": "done", "tree": tree_id, "answer": answer, "ok": ok, "stats": stats})
        if failures:
            raise_failure(failures)
        return {"answer": answer, "stats": stats}

    # ------------------------------------------------------------------ roles

    async def decompose(self, payload: Payload) -> Payload:
        node: TreeNode = payload["node"]
        tree_id, node_id = payload["tree_id"], node["id"]
        try:
            proposals = await self.decomposer.propose(
                node["problem"], node=node_id, budget=self.allowance(node)
            )
        except MakerRuntimeError as exc:
            return self.failed(exc, tree_id, node, "decomposer")
        draw = proposals.result
        candidates = [c.decomposition.model_dump(mode="json") for c in proposals.candidates]
        self.record(
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
        update: TreeNode = {"candidates": candidates, **spent(node, draw)}
        if proposals.unanimous and not self.policy.always_discriminate:
            update["status"] = "planned"
            update["decomposition"] = candidates[0]
            update["chosen_by"] = "unanimous"
            samples = int(update.get("samples", 0))
            self.chosen(
                tree_id, node, candidates[0], "unanimous", vote=None, candidates=1, samples=samples
            )
        else:
            update["status"] = "proposed"
        return {"nodes": {node_id: update}}

    async def discriminate(self, payload: Payload) -> Payload:
        node: TreeNode = payload["node"]
        tree_id, node_id = payload["tree_id"], node["id"]
        candidates = [Decomposition.model_validate(c) for c in node.get("candidates", [])]
        try:
            chosen, vote = await self.discriminator.choose(
                node["problem"], candidates, node=node_id, budget=self.allowance(node)
            )
        except MakerRuntimeError as exc:
            return self.failed(exc, tree_id, node, "discriminator")
        decomposition = chosen.model_dump(mode="json")
        totals = spent(node, vote)
        samples, count = int(totals.get("samples", 0)), len(candidates)
        self.chosen(
            tree_id, node, decomposition, "vote", vote=vote, candidates=count, samples=samples
        )
        update = {"status": "planned", "decomposition": decomposition, "chosen_by": "vote"}
        return {"nodes": {node_id: {**update, **totals}}}

    async def solve(self, payload: Payload) -> Payload:
        node: TreeNode = payload["node"]
        tree_id, node_id = payload["tree_id"], node["id"]
        at_limit = node.get("status") == "pending"
        if at_limit:
            direct = {"solve_directly": True, "subproblems": [], "composition": ""}
            samples = int(node.get("samples", 0))
            self.chosen(
                tree_id, node, direct, "depth_limit", vote=None, candidates=0, samples=samples
            )
        try:
            vote = await self.solver.solve(
                node["problem"], node=node_id, budget=self.allowance(node)
            )
        except MakerRuntimeError as exc:
            return self.failed(exc, tree_id, node, "solver")
        answer = self.answered(tree_id, node_id, "solver", vote)
        depth = int(node.get("depth", 0))
        emit(solved_event(tree_id, node_id, depth=depth, answer=answer, samples=vote.samples_drawn))
        update: TreeNode = {"status": "answered", "answer": answer, **spent(node, vote)}
        if at_limit:
            update["chosen_by"] = "depth_limit"
        return {"nodes": {node_id: update}}

    async def compose(self, payload: Payload) -> Payload:
        node: TreeNode = payload["node"]
        tree_id, node_id = payload["tree_id"], node["id"]
        plan = Decomposition.model_validate(node.get("decomposition") or {})
        parts = [Part.model_validate(p) for p in payload["parts"]]
        try:
            vote = await self.composer.compose(
                node["problem"], plan.composition, parts, node=node_id, budget=self.allowance(node)
            )
        except MakerRuntimeError as exc:
            return self.failed(exc, tree_id, node, "composer")
        answer = self.answered(tree_id, node_id, "composer", vote)
        depth = int(node.get("depth", 0))
        samples = vote.samples_drawn
        emit(
            composed_event(
                tree_id, node_id, depth=depth, answer=answer, parts=len(parts), samples=samples
            )
        )
        return {"nodes": {node_id: {"status": "answered", "answer": answer, **spent(node, vote)}}}


def _json_key(key: Any) -> Any:
    """A vote key in the JSON form `StepResult.to_dict` gives tally keys (tuples as lists)."""
    if isinstance(key, (list, tuple)):
        return [_json_key(k) for k in key]
    if key is None or isinstance(key, (str, int, float, bool)):
        return key
    return repr(key)
