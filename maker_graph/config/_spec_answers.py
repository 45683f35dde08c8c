"""Spec models of what a reply becomes: its parser, its red flags, its vote key.

Re-exported by `maker_graph.config.spec`, their documented home.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, StringConstraints, Tag, field_validator, model_validator

from ._spec_parts import IDENT, Reference, SpecPart, StateKeyName, compile_pattern

# --------------------------------------------------------------------------- parsers


class TextParser(SpecPart):
    """The answer is the reply's text."""

    kind: Literal["text"]
    strip: bool = True
    """Remove surrounding whitespace."""
    lowercase: bool = False
    """Lower-case the answer (so `Yes` and `yes` are one vote)."""


class LabelsParser(SpecPart):
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


class RegexParser(SpecPart):
    """The answer is a regular expression's match in the reply; no match is a red flag."""

    kind: Literal["regex"]
    pattern: str = Field(min_length=1, max_length=2000)
    """The regular expression (Python syntax)."""
    group: int | Annotated[str, StringConstraints(pattern=IDENT)] = 0
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
        compiled = compile_pattern(self.pattern, ignore_case=self.ignore_case, field="pattern")
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


class JsonSchemaSpec(SpecPart):
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


class JsonParser(SpecPart):
    """The reply is JSON that must satisfy `schema`; the answer is the parsed value."""

    kind: Literal["json"]
    schema_: JsonSchemaSpec = Field(alias="schema")
    """The schema every answer must satisfy; anything else is red-flagged."""
    structured: bool = False
    """Ask the provider for structured output (`with_structured_output`) instead of
    parsing JSON from the reply's text."""


class RegisteredParser(SpecPart):
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


class MaxOutputTokensFlag(SpecPart):
    """Red-flag replies longer than `limit` output tokens (the provider's count, else
    tiktoken's)."""

    kind: Literal["max_output_tokens"]
    limit: int = Field(ge=1, le=1_000_000)
    """The longest acceptable reply, in tokens (the paper used 750)."""
    encoding: Literal["o200k_base", "cl100k_base"] = "o200k_base"
    """The tokenizer used when the provider reports no count."""


class TruncatedFlag(SpecPart):
    """Red-flag replies the provider cut off at the token cap."""

    kind: Literal["truncated"]


class MatchesFlag(SpecPart):
    """Red-flag replies whose text matches a regular expression (refusals, hedging)."""

    kind: Literal["matches"]
    pattern: str = Field(min_length=1, max_length=2000)
    """The regular expression searched in the reply."""
    reason: Annotated[str, StringConstraints(pattern=IDENT)] = "matches"
    """The reason recorded for flagged samples."""
    ignore_case: bool = True
    """Match case-insensitively."""

    @model_validator(mode="after")
    def _pattern(self) -> MatchesFlag:
        compile_pattern(self.pattern, ignore_case=self.ignore_case, field="pattern")
        return self


class RegisteredFlag(SpecPart):
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


class KeyFields(SpecPart):
    """Vote on some fields of a JSON answer: answers equal on these fields are one vote."""

    fields: list[StateKeyName] = Field(min_length=1, max_length=100)
    """The fields compared."""


class KeyFunction(SpecPart):
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
