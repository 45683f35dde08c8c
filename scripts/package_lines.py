"""Count the package's lines by kind (code, docstring, comment, blank), at any revision.

Issue #13 asks the package to shrink or stay flat in lines; a bare `wc -l` cannot say
whether a change grew the code or its documentation, nor where. This script splits
every module's lines by kind and, with `--since`, lists each module's change between
two revisions, largest first, so growth can be traced to the feature that brought it.

Usage:
    python scripts/package_lines.py                  # the working tree, by folder
    python scripts/package_lines.py --rev ecc986c    # a commit
    python scripts/package_lines.py --since ecc986c  # per-module change, that commit -> tree
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "maker_graph"
KINDS = ("code", "docstring", "comment", "blank")


def count_lines(source: str) -> Counter[str]:
    """Lines of one module by kind: a docstring line is one inside a module, class or
    function docstring (wherever it also holds code, it counts as docstring)."""
    docstring_lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                docstring_lines.update(range(first.lineno, (first.end_lineno or 0) + 1))
    kinds: Counter[str] = Counter()
    for number, line in enumerate(source.splitlines(), 1):
        text = line.strip()
        if number in docstring_lines:
            kinds["docstring"] += 1
        elif not text:
            kinds["blank"] += 1
        elif text.startswith("#"):
            kinds["comment"] += 1
        else:
            kinds["code"] += 1
    return kinds


def modules(rev: str | None) -> dict[str, str]:
    """Every `.py` file of the package, path -> source, at `rev` (None: the working tree)."""
    if rev is None:
        return {
            str(path.relative_to(ROOT)): path.read_text(encoding="utf-8")
            for path in sorted((ROOT / PACKAGE).rglob("*.py"))
        }
    names = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", rev, PACKAGE],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return {
        name: subprocess.run(
            ["git", "show", f"{rev}:{name}"], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout
        for name in names
        if name.endswith(".py")
    }


def by_module(rev: str | None) -> dict[str, Counter[str]]:
    """Line kinds of every module at `rev`."""
    return {name: count_lines(source) for name, source in modules(rev).items()}


def _row(label: str, kinds: Counter[str]) -> str:
    total = sum(kinds[kind] for kind in KINDS)
    return f"{total:>7,} " + " ".join(f"{kinds[kind]:>9,}" for kind in KINDS) + f"  {label}"


def _header() -> str:
    return f"{'total':>7} " + " ".join(f"{kind:>9}" for kind in KINDS)


def report(rev: str | None) -> str:
    """Totals by folder, then the package's."""
    folders: dict[str, Counter[str]] = {}
    everything: Counter[str] = Counter()
    counts = by_module(rev)
    for name, kinds in counts.items():
        folders.setdefault(str(Path(name).parent), Counter()).update(kinds)
        everything.update(kinds)
    lines = [_header()]
    lines += [_row(folder, kinds) for folder, kinds in sorted(folders.items())]
    lines.append(_row(f"{PACKAGE} ({len(counts)} files, {rev or 'working tree'})", everything))
    return "\n".join(lines)


def changes(since: str, rev: str | None) -> str:
    """Each module's change in lines from `since` to `rev`, largest growth first."""
    before, after = by_module(since), by_module(rev)
    rows = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name, Counter()), after.get(name, Counter())
        delta = Counter({kind: new[kind] - old[kind] for kind in KINDS})
        if any(delta.values()):
            state = "new" if name not in before else "gone" if name not in after else ""
            rows.append((sum(delta.values()), _row(f"{name} {state}".rstrip(), delta)))
    rows.sort(key=lambda row: -row[0])
    total: Counter[str] = Counter()
    for kinds in after.values():
        total.update(kinds)
    for kinds in before.values():
        total.subtract(kinds)
    return "\n".join(
        [_header(), *(text for _, text in rows), _row(f"change {since} -> {rev or 'tree'}", total)]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="count this commit instead of the working tree")
    parser.add_argument("--since", help="list each module's change from this commit")
    args = parser.parse_args(argv)
    print(changes(args.since, args.rev) if args.since else report(args.rev))
    return 0


if __name__ == "__main__":
    sys.exit(main())
