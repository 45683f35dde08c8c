"""Reading a spec's text safely: size and depth limits, plain-data YAML, duplicate keys, lines.

YAML is loaded with a `SafeLoader` subclass that constructs plain data only
and refuses every tag that is not a core type, so no YAML in a spec can
construct a Python object. Mapping keys are always text (YAML 1.1 would read
`on:` as `true` and route cases such as `yes:` as booleans), and only
`true`/`false` are booleans (as in YAML 1.2), so labels like `yes` and `no`
stay text. The line of every value is remembered so problems can say where
they are.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Limits", "Source", "SourceProblem", "read_source"]


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Bounds on a spec's input, so a hostile or broken file fails fast and clearly."""

    max_bytes: int = 1_000_000
    """Largest spec text, in bytes."""
    max_depth: int = 32
    """Deepest nesting of mappings and lists."""
    max_items: int = 50_000
    """Most values in the whole document (aliases counted each time they are used)."""


class SourceProblem(Exception):
    """The text cannot be read as a spec; `problems` are `(location, message)` pairs."""

    def __init__(self, problems: list[tuple[str, str]], label: str | None = None) -> None:
        self.problems = problems
        self.label = label
        super().__init__("; ".join(f"{loc}: {msg}" if loc else msg for loc, msg in problems))


@dataclass
class Source:
    """A spec's data, where it came from, and the line of each value (YAML and JSON text)."""

    data: dict[str, Any]
    label: str | None = None
    lines: dict[tuple[Any, ...], int] = field(default_factory=dict)
    base_dir: Path | None = None


# --------------------------------------------------------------------------- YAML


class _SpecLoader(yaml.SafeLoader):
    """Plain data only: core tags, text keys, YAML 1.2 booleans, no timestamps.

    The value limit is enforced while the document is composed, node by node, so a
    spec of half a million values is refused after the first `max_items`, in bounded
    time and memory, instead of after building all of them.
    """

    spec_max_items = Limits().max_items
    spec_nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.spec_nodes += 1
        if self.spec_nodes > self.spec_max_items:
            raise _Refused(
                problem=f"the spec has more than {self.spec_max_items} values",
                problem_mark=self.peek_event().start_mark,  # type: ignore[no-untyped-call]
            )
        return super().compose_node(parent, index)


# Booleans as YAML 1.2 has them (true/false only); no implicit timestamps or
# sexagesimal numbers: `2024-01-01` and `1:30` stay text.
_SpecLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)

_CORE_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:merge",
}


class _Refused(yaml.MarkedYAMLError):
    pass


def _check_tags(node: yaml.Node, limits: Limits) -> None:
    """Refuse non-core tags anywhere, before anything is constructed."""
    stack: list[tuple[yaml.Node, int]] = [(node, 0)]
    seen = 0
    visited: set[int] = set()
    while stack:
        current, depth = stack.pop()
        seen += 1
        if seen > limits.max_items:
            raise _Refused(
                problem=f"the spec has more than {limits.max_items} values",
                problem_mark=current.start_mark,
            )
        if depth > limits.max_depth:
            raise _Refused(
                problem=f"nested more than {limits.max_depth} levels deep",
                problem_mark=current.start_mark,
            )
        if current.tag not in _CORE_TAGS:
            raise _Refused(
                problem=f"the YAML tag {current.tag!r} is not allowed: a spec holds plain data "
                "(text, numbers, booleans, lists and mappings), never Python objects",
                problem_mark=current.start_mark,
            )
        if id(current) in visited:
            continue  # an alias: its subtree is already being checked
        visited.add(id(current))
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in current.value)


def _construct_mapping(loader: _SpecLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    written: set[str] = set()
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise _Refused(
                problem="a mapping key must be text, not a list or a mapping",
                problem_mark=key_node.start_mark,
            )
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        if key_node.value in written:
            raise _Refused(
                problem=f"the key {key_node.value!r} appears twice in this mapping",
                problem_mark=key_node.start_mark,
            )
        written.add(key_node.value)
    # Merge keys (`<<: *defaults`) come first; the mapping's own keys override them.
    loader.flatten_mapping(node)
    mapping: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise _Refused(
                problem="a mapping key must be text, not a list or a mapping",
                problem_mark=key_node.start_mark,
            )
        mapping[key_node.value] = loader.construct_object(value_node, deep=deep)
    return mapping


_SpecLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def _index_lines(
    node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int], budget: list[int]
) -> None:
    """Remember the 1-based line of every value by its path (best effort; aliases skipped)."""
    budget[0] -= 1
    if budget[0] < 0:
        return
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                lines.setdefault(path + (key.value,), key.start_mark.line + 1)
                _index_lines(value, path + (key.value,), lines, budget)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, path + (i,), lines, budget)


def _load_yaml(text: str, limits: Limits) -> tuple[Any, dict[tuple[Any, ...], int]]:
    loader = _SpecLoader(text)
    loader.spec_max_items = limits.max_items
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        _check_tags(node, limits)
        lines: dict[tuple[Any, ...], int] = {}
        _index_lines(node, (), lines, [limits.max_items])
        return loader.construct_document(node), lines
    finally:
        loader.dispose()


# --------------------------------------------------------------------------- JSON


