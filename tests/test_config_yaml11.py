"""Specs loaded by the user's own YAML parser (PyYAML is YAML 1.1) load the same."""

from __future__ import annotations

import yaml

from maker_graph.config import load_graph

ROUTED = """
name: routed
state: {label: str, out: str}
nodes:
  classify: {kind: function, function: format_text, params: {template: "x", output: label}}
  answer: {kind: function, function: format_text, params: {template: "B", output: out}}
entry: classify
routes:
  - from: classify
    on: label
    cases: {x: answer}
finish: [answer]
"""


def test_a_route_whose_on_key_yaml_11_read_as_true_still_routes() -> None:
    spec = yaml.safe_load(ROUTED)
    assert True in spec["routes"][0]  # the YAML 1.1 surprise this test is about
    result = load_graph(spec).compile().invoke({"label": "", "out": ""})
    assert result == {"label": "x", "out": "B"}
