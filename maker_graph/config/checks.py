"""Checks a spec must pass before anything is built: references and the graph's shape.

The pydantic models check each field on its own; these checks look across
fields: every name a node, edge or route uses exists (state keys, models,
nodes, registry entries), every node is reachable from START and has a way to
END, no loop of unconditional edges runs forever, and parallel branches do not
write the same key without a reducer. Each problem names its location and the
offender.

They also run on a spec that failed field validation (on the parts that did
validate), so one error lists every problem at once.

Example:
    >>> from maker_graph.config.spec import GraphSpec
    >>> spec = GraphSpec.model_validate({
    ...     "name": "g", "state": {"x": "str"},
    ...     "nodes": {"a": {"kind": "function", "function": "format_text",
    ...                     "params": {"template": "{x}", "output": "x"}}},
    ...     "edges": ["START -> a", "a -> b"]})
    >>> for location, message in check_spec(SpecView.of(spec)):
    ...     print(location, "|", message)
    edges.1.to | unknown node 'b' (nodes: a)
    nodes.a | has no way to END: add an edge to END, or list it in finish
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._util import find_cycles
from ..errors import ConfigurationError
from .registry import Registry
from .spec import (
    END_NAME,
    START_NAME,
    DecompositionNode,
    FunctionNode,
    GraphSpec,
    JsonParser,
    KeyFields,
    KeyFunction,
    LabelsParser,
    MakerNode,
    ModelSpec,
    PromptNode,
    ProviderModel,
    RegisteredFlag,
    RegisteredParser,
    Route,
    RulesOracle,
    SimulatedModel,
    StateKey,
    placeholders,
)

__all__ = ["SpecView", "check_spec", "route_value"]

Problem = tuple[str, str]
_LANGGRAPH_ENDS = {"__start__", "__end__"}


@dataclass
class SpecView:
    """The parts of a spec that validated; `None` marks an entry that did not.

    Names are known even for invalid entries, so references to them are not
    reported twice.
    """

    state: dict[str, StateKey | None] = field(default_factory=dict)
    models: dict[str, ModelSpec | None] = field(default_factory=dict)
    nodes: dict[str, Any] = field(default_factory=dict)
    edges: list[tuple[str, str, str]] = field(default_factory=list)
    """`(location, from, to)` of every unconditional edge (entry and finish included)."""
    routes: list[tuple[int, Route]] = field(default_factory=list)
    input: list[str] | None = None
    output: list[str] | None = None
    has_entry_field: bool = False
    unknown: set[str] = field(default_factory=set)
    """Sections that did not validate at all (`state`, `models`, `nodes`): references into
    them are not checked, since every one would be reported."""

    @classmethod
    def of(cls, spec: GraphSpec) -> SpecView:
        """The view of a spec that validated completely."""
        edges: list[tuple[str, str, str]] = []
        for index, source, target in spec.edge_list():
            if index >= 0:
                edges.append((f"edges.{index}", source, target))
            elif source == START_NAME:
                edges.append(("entry", source, target))
            else:
                edges.append((f"finish.{spec.finish.index(source)}", source, target))
        return cls(
            state=dict(spec.state_keys()),
            models=dict(spec.models),
            nodes=dict(spec.nodes),
            edges=edges,
            routes=list(enumerate(spec.routes)),
            input=spec.input,
            output=spec.output,
            has_entry_field=spec.entry is not None,
        )


def route_value(value: Any) -> str:
    """How a state value is compared with a route's case names (which are text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def _hint(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _listing(names: Sequence[str]) -> str:
    shown = sorted(names)
    return ", ".join(shown[:20]) + (", ..." if len(shown) > 20 else "") if shown else "none"


