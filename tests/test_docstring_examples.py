"""Every `Example:` in the package's docstrings runs and prints what it shows.

Docstrings are where a reader meets the API first; an example that no longer
runs teaches the wrong thing. Modules are found by walking the package, so a
new module's examples are checked without being listed here.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import maker_graph

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(maker_graph.__path__, "maker_graph.")
    if not info.name.endswith("__main__")
)


def test_the_walk_finds_the_package() -> None:
    assert {"maker_graph.voting", "maker_graph.tasks.multiplication.runner"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} fail"
