"""`load_graph`: a YAML/JSON spec in, an uncompiled LangGraph `StateGraph` out.

Loading runs no code from the spec: YAML is read as plain data, components
come from the registry, and a `module:attribute` path is imported only when
the caller allow-lists its module. A spec with problems raises one
`SpecError` listing every problem with its location (`nodes.classify.k: must
be >= 1, got 0 (line 12)`): field errors, unknown names, unreachable nodes,
nodes with no way to END and loops that never stop, all at once.

The graph comes back uncompiled so the caller picks the checkpointer (a
LangGraph server supplies its own).

Example:
    >>> graph = load_graph('''
    ... name: hello
    ... state: {name: str, greeting: str}
    ... nodes:
    ...   greet: {kind: function, function: format_text,
    ...           params: {template: "Hello, {name}!", output: greeting}}
    ... entry: greet
    ... finish: [greet]
    ... ''')
    >>> graph.compile().invoke({"name": "Ada"})["greeting"]
    'Hello, Ada!'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from ..errors import SpecError
from ._problems import Problem, problems_from_validation
from ._source import Limits, Source, SourceProblem, read_source
from .checks import SpecView, check_spec
from .registry import Registry
from .registry import registry as default_registry
from .spec import (
    END_NAME,
    START_NAME,
    Edge,
    EdgeSpec,
    GraphSpec,
    ModelSpec,
    NodeSpec,
    Route,
    StateEntry,
    StateKey,
)

if TYPE_CHECKING:
    from langgraph.graph import StateGraph

__all__ = ["Limits", "load_graph", "load_spec"]

SpecSource = str | Path | bytes | Mapping[str, Any]
"""A path to a `.yaml`/`.yml`/`.json` file, the spec's text, or the spec as a mapping."""

_STATE_VALUE: TypeAdapter[Any] = TypeAdapter(dict[str, StateEntry])
_MODEL: TypeAdapter[Any] = TypeAdapter(ModelSpec)
_NODE: TypeAdapter[Any] = TypeAdapter(NodeSpec)
_EDGE: TypeAdapter[Any] = TypeAdapter(list[EdgeSpec])
_ROUTE: TypeAdapter[Route] = TypeAdapter(Route)


def _valid(adapter: TypeAdapter[Any], value: Any) -> Any:
    try:
        return adapter.validate_python(value)
    except (ValidationError, ValueError, TypeError):
        return None


def _partial_view(data: dict[str, Any]) -> SpecView:
    """The parts of an invalid spec that validate on their own, for the cross checks."""
    view = SpecView()
    state = data.get("state")
    if isinstance(state, dict):
        checked = _valid(_STATE_VALUE, state) or {}
        for name in state:
            value = checked.get(name)
            if isinstance(value, str):
                value = StateKey(type=value)  # type: ignore[arg-type]
            view.state[str(name)] = value
    else:
        view.unknown.add("state")
    models = data.get("models", {})
    if isinstance(models, dict):
        view.models = {str(n): _valid(_MODEL, m) for n, m in models.items()}
    else:
        view.unknown.add("models")
    nodes = data.get("nodes")
    if isinstance(nodes, dict):
        view.nodes = {str(n): _valid(_NODE, node) for n, node in nodes.items()}
    else:
        view.unknown.add("nodes")
    edges = data.get("edges", [])
    for i, raw in enumerate(edges if isinstance(edges, list) else []):
        edge = _valid(_EDGE, [raw])
        if edge:
            item = edge[0]
            if isinstance(item, Edge):
                view.edges.append((f"edges.{i}", item.source, item.target))
            else:
                source, _, target = item.partition("->")
                view.edges.append((f"edges.{i}", source.strip(), target.strip()))
    entry = data.get("entry")
    if isinstance(entry, str):
        view.edges.append(("entry", START_NAME, entry))
        view.has_entry_field = True
    finish = data.get("finish", [])
    for i, name in enumerate(finish if isinstance(finish, list) else []):
        if isinstance(name, str):
            view.edges.append((f"finish.{i}", name, END_NAME))
    routes = data.get("routes", [])
    for i, raw in enumerate(routes if isinstance(routes, list) else []):
        route = _valid(_ROUTE, raw)
        if route is not None:
            view.routes.append((i, route))
    for section in ("input", "output"):
        keys = data.get(section)
        if isinstance(keys, list) and all(isinstance(k, str) for k in keys):
            setattr(view, section, keys)
    return view


def _dedupe(problems: Sequence[Problem]) -> list[Problem]:
    seen: set[Problem] = set()
    out: list[Problem] = []
    for problem in problems:
        if problem not in seen:
            seen.add(problem)
            out.append(problem)
    return out