class _Checker:
    def __init__(
        self, view: SpecView, registry: Registry | None, allow_imports: Sequence[str]
    ) -> None:
        self.view = view
        self.registry = registry
        self.allow_imports = tuple(allow_imports)
        self.problems: list[Problem] = []

    def add(self, location: str, message: str) -> None:
        self.problems.append((location, message))

    # ------------------------------------------------------------------ names

    def state_key(self, location: str, name: str, what: str = "state key") -> bool:
        if name in self.view.state or "state" in self.view.unknown:
            return True
        known = list(self.view.state)
        self.add(
            location,
            f"unknown {what} {name!r}{_hint(name, known)} "
            f"(state keys: {_listing(known)}); declare it under state",
        )
        return False

    def registered(
        self, location: str, kind: str, name: str, params: dict[str, Any] | None = None
    ) -> None:
        if self.registry is None:
            return
        try:
            entry = self.registry.resolve(kind, name, allow_imports=self.allow_imports)
        except ConfigurationError as exc:
            self.add(location, str(exc))
            return
        if params is not None:
            # With the state known, an entry may refuse params naming a key it lacks
            # (a format_text placeholder) here rather than when the node runs.
            keys = None if "state" in self.view.unknown else list(self.view.state)
            problem = entry.check_params(params, keys)
            if problem:
                self.add(location.rsplit(".", 1)[0] + ".params", problem)

    def model_ref(self, location: str, ref: str, node: Any) -> None:
        models = self.view.models
        if "models" in self.view.unknown:
            return
        if ref in models:
            model = models[ref]
            if (
                isinstance(model, SimulatedModel)
                and model.oracle is None
                and isinstance(node, (MakerNode, PromptNode))
            ):
                self.add(
                    location,
                    f"simulated model {ref!r} has no oracle: maker and prompt nodes need "
                    f"one (models.{ref}.oracle: rules, function or answer); only "
                    "decomposition nodes answer from their task's ground truth",
                )
            return
        if ref == "simulated":
            if isinstance(node, DecompositionNode):
                return  # the task's ground truth is the oracle; default error model
            self.add(
                location,
                "a simulated model needs an oracle: declare it under models "
                "(model: simulated, oracle: ...) and use its name here",
            )
            return
        if ":" in ref:
            try:
                ProviderModel(model=ref)
            except Exception:  # noqa: BLE001 - reported as a located problem
                self.add(location, f"{ref!r} is not PROVIDER:MODEL (e.g. openai:gpt-4.1-mini)")
            return
        known = list(models)
        self.add(
            location,
            f"unknown model {ref!r}{_hint(ref, known)} "
            f"(models: {_listing(known)}; or write PROVIDER:MODEL)",
        )

    # ------------------------------------------------------------------ parts

    def check_state(self) -> None:
        view = self.view
        for section in ("input", "output"):
            keys = getattr(view, section)
            for i, name in enumerate(keys or []):
                self.state_key(f"{section}.{i}", name)
        for name in view.nodes:
            if name in view.state:
                self.add(
                    f"nodes.{name}",
                    f"node {name!r} has the name of a state key; "
                    "LangGraph needs them distinct: rename one",
                )
            if name in (START_NAME, END_NAME) or name in _LANGGRAPH_ENDS:
                self.add(
                    f"nodes.{name}", f"{name!r} is reserved for the graph's ends; rename the node"
                )

    def check_models(self) -> None:
        for name, model in self.view.models.items():
            if isinstance(model, SimulatedModel) and model.oracle is not None:
                oracle = model.oracle
                if not isinstance(oracle, RulesOracle) and hasattr(oracle, "function"):
                    self.registered(f"models.{name}.oracle.function", "oracle", oracle.function)

    def check_prompted(self, loc: str, node: MakerNode | PromptNode) -> None:
        texts = [node.prompt] if isinstance(node.prompt, str) else [m.content for m in node.prompt]
        used: list[str] = []
        for text in texts:
            for name in placeholders(text):
                if name not in used:
                    used.append(name)
        for name in used:
            if name not in self.view.state:
                self.state_key(f"{loc}.prompt", name, what="placeholder state key")
        if node.inputs is not None:
            for i, name in enumerate(node.inputs):
                self.state_key(f"{loc}.inputs.{i}", name)
            missing = [name for name in used if name not in node.inputs]
            if missing:
                self.add(
                    f"{loc}.inputs",
                    "the prompt uses "
                    + ", ".join(f"{{{m}}}" for m in missing)
                    + " but inputs does not list it: add it to inputs",
                )
        self.state_key(f"{loc}.output", node.output)
        parser = node.parser
        if isinstance(parser, RegisteredParser):
            self.registered(f"{loc}.parser.name", "parser", parser.name, parser.params)

    def check_flags(self, loc: str, flags: Sequence[Any]) -> None:
        for i, flag in enumerate(flags):
            if isinstance(flag, RegisteredFlag):
                self.registered(f"{loc}.red_flags.{i}.name", "red_flag", flag.name, flag.params)

    def check_node(self, name: str, node: Any) -> None:
        loc = f"nodes.{name}"
        if isinstance(node, (MakerNode, PromptNode)):
            self.check_prompted(loc, node)
            refs = [node.model] if isinstance(node.model, str) else list(node.model)
            for i, ref in enumerate(refs):
                where = f"{loc}.model" if isinstance(node.model, str) else f"{loc}.model.{i}"
                self.model_ref(where, ref, node)
        if isinstance(node, MakerNode):
            self.check_flags(loc, node.red_flags)
            if node.stats is not None:
                self.state_key(f"{loc}.stats", node.stats)
                if node.stats == node.output:
                    self.add(f"{loc}.stats", "stats and output must be different state keys")
            key = node.key
            if isinstance(key, KeyFields):
                if not isinstance(node.parser, JsonParser):
                    self.add(
                        f"{loc}.key",
                        "key fields apply to JSON answers: use parser "
                        "kind json, or key exact/casefold",
                    )
                else:
                    props = node.parser.schema_.properties or {}
                    for i, fld in enumerate(key.fields):
                        if fld not in props:
                            self.add(
                                f"{loc}.key.fields.{i}",
                                f"{fld!r} is not a property of the parser's schema "
                                f"(properties: {_listing(list(props))})",
                            )
            elif isinstance(key, KeyFunction):
                self.registered(f"{loc}.key.function", "key", key.function)
        elif isinstance(node, DecompositionNode):
            params = dict(node.params)
            params.update({p: None for p in node.params_from})
            self.registered(f"{loc}.task", "task", node.task, params)
            for param, state_key in node.params_from.items():
                self.state_key(f"{loc}.params_from.{param}", state_key)
            refs = [node.model] if isinstance(node.model, str) else list(node.model)
            for i, ref in enumerate(refs):
                where = f"{loc}.model" if isinstance(node.model, str) else f"{loc}.model.{i}"
                self.model_ref(where, ref, node)
            self.check_flags(loc, node.red_flags)
            self.state_key(f"{loc}.output", node.output)
            if node.budget.on_no_consensus == "escalate":
                self.add(
                    f"{loc}.budget.on_no_consensus",
                    "escalate is for maker nodes; a "
                    "decomposition's micro-steps use raise or plurality",
                )
        elif isinstance(node, FunctionNode):
            self.registered(f"{loc}.function", "function", node.function, node.params)

    # ------------------------------------------------------------------ shape

    def check_edges(self) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """Check edge and route ends; returns (unconditional, all) successor lists."""
        view = self.view
        nodes = list(view.nodes)
        plain: dict[str, list[str]] = {}
        every: dict[str, list[str]] = {}
        seen: set[tuple[str, str]] = set()

        def end_ok(location: str, name: str, *, source: bool) -> bool:
            if source and name == START_NAME or not source and name == END_NAME:
                return True
            if name == (END_NAME if source else START_NAME):
                self.add(
                    location,
                    f"{name} cannot be an edge's "
                    f"{'from' if source else 'to'}: "
                    + (
                        "nothing runs after the end"
                        if source
                        else "nothing leads back to the start"
                    ),
                )
                return False
            if name in view.nodes or "nodes" in view.unknown:
                return True
            self.add(
                location, f"unknown node {name!r}{_hint(name, nodes)} (nodes: {_listing(nodes)})"
            )
            return False

        for location, source, target in view.edges:
            sub = "" if location in ("entry",) or location.startswith("finish") else ".from"
            ok_source = end_ok(f"{location}{sub}", source, source=True)
            sub = "" if location == "entry" or location.startswith("finish") else ".to"
            ok_target = end_ok(f"{location}{sub}", target, source=False)
            if not (ok_source and ok_target):
                continue
            if (source, target) in seen:
                self.add(location, f"the edge {source} -> {target} is listed twice")
                continue
            seen.add((source, target))
            plain.setdefault(source, []).append(target)
            every.setdefault(source, []).append(target)

        routed: dict[str, int] = {}
        for index, route in view.routes:
            loc = f"routes.{index}"
            if not end_ok(f"{loc}.from", route.source, source=True):
                continue
            if route.source == START_NAME:
                self.add(f"{loc}.from", "a route cannot leave START: route after a node")
                continue
            if route.source in routed:
                self.add(
                    f"{loc}.from",
                    f"node {route.source!r} already has a route "
                    f"(routes.{routed[route.source]}); merge their cases",
                )
                continue
            routed[route.source] = index
            if route.source in plain:
                self.add(
                    f"{loc}.from",
                    f"node {route.source!r} has both a route and "
                    f"unconditional edges (to {', '.join(plain[route.source])}); both "
                    "would run: keep the route and move those targets into its cases",
                )
            self.state_key(f"{loc}.on", route.on)
            targets = list(route.cases.items())
            if route.default is not None:
                targets.append(("default", route.default))
            for case, target in targets:
                where = (
                    f"{loc}.default"
                    if case == "default" and route.default == target and case not in route.cases
                    else f"{loc}.cases.{case}"
                )
                if end_ok(where, target, source=False):
                    every.setdefault(route.source, []).append(target)
            self.check_route_labels(loc, route)
        return plain, every

    def check_route_labels(self, loc: str, route: Route) -> None:
        """Cases of a route on a labels-parsed key must match those labels."""
        writers = [
            (name, node)
            for name, node in self.view.nodes.items()
            if isinstance(node, (MakerNode, PromptNode)) and node.output == route.on
        ]
        if not writers or not all(isinstance(n.parser, LabelsParser) for _, n in writers):
            return
        labels: list[str] = []
        for _, node in writers:
            assert isinstance(node.parser, LabelsParser)  # noqa: S101 - narrowed above
            labels += [lbl for lbl in node.parser.labels if lbl not in labels]
        writer_names = ", ".join(f"nodes.{name}" for name, _ in writers)
        for case in route.cases:
            if case not in labels:
                self.add(
                    f"{loc}.cases.{case}",
                    f"{case!r} is not a label {writer_names} can "
                    f"write{_hint(case, labels)} (labels: {', '.join(labels)})",
                )
        uncovered = [lbl for lbl in labels if lbl not in route.cases]
        if uncovered and route.default is None:
            self.add(
                f"{loc}.cases",
                f"no case for label(s) {', '.join(uncovered)} that "
                f"{writer_names} can write; add cases or a default",
            )

    def check_shape(self, plain: dict[str, list[str]], every: dict[str, list[str]]) -> None:
        view = self.view
        if "nodes" in view.unknown:
            return
        if START_NAME not in every:
            location = "entry" if not view.has_entry_field else "entry"
            self.add(location, "the graph has no entry: set entry, or add an edge from START")
            return
        reachable = _reach(START_NAME, every)
        for name in view.nodes:
            if name not in reachable:
                self.add(
                    f"nodes.{name}",
                    "unreachable: no edge or route from START leads to it; connect it or remove it",
                )
        predecessors: dict[str, list[str]] = {}
        for source, targets in every.items():
            for target in targets:
                predecessors.setdefault(target, []).append(source)
        finishing = _reach(END_NAME, predecessors)
        stuck = [n for n in view.nodes if n in reachable and n not in finishing]
        for name in stuck:
            if not every.get(name):
                self.add(
                    f"nodes.{name}", "has no way to END: add an edge to END, or list it in finish"
                )
            else:
                loop = [n for n in _reach(name, every) if n in view.nodes]
                self.add(
                    f"nodes.{name}",
                    "has no way to END: every path from it loops among "
                    f"{', '.join(sorted(loop))}; add a route or edge out to END",
                )
        for cycle in find_cycles(plain):
            shown = " -> ".join([*cycle, cycle[0]])
            self.add(
                "edges",
                f"{shown} is a loop of unconditional edges: it never stops; "
                "make one of its steps a route that can leave the loop",
            )

    def check_parallel_writes(self, plain: dict[str, list[str]]) -> None:
        """Nodes fanned out together must not write one replace-reduced key."""
        for source, targets in plain.items():
            if len(targets) < 2:
                continue
            writers: dict[str, list[str]] = {}
            for target in targets:
                node = self.view.nodes.get(target)
                for key in _writes(node):
                    writers.setdefault(key, []).append(target)
            for key, names in writers.items():
                declared = self.view.state.get(key)
                if len(names) > 1 and declared is not None and declared.reducer == "replace":
                    self.add(
                        f"state.{key}",
                        f"nodes {', '.join(names)} run in parallel "
                        f"after {source} and both write {key!r}, which has no reducer; "
                        "give it one (append, add, merge) or write different keys",
                    )

    def run(self) -> list[Problem]:
        self.check_state()
        self.check_models()
        for name, node in self.view.nodes.items():
            if node is not None:
                self.check_node(name, node)
        plain, every = self.check_edges()
        self.check_shape(plain, every)
        self.check_parallel_writes(plain)
        return self.problems


def _writes(node: Any) -> list[str]:
    if isinstance(node, MakerNode):
        return [node.output] + ([node.stats] if node.stats else [])
    if isinstance(node, (PromptNode, DecompositionNode)):
        return [node.output]
    return []


def _reach(start: str, edges: dict[str, list[str]]) -> set[str]:
    seen = {start}
    stack = [start]
    while stack:
        for nxt in edges.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def check_spec(
    view: SpecView, registry: Registry | None = None, allow_imports: Sequence[str] = ()
) -> list[Problem]:
    """Every reference and shape problem of a spec, as `(location, message)` pairs.

    Args:
        view: the spec's parts that validated.
        registry: where registered names are looked up (None: skip those checks).
        allow_imports: modules whose `module:attribute` paths may be imported.
    """
    return _Checker(view, registry, allow_imports).run()
