"""The pieces every spec model is made of: the base class, name types, shape tags, regexes.

Spec models live in `spec`, `_spec_models` and `_spec_answers`; `spec` re-exports
them all and is their documented home.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, StringConstraints

from .._bounded import nested_quantifier

IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"
"""A bare identifier: a state key, a field, a group or reason name."""
NODE = r"^[A-Za-z_][A-Za-z0-9_\-]*$"
REF = r"^[A-Za-z_][A-Za-z0-9_.\-]*(:[A-Za-z_][A-Za-z0-9_.]*)?$"
SECRETS = re.compile(r"(^|_)(api_?key|secret|password|passwd|token|credentials?)$", re.I)
"""Option names that would hold a secret (which a spec never carries)."""

StateKeyName = Annotated[str, StringConstraints(pattern=IDENT, max_length=64)]
NodeName = Annotated[str, StringConstraints(pattern=NODE, max_length=64)]
ModelName = Annotated[str, StringConstraints(pattern=NODE, max_length=64)]
Reference = Annotated[str, StringConstraints(pattern=REF, max_length=200)]
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


def shape_of(*shapes: str) -> Discriminator:
    """Discriminate a union by the value's shape, with one clear error when none fits."""
    words = {"text": "text", "list": "a list", "mapping": "a mapping"}
    return Discriminator(
        _shape,
        custom_error_type="shape",
        custom_error_message=f"must be {' or '.join(words[s] for s in shapes)}",
    )


class SpecPart(BaseModel):
    """The base of every spec model: frozen, strict, no unknown fields, field docs kept."""

    model_config = ConfigDict(
        extra="forbid",
        use_attribute_docstrings=True,
        frozen=True,
        strict=True,
    )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        # `maker_graph.config.spec` re-exports every spec model and is where readers,
        # reprs and the loader's "allowed fields" hints look for them, wherever the
        # class is written.
        super().__pydantic_init_subclass__(**kwargs)
        cls.__module__ = "maker_graph.config.spec"


def compile_pattern(pattern: str, *, ignore_case: bool = False, field: str = "") -> re.Pattern[str]:
    """Compile a spec's regular expression, refusing one that can backtrack exponentially."""
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
