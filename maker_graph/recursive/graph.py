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

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from .._util import async_node
from ._tree import (
    RecursiveInput,
    RecursiveOutput,
    RecursiveState,
    TreeNode,
    merge_nodes,
    recursion_condition,
)
from ._tree_steps import TreeSteps
from .policy import RecursionPolicy
from .record import TreeRecorder
from .roles import Roles

__all__ = [
    "RecursiveInput",
    "RecursiveOutput",
    "RecursiveState",
    "TreeNode",
    "create_recursive_graph",
    "merge_nodes",
    "recursion_condition",
]


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
    steps = TreeSteps(roles, policy, recorder)
    builder: StateGraph[RecursiveState, None, RecursiveInput, RecursiveOutput] = StateGraph(
        RecursiveState, input_schema=RecursiveInput, output_schema=RecursiveOutput
    )
    builder.add_node("start", async_node("start", steps.start))
    builder.add_node("expand", async_node("expand", steps.expand))
    for role, run in (
        ("decomposer", steps.decompose),
        ("discriminator", steps.discriminate),
        ("solver", steps.solve),
        ("composer", steps.compose),
    ):
        builder.add_node(role, async_node(role, run))
        builder.add_edge(role, "expand")
    builder.add_node("finish", async_node("finish", steps.finish))
    builder.add_edge(START, "start")
    builder.add_edge("start", "expand")

    def route(state: RecursiveState) -> list[Send] | str:
        return recursion_condition(state, max_depth=policy.max_depth)

    route.__name__ = "recursion_condition"
    builder.add_conditional_edges(
        "expand", route, ["decomposer", "discriminator", "solver", "composer", "finish"]
    )
    builder.add_edge("finish", END)
    return builder
