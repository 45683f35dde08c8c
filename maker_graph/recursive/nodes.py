"""The four roles as LangGraph nodes and one-node sub-graphs, for use in your own graphs.

Each `*_node(role)` returns a node (sync and async) that reads its input keys
from the state and writes its output keys; each `create_*_graph(role)` wraps
that node in an uncompiled `StateGraph` with its own small state, to be
compiled and added to a parent graph or invoked alone. `create_recursive_graph`
drives a whole tree with the same roles.

| factory                      | reads                             | writes                    |
|------------------------------|-----------------------------------|---------------------------|
| `create_decomposer_graph`    | `problem`                         | `candidates`, `proposals` |
| `create_discriminator_graph` | `problem`, `candidates`           | `decomposition`, `vote`   |
| `create_solver_graph`        | `problem`                         | `answer`, `vote`          |
| `create_composer_graph`      | `problem`, `composition`, `parts` | `answer`, `vote`          |

`candidates`, `decomposition` and `parts` are plain dicts (the JSON form of
`Decomposition` and `Part`); `proposals` and `vote` are `StepResult.to_dict()`.

Example:
    >>> from maker_graph.recursive import Role, Solver
    >>> solver = Solver(Role(model=lambda inp: '{"answer": "6"}'))
    >>> create_solver_graph(solver).compile().invoke({"problem": "2 × 3"})["answer"]
    '6'
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, StateGraph

# typing_extensions, not typing: LangGraph's server reads key docs and schemas from it on
# Python < 3.12.
from typing_extensions import NotRequired, TypedDict  # noqa: UP035

from .._util import async_node
from .roles import Composer, Decomposer, Discriminator, Solver
from .schemas import Decomposition, Part

__all__ = [
    "ComposerState",
    "DecomposerState",
    "DiscriminatorState",
    "SolverState",
    "composer_node",
    "create_composer_graph",
    "create_decomposer_graph",
    "create_discriminator_graph",
    "create_solver_graph",
    "decomposer_node",
    "discriminator_node",
    "solver_node",
]


class DecomposerState(TypedDict):
    problem: str
    candidates: NotRequired[list[dict[str, Any]]]
    proposals: NotRequired[dict[str, Any]]


class DiscriminatorState(TypedDict):
    problem: str
    candidates: list[dict[str, Any]]
    decomposition: NotRequired[dict[str, Any]]
    vote: NotRequired[dict[str, Any]]


class SolverState(TypedDict):
    problem: str
    answer: NotRequired[str]
    vote: NotRequired[dict[str, Any]]


class ComposerState(TypedDict):
    problem: str
    composition: str
    parts: list[dict[str, Any]]
    answer: NotRequired[str]
    vote: NotRequired[dict[str, Any]]


State = dict[str, Any]


def decomposer_node(decomposer: Decomposer) -> RunnableLambda[State, State]:
    """A node proposing decompositions of `state["problem"]` (the distinct ones, in order)."""

    async def run(state: State) -> State:
        proposals = await decomposer.propose(state["problem"])
        return {
            "candidates": [c.decomposition.model_dump(mode="json") for c in proposals.candidates],
            "proposals": proposals.result.to_dict(with_samples=True),
        }

    return async_node("decomposer", run)


def discriminator_node(discriminator: Discriminator) -> RunnableLambda[State, State]:
    """A node voting for one of `state["candidates"]`."""

    async def run(state: State) -> State:
        candidates = [Decomposition.model_validate(c) for c in state["candidates"]]
        chosen, vote = await discriminator.choose(state["problem"], candidates)
        return {
            "decomposition": chosen.model_dump(mode="json"),
            "vote": vote.to_dict(with_samples=True),
        }

    return async_node("discriminator", run)


def solver_node(solver: Solver) -> RunnableLambda[State, State]:
    """A node answering `state["problem"]` by a voted step."""

    async def run(state: State) -> State:
        vote = await solver.solve(state["problem"])
        return {
            "answer": str(getattr(vote.winner, "answer", vote.winner)).strip(),
            "vote": vote.to_dict(with_samples=True),
        }

    return async_node("solver", run)


def composer_node(composer: Composer) -> RunnableLambda[State, State]:
    """A node composing `state["parts"]` by `state["composition"]` into an answer."""

    async def run(state: State) -> State:
        parts = [Part.model_validate(p) for p in state["parts"]]
        vote = await composer.compose(state["problem"], state["composition"], parts)
        return {
            "answer": str(getattr(vote.winner, "answer", vote.winner)).strip(),
            "vote": vote.to_dict(with_samples=True),
        }

    return async_node("composer", run)


def _one_node(schema: type[Any], name: str, node: RunnableLambda[State, State]) -> StateGraph[Any]:
    builder: StateGraph[Any] = StateGraph(schema)
    builder.add_node(name, node)  # type: ignore[type-var]
    builder.add_edge(START, name)
    builder.add_edge(name, END)
    return builder


def create_decomposer_graph(decomposer: Decomposer) -> StateGraph[Any]:
    """A one-node sub-graph: `problem` -> distinct `candidates` and the `proposals` draw.

    Example:
        >>> import json
        >>> from maker_graph.recursive import Role
        >>> d = Decomposer(Role(model=lambda i: json.dumps({"solve_directly": True})))
        >>> create_decomposer_graph(d).compile().invoke({"problem": "p"})["candidates"]
        [{'solve_directly': True, 'subproblems': [], 'composition': ''}]
    """
    return _one_node(DecomposerState, "decomposer", decomposer_node(decomposer))


def create_discriminator_graph(discriminator: Discriminator) -> StateGraph[Any]:
    """A one-node sub-graph: `problem`, `candidates` -> the voted `decomposition` and `vote`.

    Example:
        >>> from maker_graph.recursive import Role
        >>> disc = Discriminator(Role(model=lambda i: '{"choice": 1}'))
        >>> cands = [{"solve_directly": True}]
        >>> out = create_discriminator_graph(disc).compile().invoke(
        ...     {"problem": "p", "candidates": cands})
        >>> out["decomposition"]["solve_directly"]
        True
    """
    return _one_node(DiscriminatorState, "discriminator", discriminator_node(discriminator))


def create_solver_graph(solver: Solver) -> StateGraph[Any]:
    """A one-node sub-graph: `problem` -> the voted `answer` and its `vote`."""
    return _one_node(SolverState, "solver", solver_node(solver))


def create_composer_graph(composer: Composer) -> StateGraph[Any]:
    """A one-node sub-graph: `problem`, `composition`, `parts` -> the voted `answer` and `vote`.

    Example:
        >>> from maker_graph.recursive import Role
        >>> c = Composer(Role(model=lambda i: '{"answer": "3"}'))
        >>> parts = [{"problem": "1", "answer": "1"}, {"problem": "2", "answer": "2"}]
        >>> create_composer_graph(c).compile().invoke(
        ...     {"problem": "1+2", "composition": "#1 + #2", "parts": parts})["answer"]
        '3'
    """
    return _one_node(ComposerState, "composer", composer_node(composer))
