"""The house rules a newcomer relies on, checked on the source itself.

- No import cycles between the package's modules (imports inside functions count:
  a lazy import that closes a cycle is still a cycle; `if TYPE_CHECKING:` imports
  do not, they never run).
- No module imports another module's private (`_name`) attribute: what crosses a
  module boundary has a public name and a docstring.
- Layers import downward: each module belongs to one layer of `LAYERS` and imports
  only from its own layer or lower ones.
- No module is over `MAX_LINES` lines, except the ones named in `TOO_LONG`, which
  are still to be split; the list only shrinks.
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


def _targets(name: str) -> set[str]:
    """The package's modules that `name` imports at run time (a package is its `__init__`)."""
    found = set()
    for target, names in _runtime_imports(name):
        for imported in names or [""]:
            sub = f"{target}.{imported}"
            found.add(sub if sub in MODULES else target)
    return {t for t in found if t in MODULES and t != name}


def _edges() -> dict[str, set[str]]:
    # A package's __init__ re-exports its modules; importing the package is not a cycle
    # with the module that the package itself imports.
    return {
        name: {t for t in _targets(name) if MODULES[t].name != "__init__.py"} for name in MODULES
    }


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


LAYERS: list[tuple[str, list[str]]] = [
    # Names relative to `maker_graph`; a module's layer is that of its longest listed
    # prefix (`tasks.hanoi` before `tasks`), so a new module inside a package needs no entry.
    (name, modules.split())
    for name, modules in [
        (
            "foundations",
            "errors records _util _sync _worker_threads _bounded _bounded_regex tasks"
            " testing.errors_model",
        ),
        ("laws and counting", "voting tokens scaling _scaling_checks _p_estimate"),
        ("correlation", "correlation _rival_spread"),
        (
            "samples",
            "red_flags sampling _provider_retry _variation _chat_replies actions semantic_keys"
            " costs _token_counting decorrelation providers testing tasks.hanoi tasks.addition",
        ),
        ("the vote", "vote _rounds _sample_check speculation graph.events"),
        (
            "long runs and estimates",
            "runlog run checkpointers store estimate _estimate_plan _estimate_sampling"
            " _estimate_scoring _estimate_tables",
        ),
        ("surfaces", "graph recursive tasks.multiplication plots _plot_kit _plot_estimate"),
        ("declarative specs", "config registry"),
        ("the package and its command line", "maker_graph __main__ cli"),
    ]
]


def _layer(name: str) -> int | None:
    relative = name.removeprefix("maker_graph.")
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if relative == prefix or relative.startswith(prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), rank)
    return None if best is None else best[1]


def test_every_module_has_a_layer() -> None:
    missing = sorted(name for name in MODULES if _layer(name) is None)
    assert missing == [], f"add these to LAYERS in tests/test_architecture.py: {missing}"


def test_the_layer_of_a_module_is_its_longest_prefix() -> None:
    ranks = [_layer(f"maker_graph.{n}") for n in ("tasks.base", "tasks.hanoi.x", "graph.events")]
    assert ranks == [0, 3, 4]
    assert _layer("maker_graph.graph.wrapper") == 6
    assert _layer("maker_graph") == len(LAYERS) - 1
    assert _layer("maker_graph.nowhere") is None


def test_layers_import_downward() -> None:
    upward = []
    for name in MODULES:
        own = _layer(name)
        for target in sorted(_targets(name)):
            theirs = _layer(target)
            if own is not None and theirs is not None and theirs > own:
                upward.append(f"{name} ({LAYERS[own][0]}) imports {target} ({LAYERS[theirs][0]})")
    assert upward == []


MAX_LINES = 600

TOO_LONG: set[str] = {
    # Still to be split by concept (issue 15); remove a name once its module fits.
}


def _lines() -> dict[str, int]:
    root = PACKAGE.parent
    return {
        path.relative_to(root).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in MODULES.values()
    }


def test_no_module_is_too_long() -> None:
    lines = _lines()
    too_long = sorted(
        f"{p} ({n} lines)" for p, n in lines.items() if n > MAX_LINES and p not in TOO_LONG
    )
    assert too_long == [], f"split these by concept (over {MAX_LINES} lines): {too_long}"


def test_the_too_long_list_only_names_modules_still_too_long() -> None:
    lines = _lines()
    stale = sorted(p for p in TOO_LONG if lines.get(p, 0) <= MAX_LINES)
    assert stale == [], f"these fit now; remove them from TOO_LONG: {stale}"
