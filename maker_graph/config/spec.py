"""The declarative graph spec: pydantic models of a YAML/JSON file that builds a `StateGraph`.

A spec declares the graph's state keys, its models, its nodes (maker-voted
steps, plain prompt-model calls, decomposition runs over a registered task,
registered functions) and how they connect (edges, routes on a state value,
an entry and finish points). These models check each field's type and range;
`maker_graph.config.checks` then checks references and the graph's shape, and
`load_graph` builds the graph.

The JSON Schema published as `maker-graph.schema.json` is generated from
these models (`spec_json_schema()`), so field docs live here, once.

Example:
    >>> spec = GraphSpec.model_validate({
    ...     "name": "echo",
    ...     "state": {"text": "str", "reply": "str"},
    ...     "nodes": {"shout": {"kind": "function", "function": "format_text",
    ...                         "params": {"template": "{text}!", "output": "reply"}}},
    ...     "entry": "shout",
    ...     "finish": ["shout"],
    ... })
    >>> sorted(spec.nodes)
    ['shout']
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, Tag, field_validator, model_validator

from ._spec_answers import (
    JsonParser,
    JsonSchemaSpec,
    KeyFields,
    KeyFunction,
    KeySpec,
    LabelsParser,
    MatchesFlag,
    MaxOutputTokensFlag,
    ParserSpec,
    RedFlagSpec,
    RegexParser,
    RegisteredFlag,
    RegisteredParser,
    TextParser,
    TruncatedFlag,
)
from ._spec_models import (
    ConstantOracle as ConstantOracle,  # re-exported: defined here before the split
)
from ._spec_models import (
    FunctionOracle,
    ModelSpec,
    OracleRule,
    ProviderModel,
    RulesOracle,
    SimulatedErrors,
    SimulatedModel,
)
from ._spec_parts import (
    IDENT,
    NODE,
    ModelName,
    NodeName,
    Reference,
    SpecPart,
    StateKeyName,
    shape_of,
)

__all__ = [
    "END_NAME",
    "SPEC_VERSION",
    "START_NAME",
    "Budget",
    "DecompositionNode",
    "Edge",
    "EdgeSpec",
    "FunctionNode",
    "FunctionOracle",
    "GraphSpec",
    "JsonParser",
    "JsonSchemaSpec",
    "KeyFields",
    "KeyFunction",
    "LabelsParser",
    "MakerNode",
    "MatchesFlag",
    "MaxOutputTokensFlag",
    "Message",
    "ModelSpec",
    "NodeSpec",
    "OracleRule",
    "ParserSpec",
    "PromptNode",
    "ProviderModel",
    "RedFlagSpec",
    "RegexParser",
    "RegisteredFlag",
    "RegisteredParser",
    "Route",
    "RulesOracle",
    "SimulatedErrors",
    "SimulatedModel",
    "StateEntry",
    "StateKey",
    "TemperatureSpec",
    "TextParser",
    "TruncatedFlag",
    "placeholders",
    "prompt_placeholders",
    "spec_json_schema",
]

SPEC_VERSION = 1
START_NAME = "START"
"""The graph's start, usable as an edge's `from`."""
END_NAME = "END"
"""The graph's end, usable as an edge's `to` or a route's target."""

# --------------------------------------------------------------------------- state


StateType = Literal["str", "int", "float", "bool", "list", "dict", "any"]
Reducer = Literal["replace", "append", "add", "merge"]


class StateKey(SpecPart):
    """One key of the graph state. Shorthand: `ticket: str` means `{type: str}`."""

    type: StateType = "any"
    """The value's type; shown to clients (LangGraph Studio, the server's input schema)."""
    reducer: Reducer = "replace"
    """How a node's write combines with the current value: `replace` it, `append` to a
    list (a single item or a list of items), `add` numbers, or `merge` dicts."""
    description: str = ""
    """What the key holds, for people and for the generated input schema."""

    @model_validator(mode="after")
    def _reducer_fits_type(self) -> StateKey:
        allowed: dict[str, tuple[str, ...]] = {
            "append": ("list", "any"),
            "add": ("int", "float", "any"),
            "merge": ("dict", "any"),
        }
        types = allowed.get(self.reducer)
        if types is not None and self.type not in types:
            raise ValueError(
                f"@reducer: {self.reducer!r} needs type {' or '.join(types)}, got {self.type!r}"
            )
        return self


