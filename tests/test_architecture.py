"""The house rules a newcomer relies on, checked on the source itself.

- No import cycles between the package's modules (imports inside functions count:
  a lazy import that closes a cycle is still a cycle; `if TYPE_CHECKING:` imports
  do not, they never run).
- No module imports another module's private (`_name`) attribute: what crosses a
  module boundary has a public name and a docstring.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from maker_graph._util import find_cycles  # the spec loader's cycle finder

PACKAGE = Path(__file__).resolve().parents[1] / "maker_graph"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(p for p in parts if p != "__init__")
        found[name] = path
    return found


MODULES = _modules()


def _runtime_imports(name: str) -> Iterator[tuple[str, list[str]]]:
    """(imported module, imported names) for every import that can run."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("maker_graph"):
                    yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("maker_graph"):
                yield target, [alias.name for alias in node.names]


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for name in MODULES:
        for target, names in _runtime_imports(name):
            for imported in names or [""]:
                sub = f"{target}.{imported}"
                edges[name].add(sub if sub in MODULES else target)

    # A package's __init__ re-exports its modules; importing the package is not a cycle
    # with the module that the package itself imports.
    def counts(target: str, name: str) -> bool:
        return target in MODULES and target != name and MODULES[target].name != "__init__.py"

    return {name: {t for t in targets if counts(t, name)} for name, targets in edges.items()}


def test_the_checker_sees_a_cycle_when_there_is_one() -> None:
    assert find_cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
    assert find_cycles({"a": ["b"], "b": []}) == []


def test_no_import_cycles() -> None:
    assert len(MODULES) > 50  # the walk found the package
    edges = {name: sorted(targets) for name, targets in _edges().items()}
    assert find_cycles(edges) == []


def test_no_module_imports_another_modules_private_names() -> None:
    offenders = []
    for name in MODULES:
        for target, names in _runtime_imports(name):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and target != name and f"{target}.{private[0]}" not in MODULES:
                offenders.append(f"{name} imports {', '.join(private)} from {target}")
    assert offenders == []
