"""`maker_graph.graph` exports exactly its public surface, and each module documents itself."""

from __future__ import annotations

import importlib
import inspect

import pytest

MODULES = [
    "maker_graph.graph",
    "maker_graph.graph.voting_graph",
    "maker_graph.graph.wrapper",
    "maker_graph.graph.decomposition",
    "maker_graph.graph.graft",
    "maker_graph.graph.hybrid",
    "maker_graph.graph.routers",
    "maker_graph.graph.tally",
    "maker_graph.graph.events",
    "maker_graph.graph.functional",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_resolves_and_covers_public_definitions(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__
    exported = module.__all__
    assert len(exported) == len(set(exported))
    assert all(hasattr(module, attr) for attr in exported)
    defined = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", None) == name
    }
    assert defined <= set(exported), sorted(defined - set(exported))


def test_package_exports_the_contract_names() -> None:
    graph = importlib.import_module("maker_graph.graph")
    for contract in (
        "create_voting_graph",
        "maker_node",
        "add_maker_step",
        "create_decomposition_graph",
        "red_flag_condition",
    ):
        assert contract in graph.__all__