StateEntry = Annotated[
    Annotated[StateType, Tag("text")] | Annotated[StateKey, Tag("mapping")],
    shape_of("text", "mapping"),
]
"""A state key's declaration: its type alone (`str`), or a `StateKey` mapping."""


# --------------------------------------------------------------------------- nodes


class Message(SpecPart):
    """One message of a prompt template."""

    role: Literal["system", "user", "assistant"]
    """Who speaks."""
    content: str = Field(min_length=1, max_length=100_000)
    """The text; `{key}` inserts the state key's value, `{{` and `}}` are literal braces."""


PromptSpec = Annotated[
    Annotated[str, StringConstraints(min_length=1), Tag("text")]
    | Annotated[list[Message], Field(min_length=1, max_length=100), Tag("list")],
    shape_of("text", "list"),
]


_Heat = Annotated[float, Field(ge=0.0, le=2.0)]


class TemperatureSpec(SpecPart):
    """Temperature per sample: the first is the model's best guess, later ones vary a little.

    With `hotter`, a step whose first round (samples 0 .. k-1) did not decide it draws
    its later samples hotter (temperature escalation, `EscalatingTemperature`)."""

    first: float | None = Field(default=0.0, ge=0.0, le=2.0)
    """Temperature of each step's first sample (null: the model's own)."""
    rest: float | None = Field(default=0.1, ge=0.0, le=2.0)
    """Temperature of the later samples (with `hotter`: of the rest of the first round;
    null: the model's own)."""
    hotter: list[_Heat] | None = Field(default=None, min_length=1, max_length=20)
    """Temperature escalation: samples after the first round, k at a time, are drawn at
    these temperatures in turn, staying at the last (null: no escalation)."""


class Budget(SpecPart):
    """What a step may spend, and what happens when it is spent."""

    max_samples: int | None = Field(default=None, ge=1, le=100_000)
    """Samples one step may draw, red-flagged ones included (default: 10 k + 20)."""
    on_no_consensus: Literal["raise", "plurality", "escalate"] = "raise"
    """When the budget is spent: fail the run, take the most-voted answer, or interrupt
    the graph for a human (or the caller) to answer."""
    max_concurrency: int | None = Field(default=None, ge=1, le=1000)
    """Provider calls of one step in flight at once (default: a whole round)."""

    def check_fits(self, k: int) -> None:
        """Refuse a cap below the margin `k` (in a node's model-level check)."""
        if self.max_samples is not None and self.max_samples < k:
            raise ValueError(
                f"@budget.max_samples: must be >= k ({k}), got "
                f"{self.max_samples}: fewer samples can never decide a step"
            )


class _PromptedNode(SpecPart):
    description: str = ""
    """What the node does."""
    prompt: PromptSpec
    """The prompt: a string (one user message) or a list of messages. `{key}` inserts a
    state key's value."""
    inputs: list[StateKeyName] | None = Field(default=None, max_length=200)
    """The state keys the node reads (default: the prompt's placeholders)."""
    output: StateKeyName
    """The state key the answer is written to."""
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    """Cap on each reply's output tokens (a runaway reply costs little)."""

    @field_validator("prompt")
    @classmethod
    def _placeholders_are_names(cls, value: Any) -> Any:
        prompt_placeholders(value)
        return value


_ModelText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
ModelRef = Annotated[
    Annotated[_ModelText, Tag("text")]
    | Annotated[list[_ModelText], Field(min_length=1, max_length=20), Tag("list")],
    shape_of("text", "list"),
]


