"""Building the `StateGraph` of a checked spec (private; see `maker_graph.config.loader`).

Each node kind becomes one graph node: a maker step is `maker_node` (the
engine's voter in one superstep), a decomposition runs
`create_decomposition_graph` inside the node, a prompt node is one model call,
and a function node calls the registered function. Problems found while
building (a provider package that is not installed, a missing API key, task
parameters the task refuses) are collected and raised together, located.
"""

from __future__ import annotations

import inspect
import json
import operator
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Annotated, Any, cast

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command
from pydantic import Field
from typing_extensions import TypedDict

from ..decorrelation import EscalatingTemperature
from ..errors import BudgetExhaustedError, ConfigurationError, MakerRuntimeError, SpecError
from ..sampling import ChatModelSampler, TemperatureSchedule
from ..vote import VotePolicy
from ._models import ModelFactory
from ._parsers import build_key, build_parser, build_red_flags
from .checks import route_value
from .registry import Registry
from .spec import (
    END_NAME,
    START_NAME,
    DecompositionNode,
    FunctionNode,
    GraphSpec,
    LabelsParser,
    MakerNode,
    Message,
    PromptNode,
    Route,
    StateKey,
    TemperatureSpec,
    placeholders,
)

__all__ = ["PromptBuilder", "build_graph"]

_PYTHON_TYPES: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
    "any": Any,
}


def _append(current: Any, update: Any) -> list[Any]:
    """Reducer `append`: add one item, or every item of a list."""
    base = list(current) if isinstance(current, list) else ([] if current is None else [current])
    return base + (list(update) if isinstance(update, list) else [update])


def _merge(current: Any, update: Any) -> dict[str, Any]:
    """Reducer `merge`: the union of two dicts, the update winning."""
    return {**(current or {}), **(update or {})}


_REDUCERS: dict[str, Callable[[Any, Any], Any]] = {
    "append": _append,
    "add": operator.add,
    "merge": _merge,
}


def _typed_dict(name: str, keys: Mapping[str, StateKey]) -> type[Any]:
    # typing_extensions' TypedDict: pydantic (and so the LangGraph server's input and
    # output schemas) cannot read typing's on Python < 3.12.
    fields: dict[str, Any] = {}
    for key, declared in keys.items():
        kind = _PYTHON_TYPES[declared.type]
        # LangGraph reads the reducer from the last metadata item; the description
        # before it reaches the JSON schemas clients (and LangGraph Studio) show.
        metadata: list[Any] = []
        if declared.description:
            metadata.append(Field(description=declared.description))
        reducer = _REDUCERS.get(declared.reducer)
        if reducer is not None:
            metadata.append(reducer)
        fields[key] = Annotated[(kind, *metadata)] if metadata else kind  # type: ignore[valid-type]
    schema = cast(Any, TypedDict)(name, fields, total=False)
    return cast(type[Any], schema)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


class PromptBuilder:
    """Messages from a prompt template and a dict of state values.

    Example:
        >>> PromptBuilder("Classify: {ticket}")({"ticket": "charged twice"})[0].content
        'Classify: charged twice'
    """

    _ROLES: dict[str, type[BaseMessage]] = {
        "system": SystemMessage,
        "user": HumanMessage,
        "assistant": AIMessage,
    }

    def __init__(self, prompt: str | Sequence[Message], node: str = "") -> None:
        self.node = node
        self.parts: list[tuple[type[BaseMessage], str, list[str]]] = []
        if isinstance(prompt, str):
            self.parts.append((HumanMessage, prompt, placeholders(prompt)))
        else:
            for message in prompt:
                self.parts.append(
                    (self._ROLES[message.role], message.content, placeholders(message.content))
                )
        self.keys: list[str] = []
        for _, _, names in self.parts:
            self.keys += [n for n in names if n not in self.keys]

    def __call__(self, values: Mapping[str, Any]) -> list[BaseMessage]:
        missing = [key for key in self.keys if values.get(key) is None]
        if missing:
            raise MakerRuntimeError(
                f"node {self.node!r}: state key(s) {', '.join(missing)} have no value yet; "
                "pass them in the graph's input or set them in an earlier node"
            )
        return [
            kind(content=text.format_map({n: _text(values[n]) for n in names}))
            for kind, text, names in self.parts
        ]


