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

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)

from .._bounded import nested_quantifier

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

_IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"
_NODE = r"^[A-Za-z_][A-Za-z0-9_\-]*$"
_REF = r"^[A-Za-z_][A-Za-z0-9_.\-]*(:[A-Za-z_][A-Za-z0-9_.]*)?$"
_SECRETS = re.compile(r"(^|_)(api_?key|secret|password|passwd|token|credentials?)$", re.I)

StateKeyName = Annotated[str, StringConstraints(pattern=_IDENT, max_length=64)]
NodeName = Annotated[str, StringConstraints(pattern=_NODE, max_length=64)]
ModelName = Annotated[str, StringConstraints(pattern=_NODE, max_length=64)]
Reference = Annotated[str, StringConstraints(pattern=_REF, max_length=200)]
"""A registry name, or `package.module:attribute` when the caller allows that import."""
Scalar = str | int | float | bool | None


def _shape(value: Any) -> str | None:
    """Tag a plain-data value by its shape, so a union reports one clear error."""
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, (dict, BaseModel)):
        return "mapping"
    return None


def _shape_of(*shapes: str) -> Discriminator:
    """Discriminate a union by the value's shape, with one clear error when none fits."""
    words = {"text": "text", "list": "a list", "mapping": "a mapping"}
    return Discriminator(
        _shape,
        custom_error_type="shape",
        custom_error_message=f"must be {' or '.join(words[s] for s in shapes)}",
    )


class _Spec(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        use_attribute_docstrings=True,
        frozen=True,
        strict=True,
    )


# --------------------------------------------------------------------------- state


StateType = Literal["str", "int", "float", "bool", "list", "dict", "any"]
Reducer = Literal["replace", "append", "add", "merge"]


class StateKey(_Spec):
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
    _shape_of("text", "mapping"),
]
"""A state key's declaration: its type alone (`str`), or a `StateKey` mapping."""


# --------------------------------------------------------------------------- models


class SimulatedErrors(_Spec):
    """How a simulated model errs (the fields of `maker_graph.testing.ErrorModel`)."""

    error_rate: float = Field(default=0.01, ge=0.0, le=1.0)
    """Chance that a well-formed answer is wrong."""
    rivals: int = Field(default=1, ge=1, le=1000)
    """Distinct wrong answers per step; 1 is the worst case for voting (all errors agree)."""
    hard_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    """Fraction of steps that are hard: their errors are more frequent and all agree."""
    hard_error_rate: float = Field(default=0.3, ge=0.0, le=1.0)
    """Error rate on hard steps."""
    ramble_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Chance of an over-long, rambling answer."""
    ramble_tokens: int = Field(default=1200, ge=1, le=1_000_000)
    """Output tokens a rambling answer is long."""
    ramble_error_rate: float = Field(default=0.5, ge=0.0, le=1.0)
    """Chance that a rambling answer is also wrong."""
    malformed_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Chance of an answer that breaks the expected format."""
    exception_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Chance that a call fails with a transient provider error (retried, never a vote)."""
    timeout_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Chance that a call times out (retried)."""
    rate_limit_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Chance that a call is throttled (retried after `retry_after`)."""
    retry_after: float = Field(default=0.0, ge=0.0, le=60.0)
    """The retry-after hint of a throttled call, in seconds."""
    latency_median: float = Field(default=0.0, ge=0.0, le=60.0)
    """Median seconds per call (lognormal); 0 answers at once."""
    latency_sigma: float = Field(default=0.5, ge=0.0, le=5.0)
    """Spread of the lognormal latency."""
    seed: int = 0
    """Seed of every random choice: the same seed gives the same run."""

    @model_validator(mode="after")
    def _some_call_succeeds(self) -> SimulatedErrors:
        if self.exception_rate + self.timeout_rate + self.rate_limit_rate >= 1.0:
            raise ValueError(
                "exception_rate + timeout_rate + rate_limit_rate must be < 1: "
                "otherwise no call could ever succeed"
            )
        return self


class OracleRule(_Spec):
    """If `match` is found in the prompt, the correct answer is `answer`."""

    match: str = Field(min_length=1, max_length=1000)
    """A regular expression searched (case-insensitively) in the last user message."""
    answer: str = Field(max_length=10_000)
    """The correct answer; `\\1` or `\\g<name>` insert the match's groups."""

    @field_validator("match")
    @classmethod
    def _compiles(cls, value: str) -> str:
        _compile(value)
        return value