class MakerNode(_PromptedNode):
    """A MAKER step: sampled until one answer leads by `k` votes, red flags discarded."""

    kind: Literal["maker"]
    model: ModelRef
    """A model's name (from `models`), `PROVIDER:MODEL`, or a list of them: sample i uses
    model i mod n, so different models decorrelate errors."""
    k: int = Field(default=3, ge=1, le=100)
    """The margin: an answer wins once it has k more votes than any other."""
    parser: ParserSpec = Field(default_factory=lambda: TextParser(kind="text"))
    """How a reply becomes an answer (default: its stripped text)."""
    key: KeySpec = "exact"
    """What makes two answers the same vote: `exact`, `casefold` (text compared without
    case), `{fields: [...]}` (JSON answers equal on these fields) or `{function: name}`."""
    red_flags: list[RedFlagSpec] = Field(default_factory=list, max_length=50)
    """Checks that discard a sample before it votes."""
    budget: Budget = Field(default_factory=Budget)
    """The per-step sample budget and what happens when it is spent."""
    temperature: TemperatureSpec = Field(default_factory=TemperatureSpec)
    """Temperature of the first and of later samples."""
    stats: StateKeyName | None = None
    """A state key receiving the step's statistics (tally, samples, red flags, tokens)."""
    prompts: list[PromptSpec] = Field(default_factory=list, max_length=50)
    """Other wordings of `prompt` (prompt rotation): sample i of a step is asked the
    (i mod n)-th of `prompt` and these, so a model stuck on one wording of a step is
    asked another. Each uses exactly the placeholders of `prompt`."""

    @model_validator(mode="after")
    def _paraphrases_match(self) -> MakerNode:
        wanted = set(prompt_placeholders(self.prompt))
        for i, paraphrase in enumerate(self.prompts):
            try:
                used = set(prompt_placeholders(paraphrase))
            except ValueError as exc:
                raise ValueError(f"@prompts.{i}: {exc}") from None
            if used != wanted:

                def braces(names: set[str]) -> str:
                    return ", ".join(f"{{{n}}}" for n in sorted(names)) or "none"

                raise ValueError(
                    f"@prompts.{i}: a paraphrase must use the placeholders of prompt "
                    f"({braces(wanted)}), this one uses {braces(used)}: every wording is "
                    "filled from the same state keys"
                )
        return self

    @model_validator(mode="after")
    def _budget_fits_k(self) -> MakerNode:
        self.budget.check_fits(self.k)
        return self


class PromptNode(_PromptedNode):
    """One plain model call (no vote): the reply, parsed if a parser is given."""

    kind: Literal["prompt"]
    model: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    """A model's name (from `models`) or `PROVIDER:MODEL`."""
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    """The call's temperature (null: the model's own)."""
    parser: ParserSpec | None = None
    """Parse the reply (a reply that does not parse fails the run); default: its text."""


class DecompositionNode(SpecPart):
    """A long task decomposed into voted micro-steps (MAKER's MAD loop) as a sub-graph."""

    kind: Literal["decomposition"]
    description: str = ""
    """What the node does."""
    task: Reference
    """A registered task's name (kind `task`), e.g. `hanoi`."""
    params: dict[StateKeyName, Any] = Field(default_factory=dict)
    """The task factory's fixed arguments, e.g. `{disks: 4}`."""
    params_from: dict[StateKeyName, StateKeyName] = Field(default_factory=dict)
    """Task arguments read from the state at run time: `{argument: state_key}`."""
    model: ModelRef
    """The model(s) sampling each micro-step; a `simulated` model answers from the task's
    ground truth."""
    k: int = Field(default=3, ge=1, le=100)
    """The margin of every micro-step's vote."""
    red_flags: list[RedFlagSpec] = Field(default_factory=list, max_length=50)
    """Checks that discard a micro-step's sample (the task's parser always applies)."""
    budget: Budget = Field(default_factory=Budget)
    """The per-micro-step sample budget."""
    temperature: TemperatureSpec = Field(default_factory=TemperatureSpec)
    """Temperature of the first and of later samples of each micro-step."""
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    """Cap on each reply's output tokens."""
    prompt_rotation: bool = False
    """Provider models: sample i of a micro-step is asked the task's (i mod n)-th wording
    (tasks with `rotated_prompts()`, e.g. `hanoi`), so a model stuck on one wording of a
    step is asked another."""
    max_total_samples: int | None = Field(default=None, ge=1)
    """A budget of samples for the whole run: when spent the run stops with an error
    that says so (a guard when task parameters come from the state)."""
    max_total_tokens: int | None = Field(default=None, ge=1)
    """A budget of tokens (input and output) for the whole run."""
    chunk: int = Field(default=10_000, ge=1, le=10_000_000)
    """Steps per superstep of the decomposition graph. 1 sends every step through the
    voting sub-graph (small, visible runs: LangGraph's recursion limit caps them at a few
    thousand steps); the default keeps orchestration a rounding error."""
    output: StateKeyName
    """The state key receiving the run's summary (steps, solved, final state, samples)."""

    @model_validator(mode="after")
    def _budget_fits_k(self) -> DecompositionNode:
        self.budget.check_fits(self.k)
        both = sorted(set(self.params) & set(self.params_from))
        if both:
            raise ValueError(f"@params_from: sets {', '.join(both)}, which params sets too")
        return self


