"""The spec models, the generated JSON Schema, the YAML reader and the registry."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

import maker_graph.config as config_pkg
import maker_graph.registry as public_registry
from maker_graph.config import GraphSpec, Registry, load_spec, spec_json_schema
from maker_graph.config._source import read_source
from maker_graph.config.registry import register, registry
from maker_graph.config.spec import (
    Edge,
    SimulatedErrors,
    StateKey,
    TemperatureSpec,
    TextParser,
    placeholders,
)
from maker_graph.errors import ConfigurationError, SpecError
from maker_graph.testing import ErrorModel

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples" / "configs").glob("*.yaml"))

MINIMAL: dict[str, Any] = {
    "name": "mini",
    "state": {"x": "str"},
    "nodes": {"a": {"kind": "function", "function": "set_values", "params": {"x": "done"}}},
    "entry": "a",
    "finish": ["a"],
}


# --------------------------------------------------------------------------- the JSON Schema


def test_committed_json_schema_is_current() -> None:
    committed = json.loads((ROOT / "maker-graph.schema.json").read_text(encoding="utf-8"))
    assert committed == spec_json_schema(), (
        "maker-graph.schema.json is stale: run `maker-graph schema > maker-graph.schema.json`"
    )


def test_schema_describes_every_field() -> None:
    schema = spec_json_schema()
    undocumented = []
    for name, definition in [("GraphSpec", schema), *schema["$defs"].items()]:
        for field, body in definition.get("properties", {}).items():
            if field != "kind" and not body.get("description"):
                undocumented.append(f"{name}.{field}")
    assert undocumented == []


def test_schema_checks_the_examples_and_refuses_a_broken_spec() -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    validator = jsonschema_rs.validator_for(spec_json_schema())
    for path in EXAMPLES:
        data = read_source(path).data
        errors = [e.message for e in validator.iter_errors(data)]
        assert errors == [], f"{path.name}: {errors}"
    broken = read_source(ROOT / "tests" / "broken_specs" / "k_zero.yaml").data
    assert not validator.is_valid(broken)


def test_example_specs_point_editors_at_the_schema() -> None:
    for path in EXAMPLES:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == "# yaml-language-server: $schema=../../maker-graph.schema.json"


# --------------------------------------------------------------------------- the models


def test_shorthands_expand_and_defaults_are_the_papers() -> None:
    spec = GraphSpec.model_validate(
        {
            "name": "g",
            "state": {"ticket": "str", "log": {"type": "list", "reducer": "append"}},
            "models": {"m": {"model": "simulated", "oracle": {"answer": "x"}}},
            "nodes": {
                "n": {"kind": "maker", "model": "m", "prompt": "{ticket}", "output": "ticket"}
            },
            "edges": ["START -> n", {"from": "n", "to": "END"}],
        }
    )
    assert spec.state_keys()["ticket"] == StateKey(type="str")
    assert spec.state_keys()["log"].reducer == "append"
    node = spec.nodes["n"]
    assert node.k == 3  # type: ignore[union-attr]
    assert node.temperature == TemperatureSpec(first=0.0, rest=0.1)  # type: ignore[union-attr]
    assert node.parser == TextParser(kind="text")  # type: ignore[union-attr]
    assert spec.edge_list() == [(0, "START", "n"), (1, "n", "END")]
    assert isinstance(spec.edges[1], Edge)


def test_simulated_errors_mirror_the_error_model() -> None:
    model_fields = {f.name: f.default for f in dataclasses.fields(ErrorModel)}
    spec_fields = {name: info.default for name, info in SimulatedErrors.model_fields.items()}
    assert spec_fields == model_fields
    ErrorModel(**SimulatedErrors(error_rate=0.3, seed=4).model_dump())


def test_failure_rates_that_leave_no_success_are_refused() -> None:
    with pytest.raises(ValidationError, match="no call could ever succeed"):
        SimulatedErrors(exception_rate=0.5, timeout_rate=0.5)


@pytest.mark.parametrize(
    ("template", "names"),
    [
        ("plain", []),
        ("{a} and {b} and {a}", ["a", "b"]),
        ("{{literal}} {x}", ["x"]),
    ],
)
def test_placeholders(template: str, names: list[str]) -> None:
    assert placeholders(template) == names


@pytest.mark.parametrize("template", ["{a.b}", "{a[0]}", "{}", "{a!r}", "{a:>10}", "{0}", "{"])
def test_placeholders_refuse_anything_but_bare_names(template: str) -> None:
    with pytest.raises(ValueError):
        placeholders(template)


def _json_parser_spec(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        **MINIMAL,
        "state": {"x": "str", "q": "dict"},
        "models": {"m": {"model": "simulated", "oracle": {"answer": "{}"}}},
        "nodes": {
            "a": {
                "kind": "maker",
                "model": "m",
                "prompt": "{x}",
                "output": "q",
                "parser": {"kind": "json", "schema": schema},
            }
        },
    }


@pytest.mark.parametrize(
    ("schema", "location", "message"),
    [
        (
            {"type": "object", "properties": {"n": {"type": "array"}}},
            "nodes.a.parser.schema.properties.n.items",
            "an array needs items",
        ),
        (
            {"type": "object", "properties": {"n": {"type": "string"}}, "required": ["m"]},
            "nodes.a.parser.schema.required",
            "names unknown properties: m",
        ),
        ({"type": "object"}, "nodes.a.parser.schema.properties", "at least one property"),
        (
            {"type": "string", "items": {"type": "string"}},
            "nodes.a.parser.schema.items",
            "items applies to arrays, not string",
        ),
        ({"type": "date"}, "nodes.a.parser.schema.type", "must be one of 'object', 'array'"),
    ],
)
def test_json_schema_subset_is_checked(schema: dict[str, Any], location: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(_json_parser_spec(schema))
    problems = dict(info.value.problems)
    assert location in problems, info.value
    assert message in problems[location]


def test_provider_options_refuse_secrets() -> None:
    spec = {
        **MINIMAL,
        "models": {
            "p": {
                "model": "openai:gpt-4.1-mini",
                "options": {"organization": "acme", "password": "x"},
            }
        },
    }
    with pytest.raises(SpecError, match="secrets come only from environment variables"):
        load_spec(spec)
    ok = {
        **MINIMAL,
        "models": {
            "p": {
                "model": "openai:gpt-4.1-mini",
                "api_key_env": "MY_KEY",
                "options": {"organization": "acme"},
            }
        },
    }
    assert load_spec(ok).models["p"].api_key_env == "MY_KEY"  # type: ignore[union-attr]


def test_a_dollar_schema_key_is_accepted_in_json_specs() -> None:
    assert load_spec({"$schema": "./maker-graph.schema.json", **MINIMAL}).name == "mini"


# --------------------------------------------------------------------------- the YAML reader


def test_yaml_reads_plain_data_with_text_keys_and_yaml_12_booleans() -> None:
    data = read_source(
        "name: g\nlabels: [yes, no, on, off, true, 2024-01-01]\n"
        "route: {on: category, cases: {true: a, 1: b, null: c}}\n"
    ).data
    assert data["labels"] == ["yes", "no", "on", "off", True, "2024-01-01"]
    assert data["route"] == {"on": "category", "cases": {"true": "a", "1": "b", "null": "c"}}


def test_yaml_anchors_and_merge_keys_still_work() -> None:
    data = read_source("base: &b {k: 3, output: x}\nnode: {<<: *b, k: 5}\nlist: [*b]\n").data
    assert data["node"] == {"k": 5, "output": "x"}
    assert data["list"] == [{"k": 3, "output": "x"}]


def test_a_path_a_text_and_a_mapping_load_the_same_spec(tmp_path: Path) -> None:
    text = yaml.safe_dump(MINIMAL)
    path = tmp_path / "mini.yaml"
    path.write_text(text)
    json_path = tmp_path / "mini.json"
    json_path.write_text(json.dumps(MINIMAL))
    specs = [
        load_spec(path),
        load_spec(str(path)),
        load_spec(text),
        load_spec(MINIMAL),
        load_spec(json_path),
        load_spec(json.dumps(MINIMAL)),
    ]
    assert all(spec == specs[0] for spec in specs)


def test_problems_in_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.source == str(path)
    assert str(info.value).startswith(f"invalid graph spec {path}: 2 problem(s)")


# --------------------------------------------------------------------------- the registry


def test_registry_decorators_bare_named_and_factory() -> None:
    reg = Registry()

    @reg.function
    def plain(state: dict[str, Any]) -> dict[str, Any]:
        """Do nothing."""
        return {}

    @reg.parser("yes_no")
    def parse_yes_no(output: Any) -> bool:
        return str(output).strip() == "yes"

    @reg.red_flag(factory=True)
    def longer_than(limit: int) -> Any:
        return lambda sample: len(sample.raw.text) > limit

    assert reg.get("function", "plain").description == "Do nothing."
    assert reg.get("parser", "yes_no").obj is parse_yes_no
    assert reg.get("red_flag", "longer_than").factory
    assert reg.names("function") == ["plain"]
    assert ("parser", "yes_no") in reg


def test_registering_another_object_under_a_taken_name_is_refused() -> None:
    reg = Registry()
    reg.add("function", "f", lambda state: {})
    with pytest.raises(ConfigurationError, match="already registered"):
        reg.add("function", "f", lambda state: {"x": 1})
    reg.add("function", "f", print, replace=True)
    assert reg.get("function", "f").obj is print


def test_re_registering_the_same_definition_is_allowed() -> None:
    # What a dev server's reload does: the module runs again, new function objects.
    reg = Registry()
    namespace: dict[str, Any] = {}
    code = "def node(state):\n    return {}\n"
    loaded = []
    for _ in range(2):
        exec(compile(code, "reloaded_module", "exec"), namespace)  # noqa: S102
        namespace["node"].__module__ = "reloaded_module"
        loaded.append(namespace["node"])
        reg.add("function", "node", namespace["node"])
    assert loaded[0] is not loaded[1]  # two distinct objects, one definition
    assert reg.get("function", "node").obj is loaded[1]  # the reload's object is the one used
    assert reg.names("function") == ["node"]
    # A function of the same name defined in another file and module is another definition.
    other: dict[str, Any] = {}
    exec(compile(code, "another_module", "exec"), other)  # noqa: S102
    other["node"].__module__ = "another_module"
    with pytest.raises(ConfigurationError, match="already registered"):
        reg.add("function", "node", other["node"])


@pytest.mark.parametrize("name", ["", "has space", "a:b", "9lives", "x" * 101])
def test_registry_names_are_checked(name: str) -> None:
    with pytest.raises(ConfigurationError, match="cannot register"):
        Registry().add("function", name, print)


def test_unknown_names_suggest_the_closest_and_list_the_known() -> None:
    with pytest.raises(ConfigurationError) as info:
        registry.get("task", "hanio")
    assert "did you mean 'hanoi'?" in str(info.value)
    assert "(known: hanoi, long_addition)" in str(info.value)
    with pytest.raises(ConfigurationError, match="unknown registry kind"):
        registry.get("widget", "x")


def test_params_are_checked_against_the_signature() -> None:
    entry = registry.get("task", "hanoi")
    assert entry.check_params({"disks": 3}) is None
    assert "accepted: disks" in (entry.check_params({"rings": 3}) or "")
    fmt = registry.get("function", "format_text")
    assert fmt.check_params({"template": "x", "output": "y"}) is None
    assert "accepted: template, output" in (fmt.check_params({"tmpl": "x"}) or "")
    parser = registry.get("parser", "integer")
    assert "takes no params" in (parser.check_params({"base": 2}) or "")


def test_dotted_imports_need_the_callers_allow_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "spec_helpers_pkg").mkdir()
    (tmp_path / "spec_helpers_pkg" / "__init__.py").write_text("")
    (tmp_path / "spec_helpers_pkg" / "nodes.py").write_text(
        "def shout(state):\n    return {'x': state['x'].upper()}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    ref = "spec_helpers_pkg.nodes:shout"
    with pytest.raises(ConfigurationError, match="is not allowed"):
        registry.resolve("function", ref)
    assert "spec_helpers_pkg.nodes" not in sys.modules  # refused before importing anything
    entry = registry.resolve("function", ref, allow_imports=["spec_helpers_pkg"])
    assert entry.obj({"x": "hi"}) == {"x": "HI"}
    with pytest.raises(ConfigurationError, match="not allowed"):
        registry.resolve("function", ref, allow_imports=["spec_helpers"])  # a prefix is not enough
    with pytest.raises(ConfigurationError, match="cannot import"):
        registry.resolve(
            "function", "spec_helpers_pkg.nodes:missing", allow_imports=["spec_helpers_pkg"]
        )


def test_scoped_registrations_disappear_after_the_block() -> None:
    with register.scoped():

        @register.function
        def temporary(state: dict[str, Any]) -> dict[str, Any]:
            return {}

        assert "temporary" in register.names("function")
    assert "temporary" not in register.names("function")


def test_only_tasks_take_a_simulator() -> None:
    with pytest.raises(ConfigurationError, match="only tasks take a simulator"):
        Registry().add("parser", "p", print, simulator=print)
    reg = Registry()

    @reg.task("countdown", simulator=lambda task, errors: None)
    def countdown(start: int = 3) -> Any:
        return None

    entry = reg.get("task", "countdown")
    assert entry.factory and entry.simulator is not None


def test_builtins_are_registered() -> None:
    assert {"format_text", "set_values", "copy_value"} <= set(registry.names("function"))
    assert {"max_output_tokens", "truncated", "matches"} <= set(registry.names("red_flag"))
    assert {"integer", "number"} <= set(registry.names("parser"))
    assert "hanoi" in registry.names("task")
    copy = registry.copy()
    copy.add("function", "only_in_copy", print)
    assert "only_in_copy" not in registry.names("function")


def test_the_public_alias_module_is_the_same_registry() -> None:
    assert public_registry.register is register
    assert public_registry.Registry is Registry
    assert set(public_registry.__all__) == {
        "KINDS",
        "Entry",
        "Kind",
        "Registry",
        "register",
        "registry",
        "resolve_import",
    }


def test_config_package_exports_exactly_its_public_names() -> None:
    import types

    public = {
        n
        for n in dir(config_pkg)
        if not n.startswith("_") and not isinstance(getattr(config_pkg, n), types.ModuleType)
    }
    assert set(config_pkg.__all__) == public