class RulesOracle(_Spec):
    """The correct answer from the first matching rule, else `default`."""

    rules: list[OracleRule] = Field(min_length=1, max_length=1000)
    """Rules tried in order."""
    default: str | None = None
    """The answer when no rule matches (none: such a prompt is an error)."""


class FunctionOracle(_Spec):
    """The correct answer from a registered oracle: `oracle(prompt_text) -> str`."""

    function: Reference
    """A registered oracle's name (kind `oracle`)."""


class ConstantOracle(_Spec):
    """The same correct answer for every prompt."""

    answer: str = Field(max_length=10_000)
    """The answer."""


def _oracle_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        for tag in ("rules", "function", "answer"):
            if tag in value:
                return tag
        return None
    if isinstance(value, RulesOracle):
        return "rules"
    if isinstance(value, FunctionOracle):
        return "function"
    return "answer" if isinstance(value, ConstantOracle) else None


Oracle = Annotated[
    Annotated[RulesOracle, Tag("rules")]
    | Annotated[FunctionOracle, Tag("function")]
    | Annotated[ConstantOracle, Tag("answer")],
    Discriminator(
        _oracle_tag,
        custom_error_type="oracle_kind",
        custom_error_message="an oracle needs one of the keys rules, function or answer",
    ),
]


class SimulatedModel(_Spec):
    """A simulated chat model: right by its oracle, wrong as often as `errors` says.

    It is a real LangChain chat model (usage metadata, finish reasons, `max_tokens`),
    so a spec runs offline exactly as it would on a provider.
    """

    model: Literal["simulated"]
    """`simulated`."""
    oracle: Oracle | None = None
    """Where correct answers come from. Needed by maker and prompt nodes; decomposition
    nodes use their task's own ground truth instead."""
    choices: list[str] | None = Field(default=None, min_length=2, max_length=1000)
    """The possible answers (e.g. the labels); a wrong answer is another choice."""
    errors: SimulatedErrors = Field(default_factory=SimulatedErrors)
    """The error model."""


class ProviderModel(_Spec):
    """A provider's chat model, `PROVIDER:MODEL`, built by LangChain's `init_chat_model`."""

    model: Annotated[
        str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]+:[A-Za-z0-9_.:/@\-]+$", max_length=200)
    ]
    """`PROVIDER:MODEL`, e.g. `openai:gpt-4.1-mini` (needs `pip install 'maker-graph[openai]'`)."""
    base_url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=500)] | None = None
    """An OpenAI-compatible server's URL, e.g. a local model server."""
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    """The model's default temperature (maker nodes override it per sample)."""
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    """Cap on output tokens per call."""
    timeout: float | None = Field(default=None, gt=0.0, le=3600.0)
    """Seconds a call may take."""
    requests_per_second: float | None = Field(default=None, gt=0.0, le=10_000.0)
    """A client-side rate limit shared by every call to this model (default: none)."""
    api_key_env: Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]*$")] | None = None
    """The name of the environment variable holding the API key. Keys are never written
    in a spec; without this, the provider's usual variable (e.g. OPENAI_API_KEY) is used."""
    options: dict[StateKeyName, Scalar] = Field(default_factory=dict, max_length=50)
    """Further keyword arguments for the model's constructor (no secrets)."""

    @field_validator("options")
    @classmethod
    def _no_secret_options(cls, value: dict[str, Scalar]) -> dict[str, Scalar]:
        for name in value:
            if _SECRETS.search(name) or name in ("base_url", "model", "temperature", "max_tokens"):
                raise ValueError(
                    f"option {name!r} is not allowed here: "
                    + (
                        "secrets come only from environment variables (set api_key_env)"
                        if _SECRETS.search(name)
                        else f"use the model's own {name!r} field"
                    )
                )
        return value


