"""The pydantic models that cross the model boundary in recursive decomposition.

Every role reads one input model and answers with one output model:

| role          | input              | output          |
|---------------|--------------------|-----------------|
| decomposer    | `DecomposeInput`   | `Decomposition` |
| discriminator | `DiscriminateInput`| `Choice`        |
| solver        | `SolveInput`       | `Answer`        |
| composer      | `ComposeInput`     | `Answer`        |

The outputs forbid unknown fields: an answer in any other shape is a red flag,
never something to guess at. Sub-answers are referred to in a composition as
`#1`, `#2`, ... in the order of `Decomposition.subproblems`.

Example:
    >>> Decomposition(subproblems=["12 × 34", "5 × 34"], composition="#1 * 10^1 + #2").is_split
    True
    >>> Decomposition(solve_directly=True).is_split
    False
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Answer",
    "Choice",
    "ComposeInput",
    "DecomposeInput",
    "Decomposition",
    "DiscriminateInput",
    "Part",
    "SolveInput",
]


class _Output(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Input(BaseModel):
    model_config = ConfigDict(frozen=True)


class Decomposition(_Output):
    """A decomposer's proposal: solve the problem directly, or split it.

    Example:
        >>> Decomposition(subproblems=["a", "b"], composition="#1 + #2").subproblems
        ['a', 'b']
    """

    solve_directly: bool = Field(
        default=False,
        description="true when the problem is small enough to answer in one step",
    )
    subproblems: list[str] = Field(
        default_factory=list,
        description="independent, smaller problems (empty when solving directly)",
    )
    composition: str = Field(
        default="",
        description="how the sub-answers #1, #2, ... combine into the answer",
    )

    @property
    def is_split(self) -> bool:
        return not self.solve_directly


class Choice(_Output):
    """A discriminator's pick among numbered candidate decompositions (1-based).

    Example:
        >>> Choice(choice=2).choice
        2
    """

    choice: int = Field(description="the number of the best candidate, starting at 1")


class Answer(_Output):
    """A solver's or composer's answer.

    Example:
        >>> Answer(answer="42").answer
        '42'
    """

    answer: str = Field(description="the answer only, without explanation")


class DecomposeInput(_Input):
    """What a decomposer sees: the problem.

    Example:
        >>> DecomposeInput(problem="12 × 34").problem
        '12 × 34'
    """

    problem: str


class DiscriminateInput(_Input):
    """What a discriminator sees: the problem and the distinct candidate decompositions.

    Example:
        >>> d = DiscriminateInput(problem="p", candidates=[Decomposition(solve_directly=True)])
        >>> len(d.candidates)
        1
    """

    problem: str
    candidates: list[Decomposition]


class SolveInput(_Input):
    """What a solver sees: a leaf problem.

    Example:
        >>> SolveInput(problem="12 × 34").problem
        '12 × 34'
    """

    problem: str


class Part(_Input):
    """One solved sub-problem, as a composer sees it."""

    problem: str
    answer: str


class ComposeInput(_Input):
    """What a composer sees: the problem, the chosen composition and the solved parts.

    Example:
        >>> parts = [Part(problem="a", answer="1"), Part(problem="b", answer="2")]
        >>> ComposeInput(problem="p", composition="#1 + #2", parts=parts).parts[1].answer
        '2'
    """

    problem: str
    composition: str
    parts: list[Part]
