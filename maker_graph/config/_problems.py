"""Turning pydantic's validation errors into located, plain-language problems.

Pydantic reports `('nodes', 'classify', 'maker', 'k')`, "Input should be
greater than or equal to 1"; a spec author wants `nodes.classify.k: must be
>= 1, got 0`. Locations are walked against the raw data so that union tags
and branch names, which are not keys the author wrote, disappear.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

__all__ = ["Problem", "format_location", "problems_from_validation"]

Problem = tuple[str, str]

# Friendly names of the patterns the spec models use (see spec.py).
_PATTERN_HINTS = {
    r"^[A-Za-z_][A-Za-z0-9_]*$": "a name of letters, digits and '_' that does not start "
    "with a digit",
    r"^[A-Za-z_][A-Za-z0-9_\-]*$": "a name of letters, digits, '_' and '-' that does not "
    "start with a digit",
    r"^[A-Za-z0-9_\-]+:[A-Za-z0-9_.:/@\-]+$": "PROVIDER:MODEL, e.g. openai:gpt-4.1-mini",
    r"^https?://": "an http:// or https:// URL",
    r"^[A-Z_][A-Z0-9_]*$": "the name of an environment variable, e.g. OPENAI_API_KEY",
    r"^\s*[A-Za-z_][A-Za-z0-9_\-]*\s*->\s*[A-Za-z_][A-Za-z0-9_\-]*\s*$": "an edge written "
    "'from_node -> to_node'",
    r"^[A-Za-z_][A-Za-z0-9_.\-]*(:[A-Za-z_][A-Za-z0-9_.]*)?$": "a registry name, or "
    "package.module:attribute",
}

_TYPE_WORDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "text",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "none_required": "null",
}


def format_location(path: Iterable[Any]) -> str:
    """`('nodes', 'classify', 'k')` -> `nodes.classify.k`."""
    return ".".join(str(part) for part in path)


def _short(value: Any, limit: int = 60) -> str:
    # As the author wrote it: YAML/JSON's null and booleans, not Python's.
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _clean_path(raw: Any, loc: tuple[Any, ...], missing: bool) -> tuple[list[Any], bool]:
    """Keep the segments the author wrote; returns the path and whether it names a key."""
    path: list[Any] = []
    current = raw
    is_key = False
    last = len(loc) - 1
    for i, part in enumerate(loc):
        if part == "[key]":
            is_key = True
            continue
        if isinstance(current, dict) and isinstance(part, str) and part in current:
            path.append(part)
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            path.append(part)
            current = current[part]
        elif missing and i == last:
            path.append(part)
        # else: a union tag or branch label pydantic added; the author never wrote it
    return path, is_key


def _field_names(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def _all_models() -> list[type[BaseModel]]:
    from . import spec

    return [
        obj
        for obj in vars(spec).values()
        if isinstance(obj, type)
        and issubclass(obj, BaseModel)
        and obj.__module__ == spec.__name__
        and not obj.__name__.startswith("_")
    ]


def _allowed_fields(parent: Any, extra: str) -> list[str]:
    """The fields of the spec model that best fits `parent` (a raw mapping)."""
    if not isinstance(parent, dict):
        return []
    written = set(parent) - {extra}
    best: tuple[int, int, list[str]] = (-1, 0, [])
    for model in _all_models():
        names = _field_names(model)
        kind = parent.get("kind")
        kind_field = model.model_fields.get("kind")
        if kind is not None and kind_field is not None:
            if getattr(kind_field.annotation, "__args__", (None,))[0] != kind:
                continue
        overlap = len(written & names)
        if written - names:
            continue
        score = (overlap, -len(names), sorted(names))
        if score[:2] > best[:2]:
            best = score
    return best[2]


def _message(error: Any, parent: Any, is_key: bool) -> tuple[str, str | None]:
    """The plain-language message, and a location suffix when the problem is a sub-field."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    got = f", got {_short(value)}"
    if kind == "missing":
        return "is required", None
    if kind == "extra_forbidden":
        name = error["loc"][-1] if error["loc"] else "?"
        allowed = _allowed_fields(parent, str(name))
        hint = ""
        close = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.6)
        if close:
            hint = f" (did you mean {close[0]!r}?)"
        listed = f"; allowed: {', '.join(allowed)}" if allowed else ""
        if str(name) in ("api_key", "secret", "password", "token"):
            return (
                f"unknown field {name!r}: secrets are never written in a spec; name the "
                "environment variable that holds them with api_key_env",
                None,
            )
        return f"unknown field {name!r}{hint}{listed}", None
    bounds = {
        "greater_than_equal": (">=", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("<=", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        op, key = bounds[kind]
        return f"must be {op} {ctx.get(key)}{got}", None
    if kind in _TYPE_WORDS:
        return f"must be {_TYPE_WORDS[kind]}{got}", None
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}{got}", None
    if kind == "union_tag_invalid":
        return (
            f"must be one of {ctx.get('expected_tags')}, got {_short(ctx.get('tag'))}",
            str(ctx.get("discriminator", "kind")).strip("'"),
        )
    if kind == "union_tag_not_found":
        field = str(ctx.get("discriminator", "kind")).strip("'")
        return "is required (it says which kind of entry this is)", field
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        hint = _PATTERN_HINTS.get(pattern, f"text matching {pattern}")
        if is_key:
            return f"the name {_short(value)} is not allowed: use {hint}", None
        return f"must be {hint}{got}", None
    if kind == "string_too_short":
        return "must not be empty", None
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters long", None
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s)", None
    if kind == "too_long":
        return f"may have at most {ctx.get('max_length')} items", None
    if kind in ("value_error", "assertion_error"):
        message = str(error.get("msg", ""))
        for prefix in ("Value error, ", "Assertion failed, "):
            if message.startswith(prefix):
                message = message[len(prefix) :]
        if message.startswith("@"):
            # A model-level check naming the field it is about: "@field.sub: message".
            field, _, rest = message[1:].partition(": ")
            return rest, field
        return message, None
    if kind in ("oracle_kind", "shape", "key_kind"):
        return f"{error.get('msg')}{got}", None
    return f"{error.get('msg', 'is invalid')}{got}", None


def _parent_of(raw: Any, path: list[Any]) -> Any:
    current = raw
    for part in path[:-1]:
        current = current[part] if isinstance(current, (dict, list)) else None
    return current


def _line(lines: dict[tuple[Any, ...], int], path: list[Any]) -> int | None:
    for cut in range(len(path), 0, -1):
        line = lines.get(tuple(path[:cut]))
        if line is not None:
            return line
    return None


def problems_from_validation(
    exc: ValidationError,
    raw: Any,
    *,
    prefix: tuple[Any, ...] = (),
    lines: dict[tuple[Any, ...], int] | None = None,
) -> list[Problem]:
    """Located problems from a pydantic `ValidationError` on `raw` (at `prefix` in the spec).

    Problems at one location from different branches of a union are merged, so
    a value of the wrong type is reported once.
    """
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for error in exc.errors():
        path, is_key = _clean_path(raw, tuple(error["loc"]), error["type"] == "missing")
        parent = _parent_of(raw, path) if error["type"] != "extra_forbidden" else None
        if error["type"] == "extra_forbidden":
            parent = _parent_of(raw, path)
        message, suffix = _message(error, parent, is_key)
        full = [*prefix, *path, *([suffix] if suffix else [])]
        location = format_location(full)
        if lines:
            line = _line(lines, [*prefix, *path])
            if line is not None:
                message = f"{message} (line {line})"
        if location in seen and error["type"] in _TYPE_WORDS:
            index = seen[location]
            old_loc, old_msg = problems[index]
            if "must be" in old_msg and _TYPE_WORDS[error["type"]] not in old_msg:
                # Two union branches refused the same value: say both in one problem.
                head, _, tail = old_msg.partition(", got")
                problems[index] = (old_loc, f"{head} or {_TYPE_WORDS[error['type']]}, got{tail}")
            continue
        seen.setdefault(location, len(problems))
        problems.append((location, message))
    return problems
