"""Turning a spec's parser, vote key and red-flag entries into the engine's callables.

Every parser takes the raw output of one sample (an `AIMessage`, a structured
output object, or text) and returns the answer, raising `ValueError` when the
reply does not fit: the engine then red-flags the sample instead of voting it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from .._bounded import check_length, unfence
from .._bounded_regex import compile_bounded
from ..red_flags import RedFlag, matches, max_output_tokens, truncated
from ..sampling import message_text
from ..vote import default_parser
from ..voting import canonical_key
from .spec import (
    JsonParser,
    JsonSchemaSpec,
    KeyFields,
    KeyFunction,
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

if TYPE_CHECKING:  # the registry's built-ins import this module; no cycle at run time
    from .registry import Registry

__all__ = ["build_key", "build_parser", "build_red_flags", "json_model", "output_text"]

Parser = Callable[[Any], Any]

_LABEL_TRIM = " \t\r\n'\"`*.:;!"


def _is_message(output: Any) -> bool:
    return hasattr(output, "content") and hasattr(output, "response_metadata")


def output_text(output: Any) -> str:
    """The text of a raw output: a chat message's text, or the value as text."""
    if _is_message(output):
        return message_text(output)
    default_parser(output)  # raises for a structured answer that did not validate
    return output if isinstance(output, str) else str(output)


def _text_parser(spec: TextParser) -> Parser:
    def parse_text(output: Any) -> str:
        text = output_text(output)
        if spec.strip:
            text = text.strip()
        if spec.lowercase:
            text = text.lower()
        return text

    return parse_text


def _labels_parser(spec: LabelsParser) -> Parser:
    table = {(label if spec.case_sensitive else label.casefold()): label for label in spec.labels}
    shown = ", ".join(spec.labels)

    def parse_label(output: Any) -> str:
        text = output_text(output).strip(_LABEL_TRIM)
        found = table.get(text if spec.case_sensitive else text.casefold())
        if found is None:
            short = text if len(text) <= 60 else text[:57] + "..."
            raise ValueError(f"{short!r} is not one of the labels ({shown})")
        return found

    return parse_label


def _regex_parser(spec: RegexParser) -> Parser:
    # Bounded: a spec pattern the load-time check passed can still backtrack for
    # hours on an almost-matching reply (`^(a|a)+$`); past the time bound the reply
    # is refused (a parse error, so red-flagged).
    pattern = compile_bounded(spec.pattern, re.IGNORECASE if spec.ignore_case else 0)
    convert: Callable[[str], Any] = {"str": str, "int": int, "float": float}[spec.convert]

    def parse_match(output: Any) -> Any:
        text = check_length(output_text(output))
        found = pattern.findall_matches(text) if spec.occurrence != "first" else []
        if spec.occurrence == "first":
            first = pattern.search(text)
            found = [first] if first else []
        if not found:
            raise ValueError(f"no match for {spec.pattern!r}")
        if spec.occurrence == "only" and len(found) > 1:
            raise ValueError(f"{len(found)} matches for {spec.pattern!r}; exactly one allowed")
        match = found[-1] if spec.occurrence == "last" else found[0]
        value = match.group(spec.group)
        if value is None:
            raise ValueError(f"group {spec.group!r} did not take part in the match")
        try:
            return convert(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a valid {spec.convert}") from None

    return parse_match


# --------------------------------------------------------------------------- JSON


def _json_type(schema: JsonSchemaSpec, name: str) -> Any:
    """The Python type that validates `schema` (objects become pydantic models)."""
    if schema.enum is not None:
        return Literal[tuple(schema.enum)]  # type: ignore[misc]
    description = schema.description or None
    if schema.type == "object":
        assert schema.properties is not None  # noqa: S101 - checked by the spec model
        required = set(schema.required if schema.required is not None else schema.properties)
        fields: dict[str, Any] = {}
        for prop, sub in schema.properties.items():
            kind = _json_type(sub, f"{name}_{prop}")
            info = Field(description=sub.description or None)
            if prop in required:
                fields[prop] = (kind, info)
            else:
                fields[prop] = (kind | None, Field(None, description=sub.description or None))
        model: type[BaseModel] = create_model(
            name, __config__=ConfigDict(extra="forbid", strict=True), **fields
        )
        if description:
            model.__doc__ = description
        return model
    if schema.type == "array":
        assert schema.items is not None  # noqa: S101
        return list[_json_type(schema.items, f"{name}_item")]  # type: ignore[misc]
    if schema.type == "string":
        return Annotated[str, Field(min_length=schema.min_length, max_length=schema.max_length)]
    if schema.type in ("integer", "number"):
        base: Any = int if schema.type == "integer" else float
        return Annotated[base, Field(ge=schema.minimum, le=schema.maximum)]
    return bool


def json_model(schema: JsonSchemaSpec, name: str = "Answer") -> type[BaseModel]:
    """A pydantic model validating answers of `schema`; non-objects are wrapped in `value`.

    Example:
        >>> from maker_graph.config.spec import JsonSchemaSpec
        >>> Model = json_model(JsonSchemaSpec.model_validate(
        ...     {"type": "object", "properties": {"order": {"type": "string"}}}))
        >>> Model(order="A-1").order
        'A-1'
    """
    kind = _json_type(schema, name)
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return kind
    return create_model(
        name,
        __config__=ConfigDict(extra="forbid", strict=True),
        value=(kind, Field(description=schema.description or None)),
    )


def _json_parser(spec: JsonParser, node_name: str) -> tuple[Parser, type[BaseModel] | None]:
    schema = spec.schema_
    model = json_model(schema, _model_name(node_name))
    wrapped = schema.type != "object"
    adapter: TypeAdapter[Any] = TypeAdapter(model)

    def finish(value: Any) -> Any:
        try:
            checked = adapter.validate_python(value if not wrapped else {"value": value})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "answer"
            raise ValueError(
                f"JSON answer does not fit the schema: {where}: {first['msg']}"
            ) from None
        dumped = checked.model_dump(mode="json", exclude_none=True)
        return dumped["value"] if wrapped else dumped

    def parse_json(output: Any) -> Any:
        if _is_message(output):
            pass  # a chat message (itself a pydantic model): parse its text below
        elif isinstance(output, BaseModel):
            return finish(output.model_dump())
        if isinstance(output, dict):
            return finish(output)
        text = check_length(output_text(output)).strip()
        fenced = unfence(text)
        if fenced is not None:
            text = fenced
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc.msg} at position {exc.pos}") from None
        return finish(value)

    return parse_json, (model if spec.structured else None)