def _model_tag(value: Any) -> str:
    model = value.get("model") if isinstance(value, dict) else getattr(value, "model", None)
    return "simulated" if model == "simulated" else "provider"


ModelSpec = Annotated[
    Annotated[SimulatedModel, Tag("simulated")] | Annotated[ProviderModel, Tag("provider")],
    Discriminator(_model_tag),
]
"""A named model: `simulated`, or a provider's `PROVIDER:MODEL`."""


# --------------------------------------------------------------------------- parsers


class TextParser(_Spec):
    """The answer is the reply's text."""

    kind: Literal["text"]
    strip: bool = True
    """Remove surrounding whitespace."""
    lowercase: bool = False
    """Lower-case the answer (so `Yes` and `yes` are one vote)."""


class LabelsParser(_Spec):
    """The answer must be one of the labels; anything else is red-flagged."""

    kind: Literal["labels"]
    labels: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=1000
    )
    """The allowed answers."""
    case_sensitive: bool = False
    """Compare case-sensitively (default: `Billing` counts as `billing`)."""

    @field_validator("labels")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for label in value:
            folded = label.casefold()
            if folded in seen:
                raise ValueError(f"label {label!r} is listed twice")
            seen.add(folded)
        return value


class RegexParser(_Spec):
    """The answer is a regular expression's match in the reply; no match is a red flag."""

    kind: Literal["regex"]
    pattern: str = Field(min_length=1, max_length=2000)
    """The regular expression (Python syntax)."""
    group: int | Annotated[str, StringConstraints(pattern=_IDENT)] = 0
    """The group to take: its number (0 is the whole match) or its name."""
    occurrence: Literal["first", "last", "only"] = "first"
    """Which match counts when there are several; `only` red-flags replies with more
    than one (a strict parser: the paper's takes the last)."""
    convert: Literal["str", "int", "float"] = "str"
    """Convert the matched text; a failed conversion is a red flag."""
    ignore_case: bool = False
    """Match case-insensitively."""

    @model_validator(mode="after")
    def _pattern_and_group(self) -> RegexParser:
        compiled = _compile(self.pattern, ignore_case=self.ignore_case, field="pattern")
        if isinstance(self.group, int) and not 0 <= self.group <= compiled.groups:
            raise ValueError(
                f"@group: group {self.group} does not exist: the pattern has "
                f"{compiled.groups} group(s)"
            )
        if isinstance(self.group, str) and self.group not in compiled.groupindex:
            names = ", ".join(compiled.groupindex) or "none"
            raise ValueError(f"@group: {self.group!r} is not a named group (named: {names})")
        return self


JsonType = Literal["object", "array", "string", "integer", "number", "boolean"]


class JsonSchemaSpec(_Spec):
    """A JSON Schema subset a reply must satisfy: types, properties, required, enum, ranges."""

    type: JsonType
    """The value's JSON type."""
    description: str = ""
    """What the value means (sent to providers that support structured output)."""
    properties: dict[StateKeyName, JsonSchemaSpec] | None = Field(default=None, max_length=200)
    """For objects: the schema of each property."""
    required: list[StateKeyName] | None = None
    """For objects: properties that must be present (default: all of them)."""
    items: JsonSchemaSpec | None = None
    """For arrays: the schema of every item."""
    enum: list[str | int | float | bool] | None = Field(default=None, min_length=1, max_length=1000)
    """The allowed values."""
    minimum: float | None = None
    """For numbers: the smallest allowed value."""
    maximum: float | None = None
    """For numbers: the largest allowed value."""
    min_length: int | None = Field(default=None, ge=0, alias="minLength")
    """For strings: the shortest allowed length."""
    max_length: int | None = Field(default=None, ge=0, alias="maxLength")
    """For strings: the longest allowed length."""

    @model_validator(mode="after")
    def _consistent(self) -> JsonSchemaSpec:
        if self.type == "object" and not self.properties:
            raise ValueError("@properties: an object needs at least one property")
        if self.type != "object" and (self.properties is not None or self.required is not None):
            raise ValueError(f"properties and required apply to objects, not {self.type}")
        if self.type == "array" and self.items is None:
            raise ValueError("@items: an array needs items")
        if self.type != "array" and self.items is not None:
            raise ValueError(f"@items: items applies to arrays, not {self.type}")
        if self.required and self.properties is not None:
            missing = [name for name in self.required if name not in self.properties]
            if missing:
                raise ValueError(f"@required: names unknown properties: {', '.join(missing)}")
        return self


