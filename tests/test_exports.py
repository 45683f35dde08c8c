"""Public names: `__all__` is exactly what each public module offers, and every name resolves."""

from __future__ import annotations

import importlib
import inspect

import pytest

PUBLIC_MODULES = [
    "maker_graph",
    "maker_graph.voting",
    "maker_graph.red_flags",
    "maker_graph.scaling",
    "maker_graph.semantic_keys",
    "maker_graph.sampling",
    "maker_graph.vote",
    "maker_graph.errors",
    "maker_graph.records",
    "maker_graph.testing",
    "maker_graph.tokens",
    "maker_graph.tasks",
    "maker_graph.tasks.hanoi",
    "maker_graph.tasks.multiplication",
    "maker_graph.runlog",
    "maker_graph.run",
    "maker_graph.graph",
    "maker_graph.recursive",
    "maker_graph.config",
    "maker_graph.registry",
    "maker_graph.providers",
    "maker_graph.costs",
    "maker_graph.estimate",
    "maker_graph.plots",
    "maker_graph.checkpointers",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_names_resolve(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__, f"{name} needs a module docstring"
    exported = module.__all__
    assert len(exported) == len(set(exported)), f"{name}.__all__ has duplicates"
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ names {attr!r}, which does not exist"


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_public_classes_and_functions_are_exported(name: str) -> None:
    """Every public class or function defined in the module is in its `__all__`."""
    module = importlib.import_module(name)
    defined = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", None) == module.__name__
    }
    missing = defined - set(module.__all__)
    assert not missing, f"{name} defines public {sorted(missing)} but does not export them"


def test_top_level_lazy_names_are_the_surfaces_themselves() -> None:
    import maker_graph
    from maker_graph.config import load_graph
    from maker_graph.graph import create_voting_graph, maker_node
    from maker_graph.recursive import create_recursive_graph
    from maker_graph.run import run_task

    assert maker_graph.maker_node is maker_node
    assert maker_graph.create_voting_graph is create_voting_graph
    assert maker_graph.create_recursive_graph is create_recursive_graph
    assert maker_graph.load_graph is load_graph
    assert maker_graph.run_task is run_task
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        maker_graph.nope  # noqa: B018


def test_importing_the_core_does_not_load_langgraph() -> None:
    import subprocess
    import sys

    code = "import sys, maker_graph; print('langgraph' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_the_cli_starts_without_langchain() -> None:
    """The CLI and long runs need only the fast simulated sampler: no langchain import."""
    import subprocess
    import sys

    code = (
        "import sys, maker_graph.cli as c; c.load_commands(); "
        "from maker_graph.testing import ErrorModel, SimulatedSampler; "
        "print('langchain_core' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