def _inner_config(task: Any, chunk: int) -> dict[str, Any]:
    """The decomposition sub-graph's own recursion limit.

    Called from inside a node, the sub-graph would inherit the parent run's limit
    (25 by default): a long run needs one superstep per chunk, and `chunk: 1` a few
    per step. Bound it by the task's length when the task knows it.
    """
    total = getattr(task, "total_steps", None)
    if not isinstance(total, int):
        return {"recursion_limit": 10_000_000}
    per_chunk = 8 if chunk == 1 else 2
    return {"recursion_limit": per_chunk * -(-total // chunk) + 100}


def _schedule(temperature: TemperatureSpec, k: int) -> Any:
    """A node's temperature schedule; with `hotter`, escalation after a first round of k."""
    if temperature.hotter is None:
        return TemperatureSchedule(first=temperature.first, rest=temperature.rest)
    return EscalatingTemperature(
        k=k, first=temperature.first, rest=temperature.rest, hotter=tuple(temperature.hotter)
    )


def _in_spec(exc: BudgetExhaustedError, node: str) -> BudgetExhaustedError:
    """The same budget error, naming the spec field that raises the budget."""
    field = {"samples": "max_total_samples", "tokens": "max_total_tokens"}.get(exc.budget)
    flag = f"nodes.{node}.{field} in the spec" if field else exc.flag
    return BudgetExhaustedError(exc.budget, exc.limit, exc.spent, flag, exc.steps_done)


def _check_update(node: str, update: Any, keys: Mapping[str, StateKey]) -> Any:
    """A function node's return value, checked: unknown keys would vanish silently."""
    if update is None:
        return {}
    if isinstance(update, Command):
        return update
    if not isinstance(update, Mapping):
        raise MakerRuntimeError(
            f"node {node!r} returned a {type(update).__name__}; a function node returns a "
            "dict of state keys to update (or None)"
        )
    unknown = sorted(k for k in update if k not in keys)
    if unknown:
        raise MakerRuntimeError(
            f"node {node!r} wrote {', '.join(map(repr, unknown))}, which the spec's state does "
            f"not declare (state keys: {', '.join(keys)}); declare them under state"
        )
    return dict(update)


class _Builder:
    def __init__(self, spec: GraphSpec, registry: Registry, allow_imports: Sequence[str]) -> None:
        self.spec = spec
        self.registry = registry
        self.allow_imports = tuple(allow_imports)
        self.keys = spec.state_keys()
        self.models = ModelFactory(
            dict(spec.models), registry=registry, allow_imports=self.allow_imports
        )
        self.problems: list[tuple[str, str]] = []

    # ------------------------------------------------------------------ models

    def _chat_models(
        self, name: str, refs: Sequence[str], choices: Sequence[str] | None = None
    ) -> list[Any] | None:
        models: list[Any] = []
        for i, ref in enumerate(refs):
            try:
                models.append(self.models.chat_model(ref, choices=choices))
            except ConfigurationError as exc:
                where = (
                    f"models.{ref}"
                    if ref in self.spec.models
                    else (f"nodes.{name}.model" if len(refs) == 1 else f"nodes.{name}.model.{i}")
                )
                self.problems.append((where, str(exc)))
                return None
        return models

    # ------------------------------------------------------------------ nodes

    def maker(self, name: str, node: MakerNode) -> Any:
        from ..graph import maker_node

        refs = [node.model] if isinstance(node.model, str) else list(node.model)
        labels = node.parser.labels if isinstance(node.parser, LabelsParser) else None
        models = self._chat_models(name, refs, labels)
        if models is None:
            return None
        parser, structured = build_parser(
            node.parser, node_name=name, registry=self.registry, allow_imports=self.allow_imports
        )
        prompt = PromptBuilder(node.prompt, name)
        inputs = list(node.inputs) if node.inputs is not None else list(prompt.keys)
        # Paraphrases use the same placeholders (checked by the spec), so the same inputs.
        wordings = [prompt, *(PromptBuilder(p, name) for p in node.prompts)]
        return maker_node(
            models[0] if len(models) == 1 else models,
            k=node.k,
            parser=parser,
            key=build_key(node.key, registry=self.registry, allow_imports=self.allow_imports),
            red_flags=build_red_flags(
                node.red_flags, registry=self.registry, allow_imports=self.allow_imports
            ),
            input_keys=inputs or None,
            output_key=node.output,
            max_samples=node.budget.max_samples,
            on_no_consensus=node.budget.on_no_consensus,
            temperature=_schedule(node.temperature, node.k),
            prompt=wordings if len(wordings) > 1 else prompt,
            max_tokens=node.max_tokens,
            structured=structured,
            max_concurrency=node.budget.max_concurrency,
            stats_key=node.stats,
            name=name,
        )

    def prompt(self, name: str, node: PromptNode) -> Any:
        labels = node.parser.labels if isinstance(node.parser, LabelsParser) else None
        models = self._chat_models(name, [node.model], labels)
        if models is None:
            return None
        model = models[0]
        options: dict[str, Any] = {}
        if node.temperature is not None:
            options["temperature"] = node.temperature
        if node.max_tokens is not None:
            options["max_tokens"] = node.max_tokens
        parser, structured = build_parser(
            node.parser, node_name=name, registry=self.registry, allow_imports=self.allow_imports
        )
        runnable = model.bind(**options) if options else model
        if structured is not None:
            runnable = (model.bind(**options) if options else model).with_structured_output(
                structured
            )
        builder = PromptBuilder(node.prompt, name)
        inputs = list(node.inputs) if node.inputs is not None else builder.keys
        output = node.output

        def finish(reply: Any) -> dict[str, Any]:
            try:
                return {output: parser(reply)}
            except Exception as exc:  # noqa: BLE001 - any parser failure is this node's
                raise MakerRuntimeError(
                    f"node {name!r}: the model's reply did not parse ({exc}); a prompt node "
                    "makes one call: use a maker node to vote and red-flag bad replies"
                ) from exc

        def run(state: Mapping[str, Any]) -> dict[str, Any]:
            return finish(runnable.invoke(builder({k: state.get(k) for k in inputs})))

        async def arun(state: Mapping[str, Any]) -> dict[str, Any]:
            return finish(await runnable.ainvoke(builder({k: state.get(k) for k in inputs})))

        return RunnableLambda(run, afunc=arun, name=name)

    def decomposition(self, name: str, node: DecompositionNode) -> Any:
        from ..graph import create_decomposition_graph

        try:
            entry = self.registry.resolve("task", node.task, allow_imports=self.allow_imports)
        except ConfigurationError as exc:
            self.problems.append((f"nodes.{name}.task", str(exc)))
            return None
        refs = [node.model] if isinstance(node.model, str) else list(node.model)
        if not node.params_from:
            # Fixed parameters: build the task now, so refused parameters fail at load.
            try:
                entry.obj(**node.params)
            except Exception as exc:  # noqa: BLE001 - the task's own validation
                self.problems.append(
                    (f"nodes.{name}.params", f"task {node.task!r} refused its params: {exc}")
                )
                return None
        policy = VotePolicy(
            k=node.k,
            max_samples=node.budget.max_samples,
            on_no_consensus=node.budget.on_no_consensus,
            max_concurrency=node.budget.max_concurrency,
        )
        flags = build_red_flags(
            node.red_flags, registry=self.registry, allow_imports=self.allow_imports
        )
        factory = self.models
        simulated = any(factory.spec_of(ref).model == "simulated" for ref in refs)
        chat = None if simulated else self._chat_models(name, refs)
        if not simulated and chat is None:
            return None
        if simulated and entry.simulator is None:
            self.problems.append(
                (
                    f"nodes.{name}.model",
                    f"task {node.task!r} has no simulator, "
                    "so it cannot run on a simulated model: register it with "
                    "@register.task(simulator=...) or use a provider model",
                )
            )
            return None
        temperature = _schedule(node.temperature, node.k)

        def make(values: Mapping[str, Any]) -> Any:
            params = dict(node.params)
            for param, key in node.params_from.items():
                if values.get(key) is None:
                    raise MakerRuntimeError(
                        f"node {name!r}: state key {key!r} has no value "
                        f"for the task parameter {param!r}"
                    )
                params[param] = values[key]
            task = entry.obj(**params)
            if simulated:
                sampler = factory.task_sampler(refs, task, entry.simulator, node.task)
            else:
                rotated = getattr(task, "rotated_prompts", None)
                if node.prompt_rotation and rotated is None:
                    raise ConfigurationError(
                        f"node {name!r}: prompt_rotation needs a task with other wordings of "
                        f"its prompt (rotated_prompts()); {node.task!r} has none"
                    )
                prompt = rotated() if node.prompt_rotation and rotated else task.prompt
                sampler = ChatModelSampler(
                    chat, prompt=prompt, temperature=temperature, max_tokens=node.max_tokens
                )
            graph = create_decomposition_graph(
                task,
                sampler,
                policy=policy,
                red_flags=flags,
                max_total_samples=node.max_total_samples,
                max_total_tokens=node.max_total_tokens,
                name=name,
                chunk=node.chunk,
            ).compile()
            return task, params, graph

        def summary(params: Mapping[str, Any], final: Mapping[str, Any]) -> dict[str, Any]:
            return {
                node.output: {
                    "task": node.task,
                    "params": dict(params),
                    "steps": final.get("step"),
                    "done": bool(final.get("done")),
                    "final_state": final.get("state"),
                    "totals": final.get("totals") or {},
                }
            }

        def run(state: Mapping[str, Any]) -> dict[str, Any]:
            task, params, graph = make(state)
            try:
                return summary(params, graph.invoke({}, _inner_config(task, node.chunk)))
            except BudgetExhaustedError as exc:
                raise _in_spec(exc, name) from exc

        async def arun(state: Mapping[str, Any]) -> dict[str, Any]:
            task, params, graph = make(state)
            try:
                out = await graph.ainvoke({}, _inner_config(task, node.chunk))
                return summary(params, out)
            except BudgetExhaustedError as exc:
                raise _in_spec(exc, name) from exc

        return RunnableLambda(run, afunc=arun, name=name)

    def function(self, name: str, node: FunctionNode) -> Any:
        try:
            entry = self.registry.resolve(
                "function", node.function, allow_imports=self.allow_imports
            )
        except ConfigurationError as exc:
            self.problems.append((f"nodes.{name}.function", str(exc)))
            return None
        if entry.factory:
            try:
                fn = entry.obj(**node.params)
            except Exception as exc:  # noqa: BLE001 - the factory's own validation
                self.problems.append(
                    (
                        f"nodes.{name}.params",
                        f"function {node.function!r} refused its params: {exc}",
                    )
                )
                return None
        else:
            fn = partial(entry.obj, **node.params) if node.params else entry.obj
        keys = self.keys
        target = entry.obj if not entry.factory else fn
        if inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
            getattr(target, "__call__", None)  # noqa: B004 - an object with an async __call__
        ):

            async def afunction_node(state: Mapping[str, Any]) -> Any:
                return _check_update(name, await fn(state), keys)

            afunction_node.__name__ = name
            return afunction_node

        def function_node(state: Mapping[str, Any]) -> Any:
            return _check_update(name, fn(state), keys)

        function_node.__name__ = name
        return function_node

    # ------------------------------------------------------------------ graph

    def router(self, route: Route) -> tuple[Callable[[Mapping[str, Any]], str], dict[str, str]]:
        cases = {
            value: (END if target == END_NAME else target) for value, target in route.cases.items()
        }
        default = (
            None if route.default is None else (END if route.default == END_NAME else route.default)
        )
        source, key = route.source, route.on

        def route_on_value(state: Mapping[str, Any]) -> str:
            value = route_value(state.get(key))
            target = cases.get(value, default)
            if target is None:
                raise MakerRuntimeError(
                    f"route after {source!r}: {key}={value!r} matches no case "
                    f"({', '.join(cases)}) and the route has no default"
                )
            return target

        route_on_value.__name__ = f"route_on_{key}"
        targets = sorted(set(cases.values()) | ({default} if default else set()))
        return route_on_value, {t: t for t in targets}

    def build(self, source: str | None) -> StateGraph[Any, Any, Any, Any]:
        spec = self.spec
        state_schema = _typed_dict(f"{_camel(spec.name)}State", self.keys)
        extra: dict[str, Any] = {}
        if spec.input is not None:
            extra["input_schema"] = _typed_dict(
                f"{_camel(spec.name)}Input", {k: self.keys[k] for k in spec.input}
            )
        if spec.output is not None:
            extra["output_schema"] = _typed_dict(
                f"{_camel(spec.name)}Output", {k: self.keys[k] for k in spec.output}
            )
        builder: StateGraph[Any, Any, Any, Any] = StateGraph(state_schema, **extra)
        makers: dict[type[Any], Callable[[str, Any], Any]] = {
            MakerNode: self.maker,
            PromptNode: self.prompt,
            DecompositionNode: self.decomposition,
            FunctionNode: self.function,
        }
        for name, node in spec.nodes.items():
            try:
                runnable = makers[type(node)](name, node)
            except ConfigurationError as exc:
                self.problems.append((f"nodes.{name}", str(exc)))
                continue
            if runnable is not None:
                builder.add_node(name, runnable, metadata={"maker_graph_kind": node.kind})
        if self.problems:
            raise SpecError(self.problems, source)
        for _, source_name, target in spec.edge_list():
            builder.add_edge(
                START if source_name == START_NAME else source_name,
                END if target == END_NAME else target,
            )
        for route in spec.routes:
            router, path_map = self.router(route)
            builder.add_conditional_edges(route.source, router, path_map)  # type: ignore[arg-type]
        return builder


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.replace("-", "_").split("_"))


def build_graph(
    spec: GraphSpec,
    *,
    registry: Registry,
    allow_imports: Sequence[str] = (),
    source: str | None = None,
) -> StateGraph[Any, Any, Any, Any]:
    """The uncompiled `StateGraph` of a spec that passed `check_spec`.

    Raises:
        SpecError: problems found while building (missing provider packages or keys,
            task parameters the task refuses), each located.
    """
    return _Builder(spec, registry, allow_imports).build(source)