class _JsonDuplicate(ValueError):
    pass


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _JsonDuplicate(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


# --------------------------------------------------------------------------- limits


def _flow_depth(text: str, limits: Limits) -> int | None:
    """The line where bracket nesting first exceeds the limit (cheap pre-parse guard)."""
    depth = 0
    line = 1
    quote = ""
    escaped = False
    for ch in text:
        if ch == "\n":
            line += 1
            if quote == "'":  # YAML single quotes may span lines; keep going
                continue
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':
                escaped = True
            elif ch == quote:
                quote = ""
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
            if depth > limits.max_depth:
                return line
        elif ch in "]}":
            depth = max(0, depth - 1)
    return None


def _walk_limits(data: Any, limits: Limits) -> str | None:
    """Why `data` is too deep or too large, or None. Iterative: never recurses."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    count = 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > limits.max_items:
            return f"the spec has more than {limits.max_items} values"
        if depth > limits.max_depth:
            return f"nested more than {limits.max_depth} levels deep"
        if isinstance(value, Mapping):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend((v, depth + 1) for v in value)
    return None


# --------------------------------------------------------------------------- entry


def _looks_like_path(text: str) -> bool:
    if "\n" in text or len(text) > 4096:
        return False
    stripped = text.strip()
    if stripped.startswith(("{", "[")) or ": " in stripped:
        return False
    return stripped.endswith((".yaml", ".yml", ".json")) or os.path.exists(stripped)


def read_source(source: Any, limits: Limits | None = None) -> Source:
    """Turn a path, YAML/JSON text, or a mapping into spec data.

    Raises:
        SourceProblem: unreadable, too large or deep, not plain data, or not a mapping.
    """
    limits = limits or Limits()
    label: str | None = None
    base_dir: Path | None = None
    lines: dict[tuple[Any, ...], int] = {}
    if isinstance(source, Mapping):
        problem = _walk_limits(source, limits)
        if problem:
            raise SourceProblem([("", problem)])
        return Source(dict(source), None, {})
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SourceProblem([("", f"the spec is not UTF-8 text (byte {exc.start})")]) from None
    if isinstance(source, (str, os.PathLike)) and (
        isinstance(source, os.PathLike) or _looks_like_path(source)
    ):
        path = Path(os.fspath(source)).expanduser()
        label = str(path)
        base_dir = path.parent
        try:
            with path.open("rb") as handle:
                raw = handle.read(limits.max_bytes + 1)
        except OSError as exc:
            raise SourceProblem(
                [("", f"cannot read the spec: {exc.strerror or exc}")], label
            ) from None
        if len(raw) > limits.max_bytes:
            raise SourceProblem([("", f"the spec is larger than {limits.max_bytes} bytes")], label)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SourceProblem(
                [("", f"the spec is not UTF-8 text (byte {exc.start})")], label
            ) from None
        is_json = path.suffix.lower() == ".json"
    elif isinstance(source, str):
        text = source
        if len(text.encode("utf-8", errors="replace")) > limits.max_bytes:
            raise SourceProblem([("", f"the spec is larger than {limits.max_bytes} bytes")])
        is_json = text.lstrip().startswith("{")
    else:
        raise SourceProblem(
            [("", f"a spec is a path, YAML/JSON text or a mapping, not {type(source).__name__}")]
        )

    line = _flow_depth(text, limits)
    if line is not None:
        raise SourceProblem(
            [(f"line {line}", f"nested more than {limits.max_depth} levels deep")], label
        )
    data: Any
    try:
        if is_json:
            data = json.loads(text, object_pairs_hook=_json_pairs)
        else:
            data, lines = _load_yaml(text, limits)
    except json.JSONDecodeError as exc:
        raise SourceProblem(
            [(f"line {exc.lineno}, column {exc.colno}", f"invalid JSON: {exc.msg}")], label
        ) from None
    except _JsonDuplicate as exc:
        raise SourceProblem([("", str(exc))], label) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = exc.problem or exc.context or "invalid YAML"
        if isinstance(exc, _Refused):
            message = what
        else:
            message = f"invalid YAML: {what}"
            if exc.context and exc.problem:
                message = f"invalid YAML: {exc.context}, {exc.problem}"
        raise SourceProblem([(where, message)], label) from None
    except yaml.YAMLError as exc:
        raise SourceProblem([("", f"invalid YAML: {exc}")], label) from None
    except RecursionError:
        raise SourceProblem(
            [("", f"nested more than {limits.max_depth} levels deep")], label
        ) from None
    except ValueError as exc:  # an integer past Python's 4,300-digit conversion limit
        raise SourceProblem(
            [("", f"a value cannot be read: {str(exc).splitlines()[0]}")], label
        ) from None

    if data is None:
        raise SourceProblem([("", "the spec is empty")], label)
    if not isinstance(data, dict):
        raise SourceProblem(
            [
                (
                    "",
                    f"the spec must be a mapping of fields (name, state, nodes, ...), "
                    f"not {_kind_of(data)}",
                )
            ],
            label,
        )
    problem = _walk_limits(data, limits)
    if problem:
        raise SourceProblem([("", problem)], label)
    return Source(data, label, lines, base_dir)


def _kind_of(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a single text value"
    return f"a {type(value).__name__}"
