"""Recursive LLM decomposition: decomposer, discriminator vote, solver and composer.

For tasks with no known step rule, agents find the decomposition themselves:
decomposers propose splits, discriminators vote among the distinct proposals
(first-to-ahead-by-k over canonical forms, so equivalent splits collide),
solvers answer the leaves and composers combine the answers bottom up, every
one of them voted and red-flagged. `create_recursive_graph` drives a whole
tree as a LangGraph graph; the role classes and their node factories can also
be used on their own.

Example:
    >>> import json
    >>> from maker_graph.recursive import Role, Roles, create_recursive_graph
    >>> leaf = lambda inp: json.dumps({"solve_directly": True})
    >>> answer = lambda inp: json.dumps({"answer": "42"})
    >>> roles = Roles(decomposer=Role(model=leaf), discriminator=Role(model=leaf),
    ...               solver=Role(model=answer), composer=Role(model=answer))
    >>> create_recursive_graph(roles).compile().invoke({"problem": "6 × 7"})["answer"]
    '42'
"""

from .failures import Failure, NodeBudgetExhaustedError
from .graph import (
    RecursiveInput,
    RecursiveOutput,
    RecursiveState,
    TreeNode,
    create_recursive_graph,
    merge_nodes,
    recursion_condition,
)
from .nodes import (
    composer_node,
    create_composer_graph,
    create_decomposer_graph,
    create_discriminator_graph,
    create_solver_graph,
    decomposer_node,
    discriminator_node,
    solver_node,
)
from .parsers import (
    answer_key,
    canonical_decomposition,
    check_decomposition,
    structured_parser,
)
from .policy import RecursionPolicy
from .prompts import (
    composer_prompt,
    decomposer_prompt,
    discriminator_prompt,
    input_from_messages,
    solver_prompt,
)
from .record import (
    JsonlTreeRecorder,
    MemoryTreeRecorder,
    NodeView,
    TreeRecorder,
    TreeView,
    load_events,
    load_trees,
)
from .roles import (
    Candidate,
    Composer,
    Decomposer,
    Discriminator,
    NodeAllowance,
    Proposals,
    Role,
    Roles,
    Solver,
)
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
    # the driver
    "RecursionPolicy",
    "RecursiveInput",
    "RecursiveOutput",
    "RecursiveState",
    "TreeNode",
    "create_recursive_graph",
    "merge_nodes",
    "recursion_condition",
    # the roles as nodes and one-node sub-graphs
    "composer_node",
    "create_composer_graph",
    "create_decomposer_graph",
    "create_discriminator_graph",
    "create_solver_graph",
    "decomposer_node",
    "discriminator_node",
    "solver_node",
    # roles
    "Candidate",
    "Composer",
    "Decomposer",
    "Discriminator",
    "NodeAllowance",
    "Proposals",
    "Role",
    "Roles",
    "Solver",
    # schemas
    "Answer",
    "Choice",
    "ComposeInput",
    "DecomposeInput",
    "Decomposition",
    "DiscriminateInput",
    "Part",
    "SolveInput",
    # defaults: prompts, parsers, checks, keys
    "answer_key",
    "canonical_decomposition",
    "check_decomposition",
    "composer_prompt",
    "decomposer_prompt",
    "discriminator_prompt",
    "input_from_messages",
    "solver_prompt",
    "structured_parser",
    # the tree record
    "JsonlTreeRecorder",
    "MemoryTreeRecorder",
    "NodeView",
    "TreeRecorder",
    "TreeView",
    "load_events",
    "load_trees",
    # failures
    "Failure",
    "NodeBudgetExhaustedError",
]