class FunctionNode(SpecPart):
    """A registered function as a node: `fn(state, **params)` returns the state update."""

    kind: Literal["function"]
    description: str = ""
    """What the node does."""
    function: Reference
    """The function's registry name (kind `function`), or `package.module:attribute` when
    the caller allows that import."""
    params: dict[StateKeyName, Any] = Field(default_factory=dict)
    """Keyword arguments passed to the function."""


NodeSpec = Annotated[
    MakerNode | PromptNode | DecompositionNode | FunctionNode,
    Field(discriminator="kind"),
]
"""A node: `maker`, `prompt`, `decomposition` or `function`."""


# --------------------------------------------------------------------------- edges


_EDGE_TEXT = r"^\s*[A-Za-z_][A-Za-z0-9_\-]*\s*->\s*[A-Za-z_][A-Za-z0-9_\-]*\s*$"


class Edge(SpecPart):
    """Always go from one node to another. Shorthand: the string `"a -> b"`."""

    source: NodeName = Field(alias="from")
    """The node the edge leaves (or `START`)."""
    target: NodeName = Field(alias="to")
    """The node the edge enters (or `END`)."""


EdgeSpec = Annotated[
    Annotated[str, StringConstraints(pattern=_EDGE_TEXT), Tag("text")]
    | Annotated[Edge, Tag("mapping")],
    shape_of("text", "mapping"),
]


class Route(SpecPart):
    """A conditional edge: after `from`, go where the state key `on` says."""

    source: NodeName = Field(alias="from")
    """The node the route leaves."""
    on: StateKeyName
    """The state key whose value picks the next node."""
    cases: dict[Annotated[str, StringConstraints(max_length=200)], NodeName] = Field(
        min_length=1, max_length=1000
    )
    """Value -> next node (or `END`). Values compare as text: `true`/`false` for booleans,
    digits for integers."""
    default: NodeName | None = None
    """Where to go when the value is in no case (none: such a value fails the run)."""

    @model_validator(mode="before")
    @classmethod
    def _yaml_11_on(cls, data: Any) -> Any:
        # YAML 1.1 (PyYAML's `safe_load`) reads the bare key `on:` as the boolean True.
        # Our own loader does not, but users pass dicts they loaded themselves.
        if isinstance(data, dict) and True in data and "on" not in data:
            data = {("on" if key is True else key): value for key, value in data.items()}
        return data


# --------------------------------------------------------------------------- the graph