def _model_name(node_name: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", node_name)
    return "".join(w[:1].upper() + w[1:] for w in words if w) + "Answer"


# --------------------------------------------------------------------------- builders


def build_parser(
    spec: ParserSpec | None,
    *,
    node_name: str,
    registry: Registry,
    allow_imports: Sequence[str] = (),
) -> tuple[Parser, type[BaseModel] | None]:
    """The parser of a spec entry, and the structured-output schema it asks for (if any)."""
    if spec is None or isinstance(spec, TextParser):
        return _text_parser(spec or TextParser(kind="text")), None
    if isinstance(spec, LabelsParser):
        return _labels_parser(spec), None
    if isinstance(spec, RegexParser):
        return _regex_parser(spec), None
    if isinstance(spec, JsonParser):
        return _json_parser(spec, node_name)
    assert isinstance(spec, RegisteredParser)  # noqa: S101 - the union is closed
    entry = registry.resolve("parser", spec.name, allow_imports=allow_imports)
    parser = entry.obj(**spec.params) if entry.factory else entry.obj
    return parser, None


def build_key(
    spec: Any, *, registry: Registry, allow_imports: Sequence[str] = ()
) -> Callable[[Any], Hashable] | None:
    """The vote key of a spec's `key` entry (None: the engine's default, exact answers)."""
    if spec == "exact":
        return None
    if spec == "casefold":

        def casefold_key(answer: Any) -> Hashable:
            if isinstance(answer, str):
                return " ".join(answer.casefold().split())
            return canonical_key(answer)

        return casefold_key
    if isinstance(spec, KeyFields):
        fields = list(spec.fields)

        def fields_key(answer: Any) -> Hashable:
            if not isinstance(answer, dict):
                return canonical_key(answer)
            return canonical_key({f: answer.get(f) for f in fields})

        return fields_key
    assert isinstance(spec, KeyFunction)  # noqa: S101
    entry = registry.resolve("key", spec.function, allow_imports=allow_imports)
    return entry.obj() if entry.factory else entry.obj  # type: ignore[no-any-return]


def build_red_flags(
    specs: Sequence[RedFlagSpec], *, registry: Registry, allow_imports: Sequence[str] = ()
) -> list[RedFlag]:
    """The red-flag checks of a spec's `red_flags` list, in order."""
    flags: list[RedFlag] = []
    for spec in specs:
        if isinstance(spec, MaxOutputTokensFlag):
            flags.append(max_output_tokens(spec.limit, spec.encoding))
        elif isinstance(spec, TruncatedFlag):
            flags.append(truncated())
        elif isinstance(spec, MatchesFlag):
            flags.append(
                matches(spec.pattern, spec.reason, re.IGNORECASE if spec.ignore_case else 0)
            )
        else:
            assert isinstance(spec, RegisteredFlag)  # noqa: S101
            entry = registry.resolve("red_flag", spec.name, allow_imports=allow_imports)
            flags.append(entry.obj(**spec.params) if entry.factory else entry.obj)
    return flags