class JsonParser(_Spec):
    """The reply is JSON that must satisfy `schema`; the answer is the parsed value."""

    kind: Literal["json"]
    schema_: JsonSchemaSpec = Field(alias="schema")
    """The schema every answer must satisfy; anything else is red-flagged."""
    structured: bool = False
    """Ask the provider for structured output (`with_structured_output`) instead of
    parsing JSON from the reply's text."""


class RegisteredParser(_Spec):
    """A registered parser (kind `parser`)."""

    kind: Literal["registered"]
    name: Reference
    """The parser's registry name (or an allowed `module:attribute`)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Arguments of a parser registered with `factory=True`."""


ParserSpec = Annotated[
    TextParser | LabelsParser | RegexParser | JsonParser | RegisteredParser,
    Field(discriminator="kind"),
]
"""How a reply becomes an answer; a reply that does not parse is red-flagged."""


# --------------------------------------------------------------------------- red flags


class MaxOutputTokensFlag(_Spec):
    """Red-flag replies longer than `limit` output tokens (the provider's count, else
    tiktoken's)."""

    kind: Literal["max_output_tokens"]
    limit: int = Field(ge=1, le=1_000_000)
    """The longest acceptable reply, in tokens (the paper used 750)."""
    encoding: Literal["o200k_base", "cl100k_base"] = "o200k_base"
    """The tokenizer used when the provider reports no count."""


class TruncatedFlag(_Spec):
    """Red-flag replies the provider cut off at the token cap."""

    kind: Literal["truncated"]


class MatchesFlag(_Spec):
    """Red-flag replies whose text matches a regular expression (refusals, hedging)."""

    kind: Literal["matches"]
    pattern: str = Field(min_length=1, max_length=2000)
    """The regular expression searched in the reply."""
    reason: Annotated[str, StringConstraints(pattern=_IDENT)] = "matches"
    """The reason recorded for flagged samples."""
    ignore_case: bool = True
    """Match case-insensitively."""

    @model_validator(mode="after")
    def _pattern(self) -> MatchesFlag:
        _compile(self.pattern, ignore_case=self.ignore_case, field="pattern")
        return self


class RegisteredFlag(_Spec):
    """A registered red flag (kind `red_flag`)."""

    kind: Literal["registered"]
    name: Reference
    """The check's registry name (or an allowed `module:attribute`)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Arguments of a check registered with `factory=True`."""


RedFlagSpec = Annotated[
    MaxOutputTokensFlag | TruncatedFlag | MatchesFlag | RegisteredFlag,
    Field(discriminator="kind"),
]
"""A check that discards a sample before it can vote."""


# --------------------------------------------------------------------------- keys


class KeyFields(_Spec):
    """Vote on some fields of a JSON answer: answers equal on these fields are one vote."""

    fields: list[StateKeyName] = Field(min_length=1, max_length=100)
    """The fields compared."""


class KeyFunction(_Spec):
    """Vote on a registered key function's value (kind `key`)."""

    function: Reference
    """The key function's registry name."""


def _key_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return "named"
    if isinstance(value, dict):
        return "fields" if "fields" in value else "function" if "function" in value else None
    if isinstance(value, KeyFields):
        return "fields"
    return "function" if isinstance(value, KeyFunction) else None


KeySpec = Annotated[
    Annotated[Literal["exact", "casefold"], Tag("named")]
    | Annotated[KeyFields, Tag("fields")]
    | Annotated[KeyFunction, Tag("function")],
    Discriminator(
        _key_tag,
        custom_error_type="key_kind",
        custom_error_message="must be exact, casefold, {fields: [...]} or {function: name}",
    ),
]