class GraphSpec(SpecPart):
    """A graph spec: state, models, nodes and how they connect."""

    schema_ref: str | None = Field(default=None, alias="$schema")
    """The JSON Schema's location, for editors; ignored by the loader."""
    version: Literal[1] = 1
    """The spec format's version."""
    name: Annotated[str, StringConstraints(pattern=NODE, max_length=64)]
    """The graph's name (the compiled graph's name in traces and the server)."""
    description: str = ""
    """What the graph does."""
    state: dict[StateKeyName, StateEntry] = Field(min_length=1, max_length=500)
    """The state's keys: `name: type` or `name: {type, reducer, description}`."""
    input: list[StateKeyName] | None = None
    """The keys a caller may pass in (default: all)."""
    output: list[StateKeyName] | None = None
    """The keys returned to the caller (default: all)."""
    models: dict[ModelName, ModelSpec] = Field(default_factory=dict, max_length=100)
    """Named models the nodes refer to."""
    nodes: dict[NodeName, NodeSpec] = Field(min_length=1, max_length=500)
    """The nodes, by name."""
    edges: list[EdgeSpec] = Field(default_factory=list, max_length=5000)
    """Unconditional edges: `{from: a, to: b}` or `"a -> b"`; `START` and `END` name the
    graph's ends."""
    routes: list[Route] = Field(default_factory=list, max_length=500)
    """Conditional edges that route on a state value."""
    entry: NodeName | None = None
    """The first node (shorthand for the edge `START -> entry`)."""
    finish: list[NodeName] = Field(default_factory=list, max_length=500)
    """Nodes after which the graph ends (shorthand for edges `node -> END`)."""

    def state_keys(self) -> dict[str, StateKey]:
        """Every state key with its full declaration (shorthands expanded)."""
        return {
            name: value if isinstance(value, StateKey) else StateKey(type=value)
            for name, value in self.state.items()
        }

    def edge_list(self) -> list[tuple[int, str, str]]:
        """Every unconditional edge as `(index in edges, from, to)`; -1 for entry/finish."""
        out: list[tuple[int, str, str]] = []
        for i, edge in enumerate(self.edges):
            if isinstance(edge, str):
                source, _, target = edge.partition("->")
                out.append((i, source.strip(), target.strip()))
            else:
                out.append((i, edge.source, edge.target))
        if self.entry is not None:
            out.append((-1, START_NAME, self.entry))
        out.extend((-1, name, END_NAME) for name in self.finish)
        return out


def placeholders(template: str) -> list[str]:
    """The state keys a prompt template inserts, in order of first use.

    Only bare names are allowed: `{ticket}`, not `{ticket.attr}` or `{ticket[0]}`
    (a template must not reach into Python objects).

    Raises:
        ValueError: malformed braces or a placeholder that is not a bare name.

    Example:
        >>> placeholders("Ticket: {ticket} (from {customer}); literal {{braces}}")
        ['ticket', 'customer']
    """
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(
            f"malformed template braces: {exc} (write {{{{ and }}}} for literal braces)"
        ) from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if not re.match(IDENT, field):
            raise ValueError(
                f"placeholder {{{field}}} must be a state key's bare name "
                "(no attributes, indexes or empty braces)"
            )
        if spec or conversion:
            raise ValueError(f"placeholder {{{field}}} takes no format spec or conversion")
        if field not in names:
            names.append(field)
    return names


def prompt_placeholders(prompt: str | Sequence[Message]) -> list[str]:
    """The state keys a prompt (a string or a list of messages) inserts, in order of first use.

    Raises:
        ValueError: malformed braces or a placeholder that is not a bare name.

    Example:
        >>> prompt_placeholders([Message(role="system", content="Be brief."),
        ...                      Message(role="user", content="{a} + {b} = ?")])
        ['a', 'b']
    """
    texts = [prompt] if isinstance(prompt, str) else [m.content for m in prompt]
    names: list[str] = []
    for text in texts:
        names += [n for n in placeholders(text) if n not in names]
    return names


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema of graph specs, generated from `GraphSpec`.

    Example:
        >>> spec_json_schema()["title"]
        'maker-graph spec'
    """
    schema = GraphSpec.model_json_schema(by_alias=True)
    schema["title"] = "maker-graph spec"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://maker-graph.dev/schema/spec-v1.json"
    return schema
