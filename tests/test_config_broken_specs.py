"""A corpus of broken specs: each must give one clear, located `SpecError`, never a traceback.

Each file in `tests/broken_specs/` states what it expects in its header, one
`# expect: LOCATION :: TEXT` line per problem that must be reported (`-` for a
problem of the whole document); JSON files keep those lines in a `.expect`
file beside them. A problem matches when its location is exactly LOCATION and
its message contains TEXT. Other problems may be reported too.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from maker_graph.cli import app, load_commands
from maker_graph.config import Limits, load_graph, load_spec
from maker_graph.config._source import read_source
from maker_graph.errors import SpecError

CORPUS = Path(__file__).parent / "broken_specs"
SPECS = sorted(p for p in CORPUS.iterdir() if p.suffix in (".yaml", ".json"))


def expectations(path: Path) -> list[tuple[str, str]]:
    if path.suffix == ".json":
        lines = (path.parent / (path.name + ".expect")).read_text().splitlines()
    else:
        lines = [
            line[len("# expect:") :]
            for line in path.read_bytes().decode("utf-8", "replace").splitlines()
            if line.startswith("# expect:")
        ]
    out = []
    for line in lines:
        location, _, text = line.partition(" :: ")
        location = location.strip()
        out.append(("" if location == "-" else location, text.strip()))
    return out


def test_the_corpus_is_large_and_every_file_says_what_it_expects() -> None:
    assert len(SPECS) >= 30
    for path in SPECS:
        assert expectations(path), f"{path.name} has no '# expect:' line"


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_broken_spec_gives_every_expected_located_problem(path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_graph(path)
    error = info.value
    assert type(error) is SpecError
    assert error.problems, "a SpecError must list at least one problem"
    message = str(error)
    assert message.splitlines()[0].startswith(f"invalid graph spec {path}")
    assert "Traceback" not in message and 'File "' not in message
    for locations, text in expectations(path):
        # `a | b`: either location; JSON's decoder places some errors differently by
        # Python version (3.13 points at a trailing comma, 3.11 at the brace after it).
        allowed = locations.split(" | ")
        found = [m for loc, m in error.problems if loc in allowed and text in m]
        assert found, (
            f"{path.name}: expected a problem at {locations or '(document)'!r} containing "
            f"{text!r}; got:\n{message}"
        )
    # Raised from the loader's own checks, not a wrapped crash from deep inside it.
    assert error.__cause__ is None


def test_problems_carry_their_line_in_yaml_files() -> None:
    with pytest.raises(SpecError) as info:
        load_spec(CORPUS / "k_zero.yaml")
    assert ("nodes.classify.k", "must be >= 1, got 0 (line 16)") in info.value.problems


def test_a_spec_with_many_problems_lists_them_all_at_once() -> None:
    text = """
name: many
state: {ticket: str, category: str}
models: {sim: {model: simulated, oracle: {answer: billing}}}
nodes:
  classify: {kind: maker, model: sim, prompt: "{ticket}", output: category, k: 0}
  reply: {kind: function, function: no_such_function}
  orphan: {kind: function, function: set_values}
entry: classify
edges: [classify -> reply, reply -> nowhere]
"""
    with pytest.raises(SpecError) as info:
        load_spec(text)
    locations = [loc for loc, _ in info.value.problems]
    for expected in ("nodes.classify.k", "nodes.reply.function", "edges.1.to", "nodes.orphan"):
        assert expected in locations, info.value
    assert len(info.value.problems) >= 4


def test_the_cli_reports_every_broken_spec_without_a_traceback() -> None:
    load_commands()
    result = CliRunner().invoke(app, ["validate", *map(str, SPECS)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.output.count("error: invalid graph spec") == len(SPECS)


# --------------------------------------------------------------------------- generated input


def test_a_spec_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("name: huge\nstate: {x: str}\ndescription: " + "x" * 1_100_000 + "\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.problems == [("", "the spec is larger than 1000000 bytes")]


def test_huge_text_is_refused_too() -> None:
    with pytest.raises(SpecError, match="larger than 1000 bytes"):
        load_spec("name: x\ndescription: " + "y" * 2000, limits=Limits(max_bytes=1000))


def test_deep_json_nesting_is_refused_without_recursion_errors() -> None:
    text = (
        '{"name": "deep", "state": {"x": "str"}, "description": '
        + "[" * 50_000
        + "]" * 50_000
        + "}"
    )
    with pytest.raises(SpecError, match="nested more than 32 levels deep"):
        load_spec(text)


def test_deep_nesting_in_a_python_mapping_is_refused() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(100):
        node["x"] = {}
        node = node["x"]  # type: ignore[assignment]
    with pytest.raises(SpecError, match="nested more than 32 levels deep"):
        load_spec({"name": "deep", "state": {"x": "str"}, "description": deep})


def test_a_non_mapping_source_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="not int"):
        load_spec(42)  # type: ignore[arg-type]


def test_bytes_that_are_not_utf8_are_a_spec_error() -> None:
    with pytest.raises(SpecError, match="not UTF-8 text"):
        load_spec(b"name: caf\xe9\n")


def test_a_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the spec"):
        load_spec(tmp_path / "missing.yaml")


def test_yaml_python_tags_never_construct_objects(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = (
        f"name: x\nstate: {{x: str}}\nnodes: !!python/object/apply:os.system ['touch {marker}']\n"
    )
    with pytest.raises(SpecError, match="is not allowed"):
        load_spec(text)
    assert not marker.exists()


def test_json_corpus_files_are_real_json_or_deliberately_broken() -> None:
    for path in SPECS:
        if path.suffix == ".json" and path.name != "bad_json.json":
            json.loads(path.read_text())


# --------------------------------------------------------------------------- fuzzing

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


_TRIAGE = read_source(Path(__file__).parents[1] / "examples" / "configs" / "triage.yaml").data
_TRIAGE_PATHS = _paths(_TRIAGE)[1:]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(_TRIAGE_PATHS), value=_JSON)
def test_any_mutation_of_a_valid_spec_loads_or_gives_a_spec_error(
    path: tuple[Any, ...], value: Any
) -> None:
    data = copy.deepcopy(_TRIAGE)
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    try:
        load_graph(data)
    except SpecError as exc:
        assert exc.problems and all(isinstance(m, str) and m for _, m in exc.problems)


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=300))
def test_any_text_loads_or_gives_a_spec_error(text: str) -> None:
    try:
        load_spec(text)
    except SpecError as exc:
        assert exc.problems