# --------------------------------------------------------------------------- nodes


class Message(_Spec):
    """One message of a prompt template."""

    role: Literal["system", "user", "assistant"]
    """Who speaks."""
    content: str = Field(min_length=1, max_length=100_000)
    """The text; `{key}` inserts the state key's value, `{{` and `}}` are literal braces."""


PromptSpec = Annotated[
    Annotated[str, StringConstraints(min_length=1), Tag("text")]
    | Annotated[list[Message], Field(min_length=1, max_length=100), Tag("list")],
    _shape_of("text", "list"),
]


class TemperatureSpec(_Spec):
    """Temperature per sample: the first is the model's best guess, later ones vary a little."""

    first: float | None = Field(default=0.0, ge=0.0, le=2.0)
    """Temperature of each step's first sample (null: the model's own)."""
    rest: float | None = Field(default=0.1, ge=0.0, le=2.0)
    """Temperature of every later sample (null: the model's own)."""


class Budget(_Spec):
    """What a step may spend, and what happens when it is spent."""

    max_samples: int | None = Field(default=None, ge=1, le=100_000)
    """Samples one step may draw, red-flagged ones included (default: 10 k + 20)."""
    on_no_consensus: Literal["raise", "plurality", "escalate"] = "raise"
    """When the budget is spent: fail the run, take the most-voted answer, or interrupt
    the graph for a human (or the caller) to answer."""
    max_concurrency: int | None = Field(default=None, ge=1, le=1000)
    """Provider calls of one step in flight at once (default: a whole round)."""


class _PromptedNode(_Spec):
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
    _shape_of("text", "list"),
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
        if self.budget.max_samples is not None and self.budget.max_samples < self.k:
            raise ValueError(
                f"@budget.max_samples: must be >= k ({self.k}), got "
                f"{self.budget.max_samples}: fewer samples can never decide a step"
            )
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


class DecompositionNode(_Spec):
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
        if self.budget.max_samples is not None and self.budget.max_samples < self.k:
            raise ValueError(
                f"@budget.max_samples: must be >= k ({self.k}), got "
                f"{self.budget.max_samples}: fewer samples can never decide a step"
            )
        both = sorted(set(self.params) & set(self.params_from))
        if both:
            raise ValueError(f"@params_from: sets {', '.join(both)}, which params sets too")
        return self


class FunctionNode(_Spec):
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


class Edge(_Spec):
    """Always go from one node to another. Shorthand: the string `"a -> b"`."""

    source: NodeName = Field(alias="from")
    """The node the edge leaves (or `START`)."""
    target: NodeName = Field(alias="to")
    """The node the edge enters (or `END`)."""


EdgeSpec = Annotated[
    Annotated[str, StringConstraints(pattern=_EDGE_TEXT), Tag("text")]
    | Annotated[Edge, Tag("mapping")],
    _shape_of("text", "mapping"),
]


class Route(_Spec):
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


class GraphSpec(_Spec):
    """A graph spec: state, models, nodes and how they connect."""

    schema_ref: str | None = Field(default=None, alias="$schema")
    """The JSON Schema's location, for editors; ignored by the loader."""
    version: Literal[1] = 1
    """The spec format's version."""
    name: Annotated[str, StringConstraints(pattern=_NODE, max_length=64)]
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


# --------------------------------------------------------------------------- helpers


def _compile(pattern: str, *, ignore_case: bool = False, field: str = "") -> re.Pattern[str]:
    # In a model-level check, "@field: " tells the error which field it is about.
    where = f"@{field}: " if field else ""
    try:
        compiled = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise ValueError(f"{where}invalid regular expression {pattern!r}: {exc}") from None
    nested = nested_quantifier(pattern, compiled.flags)
    if nested:
        raise ValueError(
            f"{where}regular expression {pattern!r} has {nested}, which can take exponential "
            "time on a reply that almost matches; rewrite it without the nesting (or make "
            "the inner quantifier possessive, e.g. a++)"
        )
    return compiled


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
        if not re.match(_IDENT, field):
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
