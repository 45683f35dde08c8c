"""Default prompts of the four roles, with room for a task's own guidance.

Each builder turns a role's input model into chat messages: a system message
that says what the role does and what shape its answer must have, and a human
message carrying the input as JSON between fixed markers (so an answer can be
traced back to exactly what the model saw). A task adds its own know-how with
`guidance` (how to split, the notation of a composition, what a leaf is).

Example:
    >>> from maker_graph.recursive.schemas import SolveInput
    >>> build = solver_prompt(guidance="Answer with digits only.")
    >>> [m.type for m in build(SolveInput(problem="12 × 34"))]
    ['system', 'human']
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TypeVar

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel

from .schemas import ComposeInput, DecomposeInput, DiscriminateInput, SolveInput

__all__ = [
    "INPUT_BEGIN",
    "INPUT_END",
    "PromptBuilder",
    "composer_prompt",
    "decomposer_prompt",
    "discriminator_prompt",
    "input_from_messages",
    "render_input",
    "solver_prompt",
]

INPUT_BEGIN = "<input>"
"""Marks the start of the JSON input in a role's human message."""
INPUT_END = "</input>"
"""Marks the end of the JSON input in a role's human message."""

In = TypeVar("In", bound=BaseModel)
PromptBuilder = Callable[[In], list[BaseMessage]]
"""Builds a role's chat messages from its input model."""

_DECOMPOSER = """\
You are a decomposer in a team that solves problems by splitting them into \
smaller ones. Look at the problem and decide one of two things.
- If a careful solver can answer it reliably in one short step, say so: \
solve_directly = true, no subproblems, empty composition.
- Otherwise split it into 2 to {max_fanout} independent subproblems, each \
strictly smaller than the problem, and write a composition: a formula that \
gives the problem's answer from the subproblems' answers, written #1, #2, ... \
in the order of the subproblems. Use every subproblem.
Answer with the structured fields only."""

_DISCRIMINATOR = """\
You are a discriminator. Several decomposers proposed ways to split the same \
problem. Check each candidate: are the subproblems right, smaller than the \
problem, and does its composition give exactly the problem's answer when the \
subproblems are answered correctly? Choose the best candidate by its number \
(1 is the first). Answer with the structured field only."""

_SOLVER = """\
You are a solver. Answer the problem exactly, in one step. Give the answer \
only, with no explanation, in the structured field."""

_COMPOSER = """\
You are a composer. The problem was split into subproblems, which have been \
answered. Apply the composition to those answers (#1 is the first \
subproblem's answer, #2 the second's, ...) and give the problem's answer \
exactly, with no explanation, in the structured field."""


def render_input(value: BaseModel) -> str:
    """The JSON form of a role's input between `INPUT_BEGIN` and `INPUT_END`."""
    body = json.dumps(value.model_dump(mode="json"), ensure_ascii=False, indent=1)
    return f"{INPUT_BEGIN}\n{body}\n{INPUT_END}"


def input_from_messages(messages: Sequence[BaseMessage], schema: type[In]) -> In:
    """Recover a role's input model from the messages a default prompt produced.

    Simulated chat models use it to find the problem they are asked about.

    Raises:
        ValueError: no message carries an input block.
    """
    for message in reversed(messages):
        text = message.content if isinstance(message.content, str) else str(message.content)
        start = text.find(INPUT_BEGIN)
        end = text.rfind(INPUT_END)
        if start != -1 and end > start:
            return schema.model_validate_json(text[start + len(INPUT_BEGIN) : end])
    raise ValueError(f"no {INPUT_BEGIN}...{INPUT_END} block in the messages")


def _builder(system: str, lead: str, guidance: str) -> Callable[[BaseModel], list[BaseMessage]]:
    text = system if not guidance else f"{system}\n\n{guidance.strip()}"

    def build(value: BaseModel) -> list[BaseMessage]:
        return [SystemMessage(text), HumanMessage(f"{lead}\n{render_input(value)}")]

    return build


def decomposer_prompt(
    guidance: str = "", *, max_fanout: int = 4
) -> Callable[[DecomposeInput], list[BaseMessage]]:
    """The decomposer's prompt: solve directly, or split into 2..`max_fanout` subproblems.

    Example:
        >>> msgs = decomposer_prompt()(DecomposeInput(problem="12 × 34"))
        >>> "12 × 34" in msgs[1].content
        True
    """
    return _builder(_DECOMPOSER.format(max_fanout=max_fanout), "Problem to decompose:", guidance)


def discriminator_prompt(guidance: str = "") -> Callable[[DiscriminateInput], list[BaseMessage]]:
    """The discriminator's prompt: pick the best of the numbered candidates.

    Example:
        >>> from maker_graph.recursive.schemas import Decomposition
        >>> inp = DiscriminateInput(problem="p", candidates=[Decomposition(solve_directly=True)])
        >>> discriminator_prompt()(inp)[0].type
        'system'
    """
    return _builder(_DISCRIMINATOR, "Problem and candidates (numbered from 1):", guidance)


def solver_prompt(guidance: str = "") -> Callable[[SolveInput], list[BaseMessage]]:
    """The solver's prompt: answer a leaf problem exactly.

    Example:
        >>> solver_prompt()(SolveInput(problem="2 × 3"))[1].type
        'human'
    """
    return _builder(_SOLVER, "Problem to solve:", guidance)


def composer_prompt(guidance: str = "") -> Callable[[ComposeInput], list[BaseMessage]]:
    """The composer's prompt: apply the composition to the sub-answers.

    Example:
        >>> from maker_graph.recursive.schemas import Part
        >>> inp = ComposeInput(problem="p", composition="#1", parts=[Part(problem="a", answer="1")])
        >>> composer_prompt()(inp)[1].content.startswith("Problem")
        True
    """
    return _builder(_COMPOSER, "Problem, composition and answered subproblems:", guidance)