def _with_lines(problems: Sequence[Problem], source: Source) -> list[Problem]:
    """Add `(line N)` to cross-check problems, when the location is in the text."""
    if not source.lines:
        return list(problems)
    out: list[Problem] = []
    for location, message in problems:
        if "(line " in message:
            out.append((location, message))
            continue
        path: list[Any] = (
            [int(p) if p.isdigit() else p for p in location.split(".")] if location else []
        )
        line = None
        for cut in range(len(path), 0, -1):
            line = source.lines.get(tuple(path[:cut]))
            if line is not None:
                break
        out.append((location, f"{message} (line {line})" if line else message))
    return out


def load_spec(
    source: SpecSource,
    *,
    allow_imports: Sequence[str] = (),
    registry: Registry | None = None,
    limits: Limits | None = None,
) -> GraphSpec:
    """Read and check a spec without building it: every problem, located, in one error.

    Args:
        source: a path to a `.yaml`/`.yml`/`.json` file, the spec's YAML or JSON
            text, or the spec as a mapping.
        allow_imports: modules whose `module:attribute` paths the spec may import.
        registry: where registered names are looked up (default: `maker_graph.registry`).
        limits: bounds on the input's size and nesting.

    Returns:
        The validated `GraphSpec`.

    Raises:
        SpecError: the spec has problems; `.problems` lists `(location, message)`.

    Example:
        >>> spec = load_spec({"name": "g", "state": {"x": "str"},
        ...                   "nodes": {"a": {"kind": "function", "function": "set_values",
        ...                                   "params": {"x": "done"}}},
        ...                   "entry": "a", "finish": ["a"]})
        >>> spec.name
        'g'
    """
    return _load(source, allow_imports, registry, limits)[0]


def _load(
    source: SpecSource,
    allow_imports: Sequence[str],
    registry: Registry | None,
    limits: Limits | None,
) -> tuple[GraphSpec, str | None]:
    registry = registry if registry is not None else default_registry
    try:
        text_source = read_source(source, limits)
    except SourceProblem as exc:
        raise SpecError(exc.problems, exc.label) from None
    data = text_source.data
    try:
        spec = GraphSpec.model_validate(data)
    except ValidationError as exc:
        problems = problems_from_validation(exc, data, lines=text_source.lines)
        view = _partial_view(data)
        problems += _with_lines(check_spec(view, registry, allow_imports), text_source)
        raise SpecError(_dedupe(problems), text_source.label) from None
    problems = check_spec(SpecView.of(spec), registry, allow_imports)
    if problems:
        raise SpecError(_dedupe(_with_lines(problems, text_source)), text_source.label)
    return spec, text_source.label


def load_graph(
    source: SpecSource | GraphSpec,
    *,
    allow_imports: Sequence[str] = (),
    registry: Registry | None = None,
    limits: Limits | None = None,
) -> StateGraph[Any, Any, Any, Any]:
    """Build the uncompiled `StateGraph` a spec describes.

    Compile it with the checkpointer you want (`graph.compile(checkpointer=...)`);
    a LangGraph server compiles it with its own.

    Args:
        source: a path to a `.yaml`/`.yml`/`.json` file, the spec's YAML or JSON
            text, a mapping, or a `GraphSpec` already loaded.
        allow_imports: modules whose `module:attribute` paths the spec may import
            (importing runs their code; nothing is imported otherwise).
        registry: where registered names are looked up (default: `maker_graph.registry`).
        limits: bounds on the input's size and nesting.

    Returns:
        The uncompiled graph.

    Raises:
        SpecError: the spec has problems, or its models cannot be built (a provider
            package or an API key variable is missing); every problem is listed.

    Example:
        >>> graph = load_graph({
        ...     "name": "triage", "state": {"ticket": "str", "label": "str"},
        ...     "models": {"sim": {"model": "simulated",
        ...                        "oracle": {"rules": [{"match": "refund", "answer": "billing"}],
        ...                                   "default": "other"}}},
        ...     "nodes": {"classify": {"kind": "maker", "model": "sim", "k": 2,
        ...                            "prompt": "Label this ticket: {ticket}",
        ...                            "parser": {"kind": "labels", "labels": ["billing", "other"]},
        ...                            "output": "label"}},
        ...     "entry": "classify", "finish": ["classify"]})
        >>> graph.compile().invoke({"ticket": "I want a refund"})["label"]
        'billing'
    """
    # Imported here: LangGraph costs about a second, which `load_spec` (and so
    # `maker-graph schema` and `validate`) should not pay.
    from ._build import build_graph

    registry = registry if registry is not None else default_registry
    label: str | None = None
    if isinstance(source, GraphSpec):
        spec = source
        problems = check_spec(SpecView.of(spec), registry, allow_imports)
        if problems:
            raise SpecError(problems)
    else:
        spec, label = _load(source, allow_imports, registry, limits)
    return build_graph(spec, registry=registry, allow_imports=allow_imports, source=label)
